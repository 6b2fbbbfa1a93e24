"""Training curves: losses, R1 and FID per epoch against the real-vs-real floor."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from orchestrator import pyplot, save_figure


def training_curves(history: pd.DataFrame, metrics: dict, path: Path) -> Path:
    plt = pyplot()
    fig, (ax_loss, ax_fid) = plt.subplots(1, 2, figsize=(11, 4))
    x = history["kimg"]
    ax_loss.plot(x, history["d_loss"], marker="o", label="D loss")
    ax_loss.plot(x, history["g_loss"], marker="o", label="G loss")
    ax_loss.set_xlabel("thousands of images shown")
    ax_loss.set_title("GAN losses (non-saturating logistic)")
    ax_loss.legend()
    ax_fid.plot(x, history["train_dev_fid"], marker="o", color="tab:red", label="generator (EMA) vs train-dev")
    ax_fid.axhline(metrics["floor_fid_dev"], color="tab:green", ls="--", label="real vs real (floor)")
    if "untrained_val_fid" in metrics:
        ax_fid.axhline(metrics["untrained_val_fid"], color="grey", ls=":", label="untrained generator")
    positive = (history["train_dev_fid"] > 0).all() and metrics["floor_fid_dev"] > 0
    if positive:  # a log scale shows the floor and the curve together; tiny data can give FID <= 0
        ax_fid.set_yscale("log")
    ax_fid.set_xlabel("thousands of images shown")
    ax_fid.set_ylabel("FID (log scale)" if positive else "FID")
    ax_fid.set_title("FID during training")
    ax_fid.legend(fontsize=8)
    for ax in (ax_loss, ax_fid):
        ax.grid(alpha=0.3)
    return save_figure(fig, path, dpi=110)
