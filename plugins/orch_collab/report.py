"""The lesson's look inside the model: film biases, PCA of the film embeddings, and their write-up."""

from __future__ import annotations

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


def interpretation_md(biases: pd.DataFrame, ends: pd.DataFrame, ratio: np.ndarray) -> str:
    lines = ["# What the collab model learned", "", f"Among the {TOP_FILMS} most-rated films.", ""]
    for end in ("lowest", "highest"):
        rows = biases[biases["end"] == end]
        lines += [f"## 15 films with the {end} bias", "", "| film | bias |", "|---|---:|",
                  *(f"| {r.title} | {r.bias:.3f} |" for r in rows.itertuples()), ""]
    for c in (1, 2):
        share = ratio[c - 1] if len(ratio) >= c else float("nan")
        lines += [f"## PCA component {c} ({share:.1%} of the variance)", ""]
        for end in ("low", "high"):
            films = ends[(ends["component"] == c) & (ends["end"] == end)]["title"]
            lines.append(f"- {end} end: " + "; ".join(films))
        lines.append("")
    lines.append("![films on components 1 and 2](pca_scatter.png)")
    return "\n".join(lines) + "\n"
