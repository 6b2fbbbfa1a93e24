"""The collab figure: the most-rated films on the first two PCA components of their embeddings."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from orchestrator import pyplot, save_figure


def scatter(scores: np.ndarray, titles: list[str], items: np.ndarray, path: Path, n: int = 50) -> Path:
    """The ``n`` most-rated films on the first two components, labelled with their titles."""
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
    return save_figure(fig, path)


def _short(title: str, width: int = 28) -> str:
    return title if len(title) <= width else title[: width - 1] + "…"
