"""One set of GPUs per sweep worker (``--gpus-per-trial K``): each worker process sees only its
own K devices through ``CUDA_VISIBLE_DEVICES``, taken round robin from the GPUs this machine
shows, so trials never share a device. No GPU, or fewer than the workers need, is an error
before anything starts: never a silent run on the CPU."""

from __future__ import annotations

import os

from orchestrator.errors import UserError

ENV = "CUDA_VISIBLE_DEVICES"


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as CUDA names them: the ids in CUDA_VISIBLE_DEVICES when it
    is set (ids or UUIDs), else 0..n-1 for the n devices torch finds."""
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    listed = os.environ.get(ENV)
    if listed is not None:
        ids = [d.strip() for d in listed.split(",") if d.strip()]
        return ids[:count]
    return [str(i) for i in range(count)]


def assign(gpus: list[str], workers: int, per_trial: int) -> list[list[str]]:
    """The devices of each worker slot: slot i takes the next ``per_trial`` GPUs in turn."""
    if per_trial < 1:
        raise UserError(f"--gpus-per-trial {per_trial}: expected 1 or more")
    if not gpus:
        shown = os.environ.get(ENV)
        where = f" ({ENV}={shown!r})" if shown is not None else ""
        raise UserError(f"--gpus-per-trial {per_trial}: this machine shows no GPU{where}; "
                        "drop the option to run on the CPU")
    needed = workers * per_trial
    if needed > len(gpus):
        raise UserError(f"--gpus-per-trial {per_trial} with {workers} worker(s) needs {needed} GPUs, "
                        f"this machine shows {len(gpus)}; use --jobs {max(1, len(gpus) // per_trial)}"
                        + ("" if len(gpus) >= per_trial else " and fewer GPUs per trial"))
    return [gpus[i * per_trial:(i + 1) * per_trial] for i in range(workers)]


def pin(devices: list[str] | None) -> None:
    """Show this process only ``devices`` (before CUDA starts in it); None leaves it as it is."""
    if devices is not None:
        os.environ[ENV] = ",".join(devices)
