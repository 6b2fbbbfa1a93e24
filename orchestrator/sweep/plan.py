"""A sweep's settings, resolved once: the task's space, constraints and objective, overridden by
``<task>.sweep`` in params.yaml, overridden by the CLI; the study named after all of them."""

from __future__ import annotations

import math
import re
from typing import Any

from pydantic import BaseModel, ValidationError

from orchestrator.errors import UserError
from orchestrator.params import flatten, format_error, params_hash, set_dotted
from orchestrator.registry import RegisteredTask
from orchestrator.runner import Project
from orchestrator.space import ParamSpace, SweepConfig, refine_space
from orchestrator.task import SweepInfo, split_metrics

TOP_SHARE = 0.2  # refine around the best 20% of completed trials (at least 3)


def default_storage(project: Project) -> str:
    return f"sqlite:///{project.root / 'optuna.db'}"


def plan_sweep(
    reg: RegisteredTask,
    project: Project,
    params: BaseModel,
    config: SweepConfig,
    *,
    study: str | None = None,
    storage: str | None = None,
    refine: bool = False,
) -> SweepInfo:
    """The settings of ``orch sweep``; ``refine`` narrows the space of ``study`` into a new study."""
    task = reg.task
    space = dict(config.space) or {k: ParamSpace.model_validate(v) for k, v in task.space.items()}
    if not space:
        raise UserError(f"{task.name}: no search space; declare {task.name}.sweep.space in params.yaml")
    check_space(space, params, task.name)
    constraints = ({k: v.model_dump(exclude_none=True) for k, v in config.constraints.items()}
                   if config.constraints else {k: dict(v) for k, v in task.constraints.items()})
    metric = config.metric or task.objective
    check_metrics(task, metric, constraints)
    storage = storage or default_storage(project)
    plain = params.model_dump(mode="json")
    if refine:
        if not study:
            raise UserError("--refine needs --study NAME: the finished study to refine")
        space, study = refined(study, storage, space, config.direction)
    elif not study:
        fingerprint = {"params": plain, "space": {k: v.model_dump() for k, v in space.items()}, "metric": metric,
                       "direction": config.direction, "sampler": config.sampler, "seed": config.seed}
        study = f"{task.name}-{params_hash(fingerprint)[:8]}"
    return SweepInfo(
        task=task.name, study=study, storage=storage, metric=metric, direction=config.direction,
        n_trials=config.trials, sampler=config.sampler, seed=config.seed, pruner=config.pruner,
        timeout=config.timeout, heartbeat=config.heartbeat, grace_period=config.grace_period,
        max_retries=config.max_retries, params=plain, space={k: v.model_dump(exclude_none=True) for k, v in space.items()},
        constraints=constraints,
    )


def check_space(space: dict[str, ParamSpace], params: BaseModel, task: str) -> None:
    """Every key is a param, and the params model accepts both ends of each range and every choice:
    a range beyond a field's limit fails here, not in one trial after another."""
    plain = params.model_dump(mode="json")
    known = flatten(plain)
    for key, spec in space.items():
        if key not in known:
            raise UserError(f"{task}.sweep.space.{key}: not a param of {task} (params: {', '.join(known)})")
        for end, value in _extremes(spec):
            try:
                type(params).model_validate(set_dotted(plain, {key: value}, task, "sampled"))
            except ValidationError as exc:
                raise UserError(f"{task}.sweep.space.{key}: {end} {value!r} is refused by the params "
                                f"({format_error(exc, task, type(params))})") from None


def _extremes(spec: ParamSpace) -> list[tuple[str, Any]]:
    if spec.choices is not None:
        return [("choice", c) for c in spec.choices]
    cast = int if spec.type == "int" else float
    return [("low", cast(spec.low)), ("high", cast(spec.high))]


def check_metrics(task, metric: str, constraints: dict) -> None:
    """The objective and every constraint name a metric the task logs (when it says which)."""
    named = [(metric, f"{task.name}.sweep.metric (or --metric)"),
             *((k, f"{task.name}.sweep.constraints.{k}") for k in constraints)]
    for name, where in named:
        if task.logs(name) is False:
            known = ", ".join(split_metrics(task.metric))
            raise UserError(f"{where}: {name} is not a metric {task.name} logs (its own: {known}; "
                            f"the others: {', '.join(task.metrics)})")


def refined(name: str, storage: str, space: dict[str, ParamSpace], direction: str):
    """The space narrowed around the best feasible trials of study ``name``, and the new study's
    name (``S-refine1``, then ``S-refine2``...)."""
    from orchestrator.sweep.study import Study

    old = Study.existing(name, storage)
    done = [r for r in old.results() if r.state == "COMPLETE" and r.feasible]
    if not done:
        raise UserError(f"--refine: study {name} has no completed feasible trial to refine around")
    done.sort(key=lambda r: r.value, reverse=direction == "maximize")
    best = done[: max(3, math.ceil(TOP_SHARE * len(done)))]
    stored = old.space()
    if stored:
        space = {k: ParamSpace.model_validate(v) for k, v in stored.items()}
    narrowed = refine_space(space, [r.params for r in best])
    match = re.fullmatch(r"(.*)-refine(\d+)", name)
    new_name = f"{match.group(1)}-refine{int(match.group(2)) + 1}" if match else f"{name}-refine1"
    return narrowed, new_name
