"""The report's figures: the ablation bars, classifier curves per variant, LM curves."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from orchestrator.plots import pyplot, save

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
    ax.spines[["top", "right"]].set_visible(False)
    return save(fig, path, dpi=110)


def classifier_curves(history: pd.DataFrame, path: Path) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for variant, rows in history.groupby("variant", sort=False):
        ax.plot(rows["epoch"] + 1, 100 * rows["val_error"], marker="o", label=LABELS.get(variant, variant).replace("\n", " "))
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation error (%)")
    ax.set_title("Classifiers: validation error per epoch")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    return save(fig, path, dpi=110)


def lm_curves(history: pd.DataFrame, path: Path) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    labels = {"pretrain": "(a) general corpus", "finetune": "(b) target texts"}
    for stage, rows in history.groupby("stage", sort=False):
        ax.plot(rows["epoch"] + 1, rows["val_ppl"], marker="o", label=f"{labels.get(stage, stage)}: val perplexity")
    ax.set_xlabel("epoch")
    ax.set_ylabel("perplexity")
    ax.set_yscale("log")
    ax.set_title("Language models")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    return save(fig, path, dpi=110)
