"""The hook contract between the host and its plugins.

Task plugins implement ``orch_register_tasks``; trackers (MLflow is the built-in one) implement the
lifecycle hooks. Every hook name starts with ``orch_``; the host rejects unprefixed hookimpls.
docs/hooks.md documents each hook and a test keeps it in step with this module.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import pluggy

NAME = "orch"
"""One name for the hook marker, the PluginManager and the entry-point group."""

API_VERSION = 1
"""The version of this contract. It goes up when a hook or a record changes in a way an existing
plugin could notice. A plugin module may declare the versions it supports as a PEP 440 specifier,
``ORCH_API = ">=1,<2"``; a plugin outside its range is skipped and ``orch plugins`` says why.
Each hook's docstring ends with the version that added it."""

hookspec = pluggy.HookspecMarker(NAME)
hookimpl = pluggy.HookimplMarker(NAME)

if TYPE_CHECKING:
    from orchestrator.report import BiasVarianceReport
    from orchestrator.task import FetchedRun, Finding, OrchConfig, RunInfo, SweepInfo, Task, TrialResult



# -- set-up ---------------------------------------------------------------------------------------


@hookspec
def orch_configure(config: OrchConfig) -> None:
    """The host is about to use its plugins.

    Called once per PluginManager (in every sweep worker process too), before any other hook,
    with the project root and the options that concern plugins (``tracking_uri``: None means each
    tracker's default). Returns nothing.

    Since API 1.
    """



@hookspec
def orch_register_tasks() -> list[Task]:
    """Return the tasks this plugin provides.

    Called once per PluginManager when the host first needs the task registry. Receives nothing;
    returns a list of ``Task``. Results of all plugins are collected; two tasks with the same name
    are an error that names both plugins.

    Since API 1.
    """


@hookspec
def orch_register_commands(cli: Any) -> None:
    """Add commands to the ``orch`` command line.

    Called once per process when the CLI meets a command name it does not have built in (or lists
    its commands for ``--help``). Receives a click group; a plugin calls ``cli.add_command(cmd)``
    (the MLflow tracker adds ``orch ui``). A name that is built in or already taken is ignored.
    Returns nothing.

    Since API 1.
    """


# -- runs -----------------------------------------------------------------------------------------


@hookspec
def orch_run_start(run: RunInfo) -> None:
    """A tracked run begins (``orch run``, a sweep trial, or a tracked DVC stage).

    Called before the first stage runs. Receives the RunInfo; a tracker opens its run and records
    its id in ``run.tracking[<tracker name>]``. When ``run.resume`` holds an id of this tracker, the
    run continues that earlier run instead. Returns nothing.

    Since API 1.
    """


@hookspec
def orch_run_end(run: RunInfo, metrics: Mapping[str, float]) -> None:
    """A tracked run finished without error.

    Called after its last stage. Receives the RunInfo and the final metrics of all stages
    (``val_rmse``, ``train_error``...); a tracker logs them and closes its run. Returns nothing.

    Since API 1.
    """


@hookspec
def orch_run_error(run: RunInfo, error: BaseException) -> None:
    """A tracked run raised.

    Called before the error is re-raised, for any exception including KeyboardInterrupt and the
    sweep's ``Pruned``. A tracker marks its run failed (or killed, for Pruned and Ctrl-C) with the
    reason, so that no run is left RUNNING. Returns nothing.

    Since API 1.
    """


@hookspec
def orch_run_lost(task: str, name: str, tracking: Mapping[str, str], reason: str) -> None:
    """A run's process died without closing it (SIGKILL, the OOM killer).

    Called by a later ``orch`` command on the same machine, or by the sweep whose worker died.
    Receives the task, the run's name, the ``run.tracking`` ids its trackers recorded, and the
    reason; a tracker closes that run as killed if it is still open. Returns nothing.

    Since API 1.
    """


@hookspec
def orch_doctor(root: Path) -> list[Finding]:
    """``orch doctor`` checks the project at ``root``.

    A plugin checks what it owns (a tracker: its store is reachable, nothing waits to be sent) and
    repairs what is safe to repair, returning one ``Finding`` per check: ``Finding("ok", ...)``,
    ``Finding("fixed", ...)`` for a repair made, ``Finding("problem", ..., hint)`` for one left.
    Returns a list (empty: nothing to say).

    Since API 1.
    """


@hookspec
def orch_epoch_end(run: RunInfo, epoch: int, metrics: Mapping[str, float]) -> None:
    """An epoch ended.

    Called by ``StageContext.log_epoch`` with the 0-based epoch (logged as the metric step) and
    that epoch's metrics (``train_loss``, ``val_loss``, ``val_rmse``...). Trackers log them; the
    sweep's pruner reports the objective to Optuna here and raises ``Pruned`` to stop the trial.
    Returns nothing.

    Since API 1.
    """


@hookspec
def orch_artifact(run: RunInfo, path: Path, kind: str) -> None:
    """A stage produced a file worth keeping (model weights, plot, table, text sample...).

    Receives the RunInfo, the file's path and its kind (model, plot, table, text, image, report,
    data). Trackers copy or upload it during the call: the file may be deleted when the run ends
    (``orch run`` works in a temporary folder). Returns nothing.

    Since API 1.
    """


@hookspec
def orch_report_built(run: RunInfo, report: BiasVarianceReport, files: list[Path]) -> None:
    """The bias/variance report of a run was built.

    Receives the RunInfo, the report (errors, gaps, diagnosis, next steps) and the files written
    (Markdown, HTML, chart). Trackers log its figures and files. Returns nothing.

    Since API 1.
    """


@hookspec(firstresult=True)
def orch_fetch_run(run_id: str) -> FetchedRun | None:
    """Look up a tracked run by id, for ``orch report --run`` and ``orch predict --run``.

    Receives the run id. A tracker that knows it returns a ``FetchedRun`` (task, params, metrics,
    tags, and ``download(kind)`` that brings the run's artifacts of one kind into a local folder);
    the first non-None answer wins. Returns None when the run is not its own.

    Since API 1.
    """


# -- sweeps ---------------------------------------------------------------------------------------


@hookspec
def orch_sweep_start(sweep: SweepInfo) -> None:
    """A sweep begins (or resumes), before any trial.

    Receives the SweepInfo; a tracker creates (or finds again) the parent run that every trial's
    run nests under, and records its id in ``sweep.tracking``. Workers of one study on several
    machines all call it, maybe at the same moment: ``sweep.agreed(key)`` finds the parent again,
    ``sweep.agree(key, run_id)`` after creating one says which run won. Returns
    nothing.

    Since API 1.
    """


@hookspec
def orch_sweep_end(sweep: SweepInfo, best: TrialResult | None, files: list[Path]) -> None:
    """A sweep ended: all trials done, the timeout reached, or interrupted; called by the last
    worker of the study to leave it (no trial of the study still running elsewhere).

    Receives the SweepInfo, the best feasible trial (a COMPLETE TrialResult, or None when none
    completed) and the files written (best params YAML, trial table). A tracker logs them on the
    parent run and closes it. Returns nothing.

    Since API 1.
    """


@hookspec
def orch_trial_start(sweep: SweepInfo, trial: int, params: Mapping[str, Any]) -> None:
    """A sweep trial begins, in the worker process that runs it.

    Receives the SweepInfo, the Optuna trial number and the sampled params (real values: a
    reverse_log param appears as beta, not 1 - beta). Called before the trial's run starts.
    Returns nothing.

    Since API 1.
    """


@hookspec
def orch_trial_end(sweep: SweepInfo, result: TrialResult, run: RunInfo | None) -> None:
    """A sweep trial ended.

    Receives the SweepInfo, the trial's TrialResult (state COMPLETE, PRUNED, FAIL with its reason,
    or INTERRUPTED; the objective ``value`` when COMPLETE) and the trial's RunInfo (None if it
    failed before its run started). Returns nothing.

    Since API 1.
    """
