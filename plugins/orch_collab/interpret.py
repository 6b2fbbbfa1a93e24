"""The lesson's look inside the model: film biases, and PCA of the film embeddings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

TOP_FILMS = 1000  # as in the lesson: only films with many ratings have trustworthy embeddings


def most_rated(counts: np.ndarray, n: int = TOP_FILMS) -> np.ndarray:
    """Item indices of the ``n`` most-rated films, most-rated first."""
    return np.argsort(-counts, kind="stable")[:n]


def bias_table(bias: np.ndarray, titles: list[str], items: np.ndarray, n: int = 15) -> pd.DataFrame:
    """The ``n`` films with the lowest and the ``n`` with the highest learned bias."""
    order = items[np.argsort(bias[items], kind="stable")]
    rows = [("lowest", i) for i in order[:n]] + [("highest", i) for i in order[::-1][:n]]
    return pd.DataFrame({"end": [e for e, _ in rows], "title": [titles[i] for _, i in rows],
                         "bias": [float(bias[i]) for _, i in rows]})


def pca(factors: np.ndarray, k: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """(scores on the first ``k`` components, explained variance ratio) via SVD of centred rows."""
    centred = factors - factors.mean(axis=0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    ratio = s ** 2 / float((s ** 2).sum())
    return u[:, :k] * s[:k], ratio[:k]


def component_ends(scores: np.ndarray, titles: list[str], items: np.ndarray, n: int = 10) -> pd.DataFrame:
    """For each of the first two components, the films at its two ends."""
    rows = []
    for c in range(min(2, scores.shape[1])):
        order = np.argsort(scores[:, c], kind="stable")
        for end, picks in (("low", order[:n]), ("high", order[::-1][:n])):
            rows += [{"component": c + 1, "end": end, "title": titles[items[j]], "score": float(scores[j, c])}
                     for j in picks]
    return pd.DataFrame(rows)


def scatter(scores: np.ndarray, titles: list[str], items: np.ndarray, path: Path, n: int = 50) -> Path:
    """The ``n`` most-rated films on the first two components, labelled with their titles."""
    from orchestrator.plots import pyplot, save

    plt = pyplot()

    n = min(n, len(items))
    fig, ax = plt.subplots(figsize=(13, 11))
    x, y = scores[:n, 0], scores[:n, 1]
    ax.scatter(x, y, s=14, color="#1f77b4")
    for j in range(n):
        ax.annotate(_short(titles[items[j]]), (x[j], y[j]), fontsize=8, xytext=(3, 3),
                    textcoords="offset points")
    ax.set_xlabel("component 1")
    ax.set_ylabel("component 2")
    ax.set_title(f"PCA of the film embeddings: the {n} most-rated films")
    ax.spines[["top", "right"]].set_visible(False)
    return save(fig, path)


def _short(title: str, width: int = 28) -> str:
    return title if len(title) <= width else title[: width - 1] + "…"
