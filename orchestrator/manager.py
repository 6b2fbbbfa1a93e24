"""Builds the PluginManager: loads every plugin of the ``orch`` entry-point group, built-ins
included, so that one broken plugin is reported by name and the others keep working.

A plugin whose hook raises (a tracker whose server broke, a bug) is reported in one line and
detached for the rest of the command; training and the other plugins go on, and every run and
sweep it had opened is closed through its own ``orch_run_error`` / ``orch_sweep_end``. (A task
plugin whose ``orch_register_tasks`` raises, or returns a broken task, is reported by the registry.)

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
GUARDED = ("orch_configure", "orch_register_commands", "orch_run_start", "orch_epoch_end", "orch_artifact",
           "orch_report_built", "orch_run_end", "orch_run_error", "orch_run_lost", "orch_sweep_start",
           "orch_trial_start", "orch_trial_end", "orch_sweep_end", "orch_doctor", "orch_fetch_run")
# what a plugin opens, by the argument that carries it: the hook that opens it, those that close it
# (the last one closes it when the plugin is detached)
OPENS = {"run": ("orch_run_start", ("orch_run_end", "orch_run_error")),
         "sweep": ("orch_sweep_start", ("orch_sweep_end",))}
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
        self.detached: dict[str, str] = {}  # plugin -> why its hooks are no longer called
        self.unguarded: dict[tuple[str, str], Any] = {}  # (plugin, hook) -> its own function
        self.opened: dict[str, list[tuple[str, Any]]] = {}  # plugin -> (argument, RunInfo/SweepInfo) still open

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
                wrong = _wrong_arguments(plugin)
                if wrong:
                    status.status = f"error: {wrong}"
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

    def add_plugin(self, plugin: Any, name: str) -> None:
        """Register a plugin that no entry point names (the pytest kit's ``Sandbox(plugins=...)``),
        isolated as an installed one is."""
        self.register(plugin, name=name)
        self.statuses[name] = PluginStatus(name, "?", "?", "loaded")
        _isolate(self, only=name)

    def detach(self, plugin: str, hook: str, exc: BaseException, kwargs: dict[str, Any]) -> None:
        """Stop calling ``plugin``'s hooks, say so, and let it close what it opened (what it was
        opening when it failed too: half-open)."""
        self.detached[plugin] = f"{hook}: {type(exc).__name__}: {_one_line(exc)}"
        print(f"orch: plugin {plugin!r} failed in {self.detached[plugin]}; it is detached for the rest of "
              f"this command (the run goes on without it)", file=sys.stderr)
        opened = self.opened.pop(plugin, [])
        opened += [(arg, kwargs[arg]) for arg, (opener, _) in OPENS.items() if hook == opener]
        for arg, info in reversed(opened):  # the runs first, then their sweep
            closer = OPENS[arg][1][-1]
            function = self.unguarded.get((plugin, closer))
            if function is None or hook == closer:  # the closer itself failed: not again
                continue
            extra = {"error": exc} if arg == "run" else {"best": None, "files": []}
            try:
                function(**{arg: info, **extra})
            except Exception:  # noqa: S110  (it already failed once: closing is a courtesy)
                pass

    def _opened_or_closed(self, plugin: str, hook: str, kwargs: dict[str, Any]) -> None:
        """Keep count of the runs and sweeps ``plugin`` has open (see ``detach``)."""
        for arg, (opener, closers) in OPENS.items():
            if hook == opener:
                self.opened.setdefault(plugin, []).append((arg, kwargs[arg]))
            elif hook in closers and plugin in self.opened:
                self.opened[plugin] = [(a, i) for a, i in self.opened[plugin] if i is not kwargs[arg]]

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


def _wrong_arguments(plugin: Any) -> str | None:
    """``hook orch_run_start(run, extra): extra is not an argument of orch_run_start(run)``, or None.
    (pluggy refuses such a hook too, in three lines.) An implementation may take fewer arguments."""
    import inspect

    for name in dir(plugin):
        spec = getattr(hookspecs, name, None) if name.startswith(PREFIX) else None
        if spec is None:  # not a hook (and never read: a property would run)
            continue
        function = getattr(plugin, name, None)
        if getattr(function, f"{NAME}_impl", None) is None:  # not marked with hookimpl
            continue
        try:
            given = [p for p in inspect.signature(function).parameters if p != "self"]
        except (TypeError, ValueError):
            continue
        allowed = list(inspect.signature(spec).parameters)
        extra = [p for p in given if p not in allowed]
        if extra:
            return (f"hook {name}({', '.join(given)}): {', '.join(extra)} "
                    f"{'is not an argument' if len(extra) == 1 else 'are not arguments'} of {name}({', '.join(allowed)})")
    return None


def _isolate(pm: OrchPluginManager, only: str | None = None) -> None:
    """Each installed plugin's hooks (or ``only`` that one's), guarded: one that raises is
    detached, not fatal."""
    for hook in GUARDED:
        for impl in getattr(pm.hook, hook).get_hookimpls():
            if impl.plugin_name in pm.statuses and only in (None, impl.plugin_name):  # not the host's own
                impl.function = _guarded(pm, impl, hook)


def _guarded(pm: OrchPluginManager, impl: Any, hook: str) -> Any:
    function, argnames, plugin = impl.function, impl.argnames, impl.plugin_name

    def guarded(*args: Any) -> Any:
        if plugin in pm.detached:
            return None
        try:
            result = function(*args)
        except PASSED_ON:
            raise
        except Exception as exc:
            pm.detach(plugin, hook, exc, dict(zip(argnames, args)))
            return None
        pm._opened_or_closed(plugin, hook, dict(zip(argnames, args)))
        return result

    pm.unguarded[(plugin, hook)] = function
    return guarded


def get_plugin_manager(*, load_entrypoints: bool = True, trace: bool | None = None) -> OrchPluginManager:
    """A new PluginManager with the hookspecs, the installed plugins and optional tracing."""
    pm = OrchPluginManager()
    pm.add_hookspecs(hookspecs)
    if load_entrypoints:
        pm.load_entrypoints()
    pm.check_pending_plugins()
    _isolate(pm)
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
