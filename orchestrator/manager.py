"""Builds the PluginManager: loads every plugin of the ``orch`` entry-point group, built-ins
included, so that one broken plugin is reported by name and the others keep working.

A plugin whose lifecycle hook raises (a tracker whose server broke, a bug) is reported in one
line and detached for the rest of the command; training and the other plugins go on, and the run
it had opened is closed through its own ``orch_run_error``.

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
from orchestrator.errors import Pruned, RunFailed, UserError
from orchestrator.hookspecs import API_VERSION, NAME

DISABLE_ENV = "ORCH_DISABLE_PLUGINS"
TRACE_ENV = "ORCH_TRACE_PLUGINS"
PREFIX = f"{NAME}_"
API_ATTRIBUTE = "ORCH_API"  # a plugin module's supported contract versions: ">=1,<2"
LIFECYCLE = ("orch_configure", "orch_run_start", "orch_epoch_end", "orch_artifact", "orch_report_built",
             "orch_run_end", "orch_run_error", "orch_run_lost", "orch_sweep_start", "orch_trial_start",
             "orch_trial_end", "orch_sweep_end")
PASSED_ON = (UserError, RunFailed, Pruned)  # orch's own signals: a user's mistake, a failed run, a pruned trial


@dataclass
class PluginStatus:
    """One line of ``orch plugins``."""

    name: str
    dist: str
    version: str
    status: str  # "loaded", "blocked", "skipped: <why>" or "error: <reason>"


class OrchPluginManager(pluggy.PluginManager):
    """A PluginManager that refuses hookimpls without the ``orch_`` prefix and remembers what
    each entry point did when loaded."""

    def __init__(self) -> None:
        super().__init__(NAME)
        self.statuses: dict[str, PluginStatus] = {}
        self.task_cache: tuple[tuple, dict] | None = None  # see registry.load_tasks
        self.detached: dict[str, str] = {}  # plugin -> why its lifecycle hooks are no longer called
        self.unguarded: dict[tuple[str, str], Any] = {}  # (plugin, hook) -> its own function

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
                plugin = ep.load()
                unsupported = _unsupported_api(plugin)
                if unsupported:
                    status.status = f"skipped: {unsupported}"
                    continue
                self.register(plugin, name=ep.name)
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
                unknown = self._unknown_hooks(exc.plugin)
                self.unregister(exc.plugin)
                status = self.statuses.setdefault(name, PluginStatus(name, "?", "?", ""))
                status.status = f"error: {unknown or _one_line(exc)}"

    def _unknown_hooks(self, plugin: Any) -> str:
        """``unknown hook 'orch_regster_tasks' (did you mean orch_register_tasks?)``, or ""."""
        import difflib

        known = [n for n in dir(hookspecs) if n.startswith(PREFIX)]
        parts = []
        for impl in self.get_hookcallers(plugin) or []:
            if impl.spec is None:
                close = difflib.get_close_matches(impl.name, known, n=1)
                parts.append(f"unknown hook {impl.name!r}" + (f" (did you mean {close[0]}?)" if close else ""))
        return "; ".join(parts)

    def detach(self, plugin: str, hook: str, exc: BaseException, kwargs: dict[str, Any]) -> None:
        """Stop calling ``plugin``'s lifecycle hooks, say so, and let it close what it opened."""
        self.detached[plugin] = f"{hook}: {type(exc).__name__}: {_one_line(exc)}"
        print(f"orch: plugin {plugin!r} failed in {self.detached[plugin]}; it is detached for the rest of "
              f"this command (the run goes on without it)", file=sys.stderr)
        closer = {"run": "orch_run_error", "sweep": "orch_sweep_end"}
        for arg, name in closer.items():
            if arg in kwargs and hook not in ("orch_run_error", "orch_run_end", "orch_sweep_end"):
                function = self.unguarded.get((plugin, name))
                if function is not None:
                    extra = {"error": exc} if arg == "run" else {"best": None, "files": []}
                    try:
                        function(**{arg: kwargs[arg], **extra})
                    except Exception:  # noqa: S110  (it already failed once: closing is a courtesy)
                        pass

    def plugin_meta(self, plugin_name: str) -> tuple[str, str]:
        """(distribution, version) that provides a registered plugin."""
        status = self.statuses.get(plugin_name)
        return (status.dist, status.version) if status else ("?", "?")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _unsupported_api(plugin: Any) -> str | None:
    """Why a plugin that declares ``ORCH_API`` cannot be used with this host, or None."""
    declared = getattr(plugin, API_ATTRIBUTE, None)
    if declared is None:
        return None
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    try:
        supported = SpecifierSet(str(declared))
    except InvalidSpecifier:
        raise ValueError(f"{API_ATTRIBUTE} = {declared!r} is not a version specifier (e.g. \">=1,<2\")") from None
    if supported.contains(str(API_VERSION)):
        return None
    return f"supports orch API {declared}, this orch has API {API_VERSION}"


def _isolate_lifecycle(pm: OrchPluginManager) -> None:
    """Each installed plugin's lifecycle hooks, guarded: one that raises is detached, not fatal."""
    for hook in LIFECYCLE:
        for impl in getattr(pm.hook, hook).get_hookimpls():
            if impl.plugin_name in pm.statuses:  # installed through the entry point, not the host's own
                impl.function = _guarded(pm, impl, hook)


def _guarded(pm: OrchPluginManager, impl: Any, hook: str) -> Any:
    function, argnames, plugin = impl.function, impl.argnames, impl.plugin_name

    def guarded(*args: Any) -> Any:
        if plugin in pm.detached:
            return None
        try:
            return function(*args)
        except PASSED_ON:
            raise
        except Exception as exc:
            pm.detach(plugin, hook, exc, dict(zip(argnames, args)))
            return None

    pm.unguarded[(plugin, hook)] = function
    return guarded


def get_plugin_manager(*, load_entrypoints: bool = True, trace: bool | None = None) -> OrchPluginManager:
    """A new PluginManager with the hookspecs, the installed plugins and optional tracing."""
    pm = OrchPluginManager()
    pm.add_hookspecs(hookspecs)
    if load_entrypoints:
        pm.load_entrypoints()
    pm.check_pending_plugins()
    _isolate_lifecycle(pm)
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
