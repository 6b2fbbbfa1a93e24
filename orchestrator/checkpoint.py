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


class Resumable:
    """The objects a training loop needs back after a kill, and where the loop starts again.

    ``objects`` are modules, optimizers, schedulers (anything with ``state_dict`` and
    ``load_state_dict``), ``torch.Generator``s and NumPy ``Generator``s. Built from a saved
    checkpoint state, they are loaded from it, ``epoch`` is the number of epochs done and ``extra``
    holds the counters the loop saved (``save(epoch, step=step)``). ``save(epochs_done)`` after each
    epoch hands their states to ``save`` (``StageContext.checkpoint``, which adds the RNG states and
    the history). With ``save=None`` (a loop called outside a stage) it never saves."""

    def __init__(self, objects: dict[str, Any], saved: dict | None = None,
                 save: Callable[[dict], None] | None = None):
        self.objects, self._save, self.epoch, self.extra = objects, save, 0, {}
        if saved is not None:
            for name, obj in objects.items():
                _set_state(obj, saved["objects"][name])
            self.epoch, self.extra = int(saved["epoch"]), dict(saved["extra"])

    def save(self, epochs_done: int, **extra: Any) -> None:
        if self._save is not None:
            states = {name: _get_state(obj) for name, obj in self.objects.items()}
            self._save({"epoch": epochs_done, "extra": extra, "objects": states})


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
