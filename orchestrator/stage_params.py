"""What a stage may read of its task's params: exactly the keys it declares.

The declared keys are the stage's DVC ``params:``, so a read of anything else would let the cache
key drift from what the code uses; it is an error that names the stage and the key.
"""

from __future__ import annotations

from typing import Any

from orchestrator.errors import ContractError

SEED = "seed"  # the task's seed param, if its model has one: the host seeds every stage from it


def declared_keys(stage_params: tuple[str, ...], model: type) -> tuple[str, ...]:
    """The stage's keys, with the task's ``seed`` (the host seeds every stage from it) when it has one."""
    keys = tuple(stage_params)
    if SEED in getattr(model, "model_fields", {}) and SEED not in keys:
        keys += (SEED,)
    return keys


def _covered(key: str, declared: tuple[str, ...]) -> bool:
    return any(key == d or key.startswith(d + ".") for d in declared)


def restrict(data: dict, declared: tuple[str, ...], prefix: str = "") -> dict:
    """The part of a params dump that ``declared`` covers (nested groups kept partial)."""
    out = {}
    for key, value in data.items():
        full = prefix + key
        if _covered(full, declared):
            out[key] = value
        elif isinstance(value, dict) and any(d.startswith(full + ".") for d in declared):
            out[key] = restrict(value, declared, full + ".")
    return out


class StageParams:
    """Reads like the params model (``p.lr``, ``p.gbm.learning_rate``); undeclared keys raise."""

    def __init__(self, model: Any, declared: tuple[str, ...], where: str, prefix: str = ""):
        self._model, self._declared, self._where, self._prefix = model, declared, where, prefix

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        full = self._prefix + name
        if _covered(full, self._declared):
            return getattr(self._model, name)
        if any(d.startswith(full + ".") for d in self._declared):
            return StageParams(getattr(self._model, name), self._declared, self._where, full + ".")
        shown = ", ".join(self._declared) or "none"
        raise ContractError(f"stage {self._where} reads param {full!r}, which it does not declare "
                            f"(its params: {shown})")

    @property
    def declared(self) -> tuple[str, ...]:
        return self._declared

    def model_dump(self, keys: tuple[str, ...] | None = None, **kwargs: Any) -> dict:
        """The declared part of the params (or the part ``keys`` names), as the model would dump it."""
        return restrict(self._model.model_dump(**kwargs), self._declared if keys is None else keys, self._prefix)

    def __repr__(self) -> str:
        return f"StageParams({self._where}: {', '.join(self._declared)})"
