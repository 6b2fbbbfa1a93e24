"""The report's figures: the ablation bars, classifier curves per variant, LM curves."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from orchestrator import pyplot, save_figure

LABELS = {"scratch": "from scratch", "pretrained": "(a) general LM", "no_unfreezing": "(a)+(b), no gradual\nunfreezing",
          "ulmfit": "(a)+(b)+gradual\nunfreezing (ULMFiT)"}


def ablation(table: pd.DataFrame, majority: float, path: Path) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4))
    names = [LABELS.get(v, v) for v in table["variant"]]
    colors = ["tab:red" if v == "ulmfit" else "tab:blue" for v in table["variant"]]
    bars = ax.barh(names, 100 * table["val_error"], color=colors)
    ax.bar_label(bars, fmt="%.2f%%", padding=3)
    ax.axvline(100 * majority, color="grey", ls="--", label=f"majority class {majority:.1%}")
    ax.set_xlabel("validation error (%)")
    ax.set_title("ULMFiT ablation: what each stage is worth")
    ax.legend(loc="lower right", fontsize=8)
    ax.invert_yaxis()
    return save_figure(fig, path, dpi=110)


def classifier_curves(classify: pd.DataFrame, ablation: pd.DataFrame | None, variants: list[str], path: Path) -> Path:
    """Validation error per epoch: ULMFiT from the classify stage's history (``val_error``), the
    other variants from the ablation stage's (``<variant>.val_error``)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    curves = [("ulmfit", classify, "val_error")]
    if ablation is not None:
        curves = [(v, ablation, f"{v}.val_error") for v in variants if f"{v}.val_error" in ablation] + curves
    for variant, frame, column in curves:
        rows = frame.dropna(subset=[column])
        ax.plot(rows["epoch"] + 1, 100 * rows[column], marker="o", label=LABELS.get(variant, variant).replace("\n", " "))
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation error (%)")
    ax.set_title("Classifiers: validation error per epoch")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return save_figure(fig, path, dpi=110)


def lm_curves(histories: dict[str, pd.DataFrame], path: Path) -> Path:
    """Validation perplexity per epoch of (a) and (b), from their stages' ``<stage>.val_ppl``."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    labels = {"pretrain": "(a) general corpus", "finetune": "(b) target texts"}
    for stage, rows in histories.items():
        ax.plot(rows["epoch"] + 1, rows[f"{stage}.val_ppl"], marker="o", label=f"{labels.get(stage, stage)}: val perplexity")
    ax.set_xlabel("epoch")
    ax.set_ylabel("perplexity")
    ax.set_yscale("log")
    ax.set_title("Language models")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return save_figure(fig, path, dpi=110)
