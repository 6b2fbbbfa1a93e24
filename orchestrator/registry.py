"""The task registry: every task that plugins return from ``orch_register_tasks``."""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.errors import UserError
from orchestrator.manager import OrchPluginManager, PluginStatus
from orchestrator.task import Task


@dataclass(frozen=True)
class RegisteredTask:
    task: Task
    plugin: str
    version: str


def load_tasks(pm: OrchPluginManager) -> dict[str, RegisteredTask]:
    """Ask each plugin for its tasks; a plugin whose hook raises is reported and skipped."""
    tasks: dict[str, RegisteredTask] = {}
    for impl in pm.hook.orch_register_tasks.get_hookimpls():
        try:
            returned = list(impl.function() or [])
            bad = [t for t in returned if not isinstance(t, Task)]
            if bad:
                raise TypeError(f"orch_register_tasks returned {type(bad[0]).__name__}, not Task")
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
    return dict(sorted(tasks.items()))


def get_task(pm: OrchPluginManager, name: str) -> RegisteredTask:
    tasks = load_tasks(pm)
    if name not in tasks:
        known = ", ".join(tasks) or "none: no task plugin is loaded (see `orch plugins`)"
        raise UserError(f"unknown task {name!r} (available: {known})")
    return tasks[name]
