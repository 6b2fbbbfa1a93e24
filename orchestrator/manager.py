"""Builds the PluginManager: loads every plugin of the ``orch`` entry-point group, built-ins
included, so that one broken plugin is reported by name and the others keep working.

Environment:
  ORCH_DISABLE_PLUGINS  comma-separated entry-point names not to load (``*`` blocks all).
  ORCH_TRACE_PLUGINS    when set (not "0"), every hook call and result is traced to stderr.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import pluggy

from orchestrator import hookspecs
from orchestrator.hookspecs import NAME

DISABLE_ENV = "ORCH_DISABLE_PLUGINS"
TRACE_ENV = "ORCH_TRACE_PLUGINS"
PREFIX = f"{NAME}_"


@dataclass
class PluginStatus:
    """One line of ``orch plugins``."""

    name: str
    dist: str
    version: str
    status: str  # "loaded", "blocked" or "error: <reason>"


class OrchPluginManager(pluggy.PluginManager):
    """A PluginManager that refuses hookimpls without the ``orch_`` prefix and remembers what
    each entry point did when loaded."""

    def __init__(self) -> None:
        super().__init__(NAME)
        self.statuses: dict[str, PluginStatus] = {}
        self.task_cache: tuple[tuple, dict] | None = None  # see registry.load_tasks

    def parse_hookimpl_opts(self, plugin: Any, name: str) -> Any:
        opts = super().parse_hookimpl_opts(plugin, name)
        if opts is not None and not name.startswith(PREFIX):
            raise pluggy.PluginValidationError(
                plugin, f"hook implementation {name!r} must start with {PREFIX!r}"
            )
        return opts

    def load_entrypoints(self, group: str = NAME) -> None:
        blocked = {n.strip() for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()}
        for ep in sorted(metadata.entry_points(group=group), key=lambda e: e.name):
            dist = ep.dist.name if ep.dist else "?"
            version = ep.dist.version if ep.dist else "?"
            status = PluginStatus(ep.name, dist, version, "loaded")
            self.statuses[ep.name] = status
            if ep.name in blocked or "*" in blocked:
                status.status = f"blocked ({DISABLE_ENV})"
                continue
            if self.get_plugin(ep.name) is not None:
                continue
            try:
                self.register(ep.load(), name=ep.name)
            except Exception as exc:  # any import or validation failure: skip, report by name
                if self.get_plugin(ep.name) is not None:  # half-registered before it failed
                    self.unregister(name=ep.name)
                status.status = f"error: {type(exc).__name__}: {_one_line(exc)}"

    def check_pending_plugins(self) -> None:
        """``check_pending()``, unregistering (and reporting) each plugin that fails it."""
        while True:
            try:
                self.check_pending()
                return
            except pluggy.PluginValidationError as exc:
                name = self.get_name(exc.plugin) or repr(exc.plugin)
                self.unregister(exc.plugin)
                status = self.statuses.setdefault(name, PluginStatus(name, "?", "?", ""))
                status.status = f"error: {_one_line(exc)}"

    def plugin_meta(self, plugin_name: str) -> tuple[str, str]:
        """(distribution, version) that provides a registered plugin."""
        status = self.statuses.get(plugin_name)
        return (status.dist, status.version) if status else ("?", "?")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def get_plugin_manager(*, load_entrypoints: bool = True, trace: bool | None = None) -> OrchPluginManager:
    """A new PluginManager with the hookspecs, the installed plugins and optional tracing."""
    pm = OrchPluginManager()
    pm.add_hookspecs(hookspecs)
    if load_entrypoints:
        pm.load_entrypoints()
    pm.check_pending_plugins()
    _shield_hooks(pm)
    if trace if trace is not None else os.environ.get(TRACE_ENV, "0") not in ("", "0"):
        _trace(pm)
    return pm


def _shield_hooks(pm: pluggy.PluginManager) -> None:
    """A stop signal waits for the hook call under way: a tracker's write is never cut in half."""
    from orchestrator import interrupt

    def before(hook_name: str, hook_impls: list, kwargs: dict) -> None:
        interrupt.enter_shield()

    def after(outcome: Any, hook_name: str, hook_impls: list, kwargs: dict) -> None:
        interrupt.leave_shield()

    pm.add_hookcall_monitoring(before, after)


def _trace(pm: pluggy.PluginManager) -> None:
    def before(hook_name: str, hook_impls: list, kwargs: dict) -> None:
        names = ", ".join(impl.plugin_name for impl in hook_impls)
        print(f"[orch trace] {hook_name}({', '.join(kwargs)}) -> [{names}]", file=sys.stderr)

    def after(outcome: Any, hook_name: str, hook_impls: list, kwargs: dict) -> None:
        exc = outcome.exception
        result = f"raised {type(exc).__name__}" if exc else f"returned {outcome.get_result()!r:.200}"
        print(f"[orch trace] {hook_name} {result}", file=sys.stderr)

    pm.add_hookcall_monitoring(before, after)
