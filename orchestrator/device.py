"""The one place that picks the device: ORCH_DEVICE if set, else CUDA, then Apple MPS, then CPU."""

from __future__ import annotations

import os


def pick_device() -> "torch.device":  # noqa: F821 (torch is imported lazily)
    import torch

    wanted = os.environ.get("ORCH_DEVICE")
    if wanted:
        return torch.device(wanted)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def device_tags() -> dict[str, str]:
    """What a run trains on, for its tags: the device, and the GPUs its process was pinned to
    (``--gpus-per-trial`` sets CUDA_VISIBLE_DEVICES for each sweep worker)."""
    tags = {"orch.device": str(pick_device())}
    pinned = os.environ.get("CUDA_VISIBLE_DEVICES")
    if pinned is not None:
        tags["orch.gpus"] = pinned
    return tags


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) for a reproducible run."""
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
