"""The progression chart: validation bits per character of each model against the references."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def comparison(table: pd.DataFrame, refs: dict[str, float], path: Path) -> Path:
    from orchestrator import pyplot, save_figure

    plt = pyplot()

    fig, ax = plt.subplots(figsize=(9, 4.8))
    bars = ax.barh(table["arch"], table["val_bpc"], color="#1f77b4")
    ax.bar_label(bars, fmt="%.2f", padding=3)
    ax.invert_yaxis()  # the lesson's order, top to bottom
    styles = {"unigram": ":", "bigram": "--", "xz": "-.", "bz2": (0, (1, 4)), "human (Shannon)": "-"}
    colors = {"unigram": "#7f7f7f", "bigram": "#ff7f0e", "xz": "#2ca02c", "bz2": "#9467bd", "human (Shannon)": "#d62728"}
    for name, bpc in refs.items():
        ax.axvline(bpc, linestyle=styles.get(name, "--"), color=colors.get(name, "black"), label=f"{name}: {bpc:.2f}")
    ax.set_xlabel("validation bits per character (lower is better)")
    ax.set_title("character models: validation bits per character")
    ax.set_xlim(0, max(max(refs.values()), table["val_bpc"].max()) * 1.12)
    ax.legend(loc="lower right", fontsize=8)
    return save_figure(fig, path, dpi=110)
