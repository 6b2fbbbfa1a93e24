"""The paper's pictures: the state embedding as a map, ordinal embeddings, GBM feature importance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from orch_rossmann.synth import STATES
from orchestrator import pyplot, save_figure


def _pca2(matrix: np.ndarray) -> np.ndarray:
    centred = matrix - matrix.mean(axis=0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    return u[:, :2] * s[:2]


def state_map(frame: pd.DataFrame, path: Path) -> Path:
    """PCA of the state embeddings beside the states' real positions (as in the paper's Figure)."""
    plt = pyplot()
    frame = frame[frame["State"] != "<unknown>"].reset_index(drop=True)
    xy = _pca2(frame.iloc[:, 1:].to_numpy())
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 5.5))
    ax1.scatter(xy[:, 0], xy[:, 1], color="#1f77b4")
    for (x, y), code in zip(xy, frame["State"]):
        ax1.annotate(code, (x, y), xytext=(4, 3), textcoords="offset points")
    ax1.set_title("state embeddings, first two principal components")
    ax1.set_xlabel("component 1")
    ax1.set_ylabel("component 2")
    for code in frame["State"]:
        if code in STATES:
            _, lat, lon = STATES[code]
            ax2.scatter(lon, lat, color="#d62728")
            ax2.annotate(code, (lon, lat), xytext=(4, 3), textcoords="offset points")
    ax2.set_title("the same states on the map (longitude, latitude)")
    ax2.set_xlabel("longitude")
    ax2.set_ylabel("latitude")
    return save_figure(fig, path)


def ordinal_embedding(frame: pd.DataFrame, column: str, path: Path) -> Path:
    """Day-of-week or month embeddings on their first two principal components, joined in order."""
    plt = pyplot()
    frame = frame[frame[column] != "<unknown>"].copy()
    frame["order"] = pd.to_numeric(frame[column], errors="coerce")
    frame = frame.sort_values("order").reset_index(drop=True)
    xy = _pca2(frame.iloc[:, 1:-1].to_numpy())
    fig, ax = plt.subplots(figsize=(6.5, 5))
    ax.plot(xy[:, 0], xy[:, 1], "-o", color="#1f77b4", alpha=0.6)
    for (x, y), label in zip(xy, frame[column]):
        ax.annotate(str(label), (x, y), xytext=(5, 4), textcoords="offset points", fontsize=11)
    ax.set_title(f"{column} embeddings (PCA), in order")
    return save_figure(fig, path)


def importance(frame: pd.DataFrame, path: Path, top: int = 20) -> Path:
    plt = pyplot()
    frame = frame.sort_values("gain", ascending=False).head(top).iloc[::-1]
    fig, ax = plt.subplots(figsize=(8, 6))
    ax.barh(frame["feature"], frame["gain"] / frame["gain"].sum(), color="#2ca02c")
    ax.set_xlabel("share of total gain")
    ax.set_title("GBM on plain features: feature importance")
    return save_figure(fig, path)
