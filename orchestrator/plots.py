"""Plotting helpers every task uses: a headless pyplot, saving a figure, loss curves."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


HOUSE_STYLE = {"axes.spines.top": False, "axes.spines.right": False}  # every figure of every task


def pyplot() -> Any:
    """matplotlib.pyplot on the headless Agg backend, in the house style (imported lazily:
    matplotlib is slow to load)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(HOUSE_STYLE)
    return plt


def save_figure(fig: Any, path: Path, dpi: int = 100) -> Path:
    """Tight layout, write the PNG, free the figure."""
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)
    return path


def loss_curves(history: "pd.DataFrame", path: Path, title: str, columns: list[str] | None = None) -> Path:
    """train/val loss against epoch (1-based), one line per ``*_loss`` column (or per ``columns``)."""
    from matplotlib.ticker import MaxNLocator

    plt = pyplot()

    fig, ax = plt.subplots(figsize=(7, 4))
    for column in columns or [c for c in history.columns if c.endswith("_loss")]:
        ax.plot(history["epoch"] + 1, history[column], marker="o", label=column)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    return save_figure(fig, path, dpi=110)
