"""The one place that picks the device (ORCH_DEVICE if set, else CUDA, then Apple MPS, then CPU)
and torch's CPU threads: this process's share of the cores it may use, among the trainings
running on this machine (two runs with torch's default threads each on 2 cores trained 8x slower
than alone: thread oversubscription; with one thread each, 1.2x)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from orchestrator.leases import started_at
from orchestrator.warm import CHOSEN_ENV, runtime_dir

THREADS_ENV = "ORCH_THREADS"  # a fixed thread count, overriding the share


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


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity: taskset, a container's cpuset)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def threads_for(cores: int, trainings: int) -> int:
    """An even share of ``cores`` among ``trainings`` (at least one thread)."""
    return max(1, cores // max(1, trainings))


class Trainings:
    """The trainings running on this machine: one file per process (pid and start time) in a
    folder every orch process of this user shares, whatever its project."""

    def __init__(self, folder: Path | None = None):
        self.folder = folder or Path(runtime_dir()) / "trainings"
        self.mine = self.folder / f"{os.getpid()}"

    def join(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.mine.write_text(repr(started_at(os.getpid())))

    def leave(self) -> None:
        self.mine.unlink(missing_ok=True)

    def live(self) -> int:
        """How many trainings run now (this one too, once joined); files of dead ones are removed."""
        count = 0
        for path in self.folder.glob("[0-9]*"):
            try:
                started = started_at(int(path.name))  # a pid alone may be reused
                alive = started is not None and path.read_text() == repr(started)
            except (OSError, ValueError):
                continue
            if alive:
                count += 1
            else:
                path.unlink(missing_ok=True)
        return count


_TRAININGS: Trainings | None = None


def join_trainings() -> None:
    """This process trains from now on (a stage began): it counts in every process's share."""
    global _TRAININGS
    _TRAININGS = _TRAININGS or Trainings()
    _TRAININGS.join()
    share_threads()


def leave_trainings() -> None:
    if _TRAININGS is not None:
        _TRAININGS.leave()


_last_share = float("-inf")


def share_threads(every: float = 0.0) -> int | None:
    """Set torch's intra-op threads: ORCH_THREADS, else OMP_NUM_THREADS when the user (or Ray) set
    it, else this process's share of the usable cores among the live trainings (called when a
    stage starts and after each epoch, so a run alone again takes the cores back). Before torch
    is imported the choice goes to OMP_NUM_THREADS, which torch reads when it starts. With
    ``every``, nothing is done (None) within that many seconds of the last call (a batch loop)."""
    global _last_share
    now = time.monotonic()
    if now - _last_share < every:
        return None
    _last_share = now
    omp = os.environ.get("OMP_NUM_THREADS")
    users = omp if omp is not None and omp != os.environ.get(CHOSEN_ENV) else None
    fixed = os.environ.get(THREADS_ENV) or users
    if fixed and fixed.isdigit():
        n = max(1, int(fixed))
    else:
        n = threads_for(usable_cores(), _TRAININGS.live() if _TRAININGS is not None else 1)
    torch = sys.modules.get("torch")
    if torch is None and users is None:  # never overwrite the user's own setting
        os.environ["OMP_NUM_THREADS"] = str(n)
        if not os.environ.get(THREADS_ENV):  # a share, not a setting: the next call may change it
            os.environ[CHOSEN_ENV] = str(n)
    elif torch is not None and torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n
