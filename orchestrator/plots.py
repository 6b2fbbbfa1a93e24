"""Plots every task can use: loss curves from a per-epoch history."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def loss_curves(history: pd.DataFrame, path: Path, title: str) -> Path:
    """train/val loss against epoch (1-based), one line per ``*_loss`` column."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(7, 4))
    for column in [c for c in history.columns if c.endswith("_loss")]:
        ax.plot(history["epoch"] + 1, history[column], marker="o", label=column)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
