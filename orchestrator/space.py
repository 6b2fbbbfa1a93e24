"""Search spaces declared beside the params, how Optuna samples them, and coarse-to-fine refining.

Scales: ``linear``; ``log`` (learning rates, weight decay); ``reverse_log`` samples 1 - x on a log
scale, so momentum-like betas spread evenly over 0.9, 0.99, 0.999 instead of bunching near 1.
"""

from __future__ import annotations

import math
from typing import Any, Literal, Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field, model_validator

Scale = Literal["linear", "log", "reverse_log"]
REVERSE_PREFIX = "1-"


class ParamSpace(BaseModel):
    """One param's range: ``{low, high, scale, type}`` or ``{choices: [...]}``."""

    model_config = ConfigDict(extra="forbid")

    low: float | None = None
    high: float | None = None
    scale: Scale = "linear"
    type: Literal["float", "int"] = "float"
    choices: list[Any] | None = None

    @model_validator(mode="after")
    def _check(self) -> "ParamSpace":
        if self.choices is not None:
            if self.low is not None or self.high is not None:
                raise ValueError("give either choices or low/high, not both")
            if not self.choices:
                raise ValueError("choices must not be empty")
            return self
        if self.low is None or self.high is None:
            raise ValueError("needs low and high (or choices)")
        if not self.low < self.high:
            raise ValueError(f"low must be < high, got low={self.low}, high={self.high}")
        if self.scale == "log" and self.low <= 0:
            raise ValueError(f"a log scale needs low > 0, got {self.low}")
        if self.scale == "reverse_log":
            if self.type == "int":
                raise ValueError("reverse_log is for floats in (0, 1)")
            if not (0 <= self.low and self.high < 1):
                raise ValueError(f"reverse_log needs 0 <= low < high < 1, got [{self.low}, {self.high}]")
        if self.type == "int" and (self.low != int(self.low) or self.high != int(self.high)):
            raise ValueError("an int range needs whole-number low and high")
        return self

    def suggest(self, trial: Any, name: str) -> Any:
        """Sample with an Optuna trial; returns the real value (beta, not 1 - beta)."""
        if self.choices is not None:
            return trial.suggest_categorical(name, self.choices)
        if self.type == "int":
            return trial.suggest_int(name, int(self.low), int(self.high), log=self.scale == "log")
        if self.scale == "reverse_log":
            x = trial.suggest_float(REVERSE_PREFIX + name, 1 - self.high, 1 - self.low, log=True)
            return 1 - x
        return trial.suggest_float(name, self.low, self.high, log=self.scale == "log")

    # Coarse to fine: work in the sampling scale, where "around the best" means what it should.
    def to_unit(self, value: float) -> float:
        return {"log": math.log, "reverse_log": lambda v: math.log(1 - v)}.get(self.scale, float)(value)

    def from_unit(self, u: float) -> float:
        if self.scale == "log":
            return math.exp(u)
        if self.scale == "reverse_log":
            return 1 - math.exp(u)
        return u

    def refined(self, values: Sequence[Any], margin: float = 0.25) -> "ParamSpace":
        """A narrower range covering ``values`` (the best trials') plus a margin, inside this one."""
        if self.choices is not None:
            kept = [c for c in self.choices if c in set(values)]
            return self.model_copy(update={"choices": kept or self.choices})
        units = sorted(self.to_unit(v) for v in values)
        ends = sorted((self.to_unit(self.low), self.to_unit(self.high)))
        pad = margin * max(units[-1] - units[0], 0.1 * (ends[1] - ends[0]))
        lo_u, hi_u = max(ends[0], units[0] - pad), min(ends[1], units[-1] + pad)
        lo, hi = sorted((self.from_unit(lo_u), self.from_unit(hi_u)))
        lo, hi = max(lo, self.low), min(hi, self.high)
        if self.type == "int":
            lo, hi = math.floor(lo), math.ceil(hi)
            if lo == hi:
                lo, hi = max(self.low, lo - 1), min(self.high, hi + 1)
        return self.model_copy(update={"low": lo, "high": hi})


class Constraint(BaseModel):
    """A satisficing metric: it must stay within ``max`` (and/or above ``min``)."""

    model_config = ConfigDict(extra="forbid")
    min: float | None = None
    max: float | None = None

    def violation(self, value: float | None) -> float:
        """0 when satisfied, else how far outside (positive); a missing value is infinitely off."""
        if value is None or math.isnan(value):
            return math.inf
        over = value - self.max if self.max is not None else 0.0
        under = self.min - value if self.min is not None else 0.0
        return max(0.0, over, under)


class SweepConfig(BaseModel):
    """``<task>.sweep`` in params.yaml. The CLI's options override these."""

    model_config = ConfigDict(extra="forbid")

    metric: str | None = None  # default: the task's val_<metric>
    direction: Literal["minimize", "maximize"] = "minimize"
    trials: int = Field(20, gt=0)
    jobs: int = Field(1, gt=0)
    sampler: Literal["random", "tpe"] = "random"
    seed: int | None = 0
    pruner: Literal["median", "none"] = "median"
    timeout: float | None = Field(None, gt=0)
    constraints: dict[str, Constraint] = {}
    space: dict[str, ParamSpace] = {}
    in_pipeline: bool = False  # `orch dvc` adds a TASK_sweep stage to dvc.yaml
    heartbeat: int = Field(30, gt=0, description="seconds between a running trial's heartbeats")
    grace_period: int = Field(120, gt=0, description="seconds without a heartbeat before a trial is lost")
    max_retries: int = Field(2, ge=0, description="reruns of a trial whose worker was lost")

    @model_validator(mode="after")
    def _grace_exceeds_heartbeat(self) -> "SweepConfig":
        if self.grace_period <= self.heartbeat:
            raise ValueError(f"grace_period ({self.grace_period}) must exceed heartbeat ({self.heartbeat})")
        return self


def sample(space: Mapping[str, ParamSpace], trial: Any) -> dict[str, Any]:
    """Real values for every param in the space; nested keys (``a.b``) stay dotted."""
    return {name: spec.suggest(trial, name) for name, spec in space.items()}


def values_from_optuna(params: Mapping[str, Any]) -> dict[str, Any]:
    """An Optuna trial's params with reverse_log keys mapped back to their real values."""
    out = {}
    for key, value in params.items():
        if key.startswith(REVERSE_PREFIX):
            out[key[len(REVERSE_PREFIX):]] = 1 - value
        else:
            out[key] = value
    return out


def refine_space(
    space: Mapping[str, ParamSpace], best_params: Sequence[Mapping[str, Any]]
) -> dict[str, ParamSpace]:
    """Narrow every range around the params of the best trials."""
    return {
        name: spec.refined([p[name] for p in best_params if name in p]) if best_params else spec
        for name, spec in space.items()
    }
