"""One sweep trial: sample the space, run the tracked stage and those after it as one run nested
under the sweep's parent run, report each epoch to the pruner, and return a ``TrialResult``.

``trial`` is the sampler's handle (an Optuna trial): it suggests values (``ParamSpace.suggest``),
takes per-epoch reports and says whether to prune. Nothing here imports Optuna."""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import sys
from pathlib import Path
from typing import Any, Iterator, Mapping

from pydantic import BaseModel

from orchestrator import interrupt, leases
from orchestrator.errors import Pruned, UserError
from orchestrator.hookspecs import hookimpl
from orchestrator.manager import OrchPluginManager
from orchestrator.params import set_dotted, validate
from orchestrator.registry import RegisteredTask
from orchestrator.runner import Project, make_run_info, run_stages, tracked_index
from orchestrator.space import Constraint, ParamSpace, sample
from orchestrator.task import RunInfo, Stage, SweepInfo, TrialResult


def sweep_folder(project: Project, sweep: SweepInfo) -> Path:
    """Scratch space of a sweep: the setup stages' outputs, then one folder per running trial."""
    return project.scratch / "sweeps" / sweep.study


def split_stages(reg: RegisteredTask) -> tuple[list[Stage], list[Stage]]:
    """(setup, trial): the stages run once per sweep, and those each trial runs."""
    first = tracked_index(reg)
    return list(reg.task.stages[:first]), list(reg.task.stages[first:])


def setup_dirs(project: Project, reg: RegisteredTask, sweep: SweepInfo) -> dict[str, Path]:
    return {s.name: sweep_folder(project, sweep) / s.name for s in split_stages(reg)[0]}


@contextlib.contextmanager
def setup_turn(project: Project, reg: RegisteredTask, sweep: SweepInfo, params: BaseModel) -> Iterator[bool]:
    """The sweep's setup stages are made once per sweep folder: the workers on this project take
    turns, and one that finds them made from the same keys (params, code, data: the stage cache's)
    is told not to make them again, whether the cache is on or not: another worker's trials may be
    reading those folders. Yields whether to make them; records their keys when that succeeds."""
    from orchestrator.stage_cache import folder_lock, stage_keys

    folder = sweep_folder(project, sweep)
    dirs = setup_dirs(project, reg, sweep)
    keys = stage_keys(reg.task, params)
    wanted = {name: keys[name] for name in dirs}
    marker = folder / "setup.json"
    with folder_lock(folder, "setup"):
        try:
            made = json.loads(marker.read_text())
        except (OSError, ValueError):
            made = None
        if made == wanted and all(d.is_dir() for d in dirs.values()):
            yield False
            return
        marker.unlink(missing_ok=True)
        yield True
        marker.write_text(json.dumps(wanted, sort_keys=True))


TRACKING = "tracking"  # the trial's user attribute that holds its run's tracker ids, from its start


class TrialHooks:
    """An in-process plugin for one trial. It records the run's tracker ids on the trial as soon
    as the run opens (a worker on another machine that finds the trial lost by its heartbeat
    closes that run), and reports the objective at each epoch end, raising Pruned when the
    pruner says so. ``trylast``: the trackers open the run and log the epoch first."""

    def __init__(self, trial: Any, metric: str, run_name: str):
        self.trial, self.metric, self.run_name = trial, metric, run_name

    @hookimpl(trylast=True)
    def orch_run_start(self, run: RunInfo) -> None:
        if run.name == self.run_name and run.tracking:
            self.trial.set_user_attr(TRACKING, dict(run.tracking))

    @hookimpl(trylast=True)
    def orch_epoch_end(self, run: RunInfo, epoch: int, metrics: Mapping[str, float]) -> None:
        value = metrics.get(self.metric)
        if run.name != self.run_name or value is None or not math.isfinite(value):
            return
        self.trial.report(value, epoch)
        if self.trial.should_prune():
            raise Pruned(f"pruned at epoch {epoch + 1}: {self.metric}={value:.4f}")


class TrialRunner:
    """``runner(trial) -> TrialResult`` for the study. What the trial's run raises becomes its result:
    FAIL with the reason, PRUNED, or INTERRUPTED for Ctrl-C (which the study then raises again)."""

    def __init__(self, pm: OrchPluginManager, reg: RegisteredTask, project: Project, sweep: SweepInfo,
                 quiet: bool = True):
        self.pm, self.reg, self.project, self.sweep, self.quiet = pm, reg, project, sweep, quiet
        self.base = validate(reg.task.params_model, sweep.params, reg.task.name, "params")
        self.stages = split_stages(reg)[1]
        self.specs = {k: ParamSpace.model_validate(v) for k, v in sweep.space.items()}
        self.setup = setup_dirs(project, reg, sweep)

    def __call__(self, trial: Any) -> TrialResult:
        # leased from its first moment, before its run opens: a worker killed while it samples, or
        # while its tracker creates the run, leaves a trial the next sweep fails and queues again
        folder = sweep_folder(self.project, self.sweep) / f"trial-{trial.number}"
        lease = leases.hold(self.project.scratch, leases.Lease(self.sweep.task, f"trial-{trial.number}", {},
                                                               self.sweep.study, trial.number, str(folder)))
        try:
            return self._run(trial, folder)
        finally:
            leases.release(lease)

    def _run(self, trial: Any, folder: Path) -> TrialResult:
        with interrupt.shielded():  # a stop waits for the whole draw: a stopped trial is queued again with it
            values = sample(self.specs, trial)
        self.pm.hook.orch_trial_start(sweep=self.sweep, trial=trial.number, params=values)
        try:
            params = self._with_values(values)
        except UserError as exc:  # a range beyond what the params model accepts
            return self._ended(TrialResult(number=trial.number, state="FAIL", params=values, reason=str(exc)), None)
        dirs = {**self.setup, **{s.name: folder / s.name for s in self.stages}}
        run = make_run_info(self.reg, params, self.project, mode="sweep", sweep=self.sweep, trial=trial.number)
        hooks = TrialHooks(trial, self.sweep.metric, run.name)
        self.pm.register(hooks, name=f"trial-{trial.number}")
        try:
            metrics = run_stages(self.pm, self.reg, params, self.stages, dirs, run, scratch=self.project.scratch,
                                 quiet=self.quiet, cache=self.project.cache())
            outcome = self._scored(metrics, dirs[self.stages[-1].name] / "report.json")
        except Pruned as exc:
            outcome = {"state": "PRUNED", "reason": str(exc)}
        except KeyboardInterrupt as exc:
            outcome = {"state": "INTERRUPTED", "reason": str(exc) or "interrupted"}
        except Exception as exc:
            outcome = {"state": "FAIL", "reason": f"{type(exc).__name__}: {exc}"[:2000]}
            if not self.quiet:
                print(f"[sweep] trial {trial.number} failed: {outcome['reason']}", file=sys.stderr)
        finally:
            self.pm.unregister(hooks)
            shutil.rmtree(folder, ignore_errors=True)  # the trackers hold the artifacts
        result = TrialResult(number=trial.number, params=values, tracking=dict(run.tracking), **outcome)
        return self._ended(result, run if run.tracking else None)

    def _ended(self, result: TrialResult, run: RunInfo | None) -> TrialResult:
        self.pm.hook.orch_trial_end(sweep=self.sweep, result=result, run=run)
        return result

    def _with_values(self, values: Mapping[str, Any]) -> BaseModel:
        data = set_dotted(self.base.model_dump(mode="json"), values, self.reg.task.name, "sampled")
        return validate(type(self.base), data, self.reg.task.name, "sampled params")

    def _scored(self, metrics: Mapping[str, float], report_file: Path) -> dict[str, Any]:
        value = metrics.get(self.sweep.metric)
        if value is None or not math.isfinite(value):
            raise ValueError(f"objective {self.sweep.metric} is {value} (metrics: {', '.join(metrics)})")
        violations = [Constraint.model_validate(c).violation(metrics.get(k)) for k, c in self.sweep.constraints.items()]
        report = json.loads(report_file.read_text()) if report_file.exists() else None
        return {"state": "COMPLETE", "value": value, "metrics": dict(metrics), "violations": violations,
                "report": report}
