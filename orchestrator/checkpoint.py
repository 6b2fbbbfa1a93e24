"""Model files and resumable training state: the host's one way to write and read them.

Models are saved as a ``state_dict`` (``NAME.pt``) beside the config that rebuilds them
(``NAME.json``), and always loaded with ``weights_only=True``: opening a model file never runs
pickled code. Checkpoints hold whatever a stage hands over plus every RNG state, and are written
atomically (temporary file, fsync, rename): a kill during the write leaves the previous one.
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path
from typing import Any, Callable


def save_model(folder: Path, name: str, model: Any, config: dict | None = None) -> list[Path]:
    """Write ``name.pt`` (the module's state_dict, or a state dict) and ``name.json`` (config)."""
    import torch

    state = model.state_dict() if hasattr(model, "state_dict") else model
    paths = [Path(folder) / f"{name}.pt"]
    torch.save(state, paths[0])
    if config is not None:
        paths.append(Path(folder) / f"{name}.json")
        paths[1].write_text(json.dumps(config, indent=1))
    return paths


def read_config(folder: Path, name: str) -> dict:
    return json.loads((Path(folder) / f"{name}.json").read_text())


def load_state(folder: Path, name: str) -> dict:
    """A saved state dict, on the CPU, weights only."""
    import torch

    return torch.load(Path(folder) / f"{name}.pt", map_location="cpu", weights_only=True)


def load_model(folder: Path, name: str, build: Callable[[dict], Any]) -> Any:
    """``build(config)`` with the saved weights loaded, in eval mode."""
    model = build(read_config(folder, name))
    model.load_state_dict(load_state(folder, name))
    return model.eval()


def rng_states() -> dict:
    """Python, NumPy and torch RNG states in a form ``weights_only`` loading accepts."""
    import numpy as np
    import torch

    name, keys, pos, has_gauss, gauss = np.random.get_state()
    states = {"python": random.getstate(), "torch": torch.get_rng_state(),
              "numpy": (name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss)}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict) -> None:
    import numpy as np
    import torch

    random.setstate(_tuples(states["python"]))
    torch.set_rng_state(states["torch"])
    name, keys, pos, has_gauss, gauss = states["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


def write_atomic(state: dict, path: Path) -> None:
    """torch.save to a temporary file, fsync, then rename over ``path``."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_checkpoint(path: Path) -> dict | None:
    import torch

    if not path.exists():
        return None
    return torch.load(path, map_location="cpu", weights_only=True)


EVERY_ENV = "ORCH_CHECKPOINT_EVERY"
EVERY_DEFAULT = 180.0  # seconds of training between two checkpoints inside an epoch


def checkpoint_every() -> float:
    """Seconds of work between in-epoch checkpoints: ``ORCH_CHECKPOINT_EVERY`` (0 = after every
    batch), 180 by default. An epoch shorter than that is only checkpointed at its end."""
    from orchestrator.errors import UserError

    raw = os.environ.get(EVERY_ENV, "").strip()
    if not raw:
        return EVERY_DEFAULT
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:  # also refuses nan
        raise UserError(f"{EVERY_ENV}={raw!r}: expected a number of seconds >= 0")
    return value


class Resumable:
    """The objects a training loop needs back after a kill, and where the loop starts again.

    ``objects`` are modules, optimizers, schedulers (anything with ``state_dict`` and
    ``load_state_dict``), ``torch.Generator``s and NumPy ``Generator``s. Built from a saved
    checkpoint state, they are loaded from it, ``epoch`` is the number of epochs done and ``extra``
    holds the counters the loop saved (``save(epoch, step=step)``). ``save(epochs_done)`` after each
    epoch hands their states to ``save`` (``StageContext.checkpoint``, which adds the RNG states and
    the history). With ``save=None`` (a loop called outside a stage) it never saves.

    Long epochs are checkpointed inside too: when ``due()`` (``every`` seconds since the last
    save), the loop calls ``save(epoch, within={...})`` with the epoch it is in (not done) and its
    position in it: batches done, running sums, a recurrent state, anything the rest of the epoch
    needs. Resumed from such a checkpoint, ``take_within()`` hands that position back once (an
    empty dict otherwise), and the loop skips the batches it had done."""

    def __init__(self, objects: dict[str, Any], saved: dict | None = None,
                 save: Callable[[dict], None] | None = None, every: float = EVERY_DEFAULT):
        self.objects, self._save, self.epoch, self.extra, self._within = objects, save, 0, {}, {}
        self.every, self._last = every, time.monotonic()
        if saved is not None:
            for name, obj in objects.items():
                _set_state(obj, saved["objects"][name])
            self.epoch, self.extra = int(saved["epoch"]), dict(saved["extra"])
            self._within = dict(saved.get("within") or {})

    def due(self) -> bool:
        """Time for an in-epoch checkpoint (never outside a stage)."""
        return self._save is not None and time.monotonic() - self._last >= self.every

    def take_within(self) -> dict:
        """The in-epoch position a resumed run starts from (once), or {} at an epoch boundary."""
        within, self._within = self._within, {}
        return within

    def save(self, epochs_done: int, within: dict | None = None, **extra: Any) -> None:
        if self._save is not None:
            states = {name: _get_state(obj) for name, obj in self.objects.items()}
            self._save({"epoch": epochs_done, "extra": extra, "objects": states, "within": within or {}})
            self._last = time.monotonic()


def not_resumable(**objects: Any) -> Resumable:
    """The default ``resumable`` of a training loop called outside a stage: starts at epoch 0."""
    return Resumable(objects)


def _get_state(obj: Any) -> Any:
    import numpy as np
    import torch

    if isinstance(obj, torch.Generator):
        return obj.get_state()
    if isinstance(obj, np.random.Generator):
        return obj.bit_generator.state
    return obj.state_dict()


def _set_state(obj: Any, state: Any) -> None:
    import numpy as np
    import torch

    if isinstance(obj, torch.Generator):
        obj.set_state(state)
    elif isinstance(obj, np.random.Generator):
        obj.bit_generator.state = state
    else:
        obj.load_state_dict(state)
