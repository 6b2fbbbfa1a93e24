"""The task registry: every task that plugins return from ``orch_register_tasks``, checked
against the stage contract (a task that breaks it is reported as its plugin's error and skipped)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from orchestrator.errors import UserError
from orchestrator.manager import OrchPluginManager, PluginStatus
from orchestrator.task import Task


@dataclass(frozen=True)
class RegisteredTask:
    task: Task
    plugin: str
    version: str


def load_tasks(pm: OrchPluginManager) -> dict[str, RegisteredTask]:
    """Ask each plugin for its tasks (one traced hook call per plugin, cached per set of plugins);
    a plugin whose hook raises or returns a broken task is reported and skipped."""
    key = tuple(id(p) for p in pm.get_plugins())
    if pm.task_cache is not None and pm.task_cache[0] == key:
        return pm.task_cache[1]
    tasks: dict[str, RegisteredTask] = {}
    for impl in pm.hook.orch_register_tasks.get_hookimpls():
        others = [p for p in pm.get_plugins() if p is not impl.plugin]
        try:
            returned = [t for answer in pm.subset_hook_caller("orch_register_tasks", others)() for t in answer or []]
            for task in returned:
                problem = task_problem(task)
                if problem:
                    raise TypeError(problem)
        except Exception as exc:  # a broken plugin must not take the host down
            status = pm.statuses.setdefault(impl.plugin_name, PluginStatus(impl.plugin_name, "?", "?", ""))
            status.status = f"error: orch_register_tasks: {type(exc).__name__}: {exc}"
            continue
        _, version = pm.plugin_meta(impl.plugin_name)
        for task in returned:
            if task.name in tasks:
                other = tasks[task.name].plugin
                raise UserError(
                    f"task {task.name!r} is registered by two plugins: {other!r} and {impl.plugin_name!r}"
                )
            tasks[task.name] = RegisteredTask(task, impl.plugin_name, version)
    result = dict(sorted(tasks.items()))
    pm.task_cache = (key, result)
    return result


def task_problem(task: object) -> str | None:
    """What is wrong with a registered task, in one line, or None."""
    if not isinstance(task, Task):
        return f"orch_register_tasks returned {type(task).__name__}, not Task"
    if not isinstance(task.name, str) or not task.name.isidentifier():
        return f"task name {task.name!r} must be an identifier"
    wrong = _wrong_types(task)
    if wrong:
        return f"task {task.name!r}: {wrong}"
    seen: list[str] = []
    for stage in task.stages:
        where = f"task {task.name!r}, stage {stage.name!r}"
        if stage.name in seen:
            return f"{where}: two stages with that name"
        for name in stage.inputs:
            if name not in seen:
                return f"{where}: input {name!r} is not an earlier stage (earlier: {', '.join(seen) or 'none'})"
        for key in stage.params:
            if not _has_field(task.params_model, key):
                return f"{where}: param {key!r} is not a field of {task.params_model.__name__}"
        seen.append(stage.name)
    for art in task.artifacts:
        if art.stage not in seen:
            return f"task {task.name!r}: artifact {art.name!r} names no stage ({art.stage!r})"
    return None


def _wrong_types(task: Task) -> str | None:
    """The first field of ``task`` (or of its stages and artifacts) of the wrong type, in words."""
    from typing import get_args

    from pydantic import BaseModel

    from orchestrator.task import ArtifactKind, Artifact, HumanBaseline, Stage

    def strings(value: object) -> bool:
        return isinstance(value, (tuple, list)) and all(isinstance(v, str) for v in value)

    stages_ok = isinstance(task.stages, (tuple, list)) and task.stages and all(isinstance(s, Stage) for s in task.stages)
    artifacts_ok = isinstance(task.artifacts, (tuple, list)) and all(isinstance(a, Artifact) for a in task.artifacts)
    checks = [
        ("description", isinstance(task.description, str), "a string"),
        ("params_model", isinstance(task.params_model, type) and issubclass(task.params_model, BaseModel),
         "a pydantic model class (orchestrator.Params)"),
        ("metric", isinstance(task.metric, str) and task.metric.isidentifier(), "an identifier (rmse, error)"),
        ("human", isinstance(task.human, HumanBaseline), "a HumanBaseline"),
        ("stages", stages_ok, "a non-empty tuple of Stage"),
        ("artifacts", artifacts_ok, "a tuple of Artifact"),
        ("space", isinstance(task.space, Mapping) and all(isinstance(v, Mapping) for v in task.space.values()),
         "a mapping of param -> {low, high, scale...}"),
        ("constraints", isinstance(task.constraints, Mapping), "a mapping of metric -> {min, max}"),
        ("metrics", strings(task.metrics), "a tuple of metric names"),
        ("commands", isinstance(task.commands, Mapping) and all(callable(c) for c in task.commands.values()),
         "a mapping of verb -> click command"),
    ]
    for stage in task.stages if stages_ok else ():
        where = f"stage {stage.name!r}"
        checks += [(f"{where} name", isinstance(stage.name, str) and stage.name.isidentifier(), "an identifier"),
                   (f"{where} fn", callable(stage.fn), "a function of a StageContext"),
                   (f"{where} params", strings(stage.params), "a tuple of param keys"),
                   (f"{where} inputs", strings(stage.inputs), "a tuple of stage names"),
                   (f"{where} tracked", isinstance(stage.tracked, bool), "True or False")]
    for art in task.artifacts if artifacts_ok else ():
        checks.append((f"artifact {art.name!r} kind", art.kind in get_args(ArtifactKind),
                       f"one of {', '.join(get_args(ArtifactKind))}"))
    for name, ok, expected in checks:
        if not ok:
            shown = f" (got {getattr(task, name)!r:.60})" if " " not in name else ""
            return f"{name} must be {expected}{shown}"
    return None


def _has_field(model: type, key: str) -> bool:
    for part in key.split("."):
        fields = getattr(model, "model_fields", None)
        if not fields or part not in fields:
            return False
        model = fields[part].annotation
    return True


def get_task(pm: OrchPluginManager, name: str) -> RegisteredTask:
    tasks = load_tasks(pm)
    if name not in tasks:
        known = ", ".join(tasks) or "none: no task plugin is loaded (see `orch plugins`)"
        raise UserError(f"unknown task {name!r} (available: {known})")
    return tasks[name]
