"""Runs a task's stages inside one tracked run, firing the lifecycle hooks.

Three ways in, one code path:
  ``orch run TASK``          all stages in one process, outputs in a work folder;
  ``orch stage TASK STAGE``  one stage, as DVC calls it, outputs in ``outputs/TASK/STAGE``;
  a sweep trial              the tracked stage and those after it, nested under the sweep.
A stage that fails leaves no output folder behind and its run marked failed.
"""

from __future__ import annotations

import csv
import json
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from pydantic import BaseModel

from orchestrator import device, interrupt, leases
from orchestrator.context import HISTORY_FILE, METRICS_FILE, RUN_FILE, StageContext
from orchestrator.device import device_tags, seed_everything
from orchestrator.errors import UserError
from orchestrator.manager import OrchPluginManager
from orchestrator.params import flatten, params_hash
from orchestrator.registry import RegisteredTask
from orchestrator.stage_params import SEED, StageParams, declared_keys
from orchestrator.task import RunInfo, Stage, SweepInfo

PARAMS_FILE = "params.yaml"


@dataclass(frozen=True)
class Project:
    """Where params.yaml, the MLflow and Optuna stores and the DVC outputs live."""

    root: Path
    params_file: Path | None

    @classmethod
    def find(cls, params_file: Path | None = None, start: Path | None = None) -> "Project":
        start = (start or Path.cwd()).resolve()
        if params_file is not None:
            params_file = Path(params_file)
            if not params_file.is_file():
                raise UserError(f"{params_file}: params file not found")
            return cls(start, params_file.resolve())
        for folder in (start, *start.parents):
            if (folder / PARAMS_FILE).is_file():
                return cls(folder, folder / PARAMS_FILE)
            if (folder / ".dvc").is_dir() or (folder / ".git").exists():
                break
        return cls(start, None)

    def outputs(self, task: str) -> Path:
        return self.root / "outputs" / task

    @property
    def scratch(self) -> Path:
        """Work folders, sweep setup and checkpoints: not pipeline outputs, not in git."""
        return self.root / ".orch"


def git_commit(root: Path) -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def make_run_info(
    reg: RegisteredTask,
    params: BaseModel,
    project: Project,
    *,
    mode: str,
    dvc_stage: str = "",
    sweep: SweepInfo | None = None,
    trial: int | None = None,
) -> RunInfo:
    plain = params.model_dump(mode="json")
    digest = params_hash(plain)
    name = f"{reg.task.name}-trial-{trial}" if trial is not None else f"{reg.task.name}-{digest[:6]}-{time.strftime('%m%d-%H%M%S')}"
    tags = {
        "orch.task": reg.task.name,
        "orch.plugin": reg.plugin,
        "orch.plugin_version": reg.version,
        "orch.params_hash": digest,
        "orch.git_commit": git_commit(project.root),
        "orch.mode": mode,
        "orch.dvc_stage": dvc_stage,
        **device_tags(),
    }
    if sweep is not None:
        tags.update({"orch.study": sweep.study, "orch.trial": str(trial), "orch.worker_host": socket.gethostname()})
    return RunInfo(
        task=reg.task.name,
        plugin=reg.plugin,
        plugin_version=reg.version,
        name=name,
        params=flatten(plain),
        tags=tags,
        sweep=sweep,
        trial=trial,
    )


def run_stages(
    pm: OrchPluginManager,
    reg: RegisteredTask,
    params: BaseModel,
    stages: Sequence[Stage],
    dirs: Mapping[str, Path],
    run: RunInfo | None,
    *,
    scratch: Path,
    quiet: bool = False,
    carried: Mapping[str, float] | None = None,
    restart: bool = False,
) -> dict[str, float]:
    """Run ``stages`` in order, in one tracked run when ``run`` is given; returns their metrics
    (with ``carried``, the metrics of stages run before, which the run's end reports too)."""
    metrics: dict[str, float] = dict(carried or {})
    lease = None
    try:
        if run is not None:
            # one shielded step: a stop signal that comes while the trackers open the run takes
            # effect once the run is leased, inside this try, which closes it as KILLED
            with interrupt.shielded():
                pm.hook.orch_run_start(run=run)
                lease = leases.hold(scratch, leases.Lease(run.task, run.name, dict(run.tracking),
                                                          run.sweep.study if run.sweep else None, run.trial,
                                                          _scratch_folder(dirs, stages, scratch)))
        for stage in stages:
            view = StageParams(params, declared_keys(stage.params, type(params)), f"{reg.task.name}.{stage.name}")
            ctx = StageContext(reg.task, stage, view, pm.hook, dirs, scratch, run, quiet, restart)
            if run is not None and stage.tracked:  # the files of the untracked stages before it
                log_declared(ctx, reg.task.stages[: tracked_index(reg)])
            metrics.update(_run_one(stage, ctx, params))
    except BaseException as exc:
        if run is not None:
            pm.hook.orch_run_error(run=run, error=exc)
        leases.release(lease)
        raise
    if run is not None:
        pm.hook.orch_run_end(run=run, metrics=metrics)
    leases.release(lease)
    return metrics


def _scratch_folder(dirs: Mapping[str, Path], stages: Sequence[Stage], scratch: Path) -> str | None:
    """The one folder under ``scratch`` that holds these stages' outputs (an ``orch run`` work
    folder, a sweep trial's folder), if there is one."""
    parents = {dirs[s.name].parent for s in stages}
    if len(parents) == 1 and scratch in (folder := parents.pop()).parents:
        return str(folder)
    return None


def close_lost_runs(pm: OrchPluginManager, project: Project) -> list[leases.Lease]:
    """Have the trackers close the runs of processes that died holding them (see ``leases``), and
    remove those runs' scratch folders."""
    lost = leases.collect_lost(project.scratch)
    for lease in lost:
        pm.hook.orch_run_lost(task=lease.task, name=lease.name, tracking=lease.tracking, reason=lease.reason())
        if lease.folder:
            shutil.rmtree(lease.folder, ignore_errors=True)
    return lost


def _run_one(stage: Stage, ctx: StageContext, params: BaseModel) -> dict[str, float]:
    out = ctx.out_dir
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    device.join_trainings()  # torch's threads: this process's share of the cores (device.py)
    try:
        if SEED in type(params).model_fields:
            seed_everything(getattr(params, SEED))
        result = {k: float(v) for k, v in (stage.fn(ctx) or {}).items()}
        (out / METRICS_FILE).write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
        write_history(ctx.history, out / HISTORY_FILE)
        if ctx.run is not None and stage.tracked:
            (out / RUN_FILE).write_text(json.dumps({"name": ctx.run.name, "tracking": ctx.run.tracking}))
        log_declared(ctx, [stage])
        if not stage.checkpoint_ignores:
            # finished: nothing left to resume. A stage that ignores some params (epochs) keeps its
            # checkpoints, so that a longer run continues the finished one.
            for path in ctx.checkpoints:
                path.unlink(missing_ok=True)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)  # nothing half-written
        raise
    finally:
        device.leave_trainings()
    return result


def write_history(history: Mapping[int, Mapping[str, float]], path: Path) -> None:
    """One row per epoch, columns in the order they first appeared; nothing when no epoch was logged."""
    if not history:
        return
    columns = list(dict.fromkeys(k for row in history.values() for k in row))
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["epoch", *columns])
        for epoch in sorted(history):
            writer.writerow([epoch, *(history[epoch].get(c, "") for c in columns)])


def log_declared(ctx: StageContext, stages: Sequence[Stage]) -> None:
    """Hand the trackers every file of ``stages`` that ``Task.artifacts`` declares, with its kind."""
    if ctx.run is None:
        return
    if any(s is ctx.spec for s in stages) and (ctx.out_dir / HISTORY_FILE).exists():
        ctx.log_artifact(ctx.out_dir / HISTORY_FILE, "table")
    for art in ctx.task.artifacts:
        for stage in stages:
            if art.stage == stage.name:
                for path in sorted(ctx.dirs[stage.name].glob(art.name)):
                    ctx.log_artifact(path, art.kind)


def tracked_index(reg: RegisteredTask) -> int:
    """Index of the first tracked stage (stages before it prepare data, untracked)."""
    for i, stage in enumerate(reg.task.stages):
        if stage.tracked:
            return i
    return len(reg.task.stages)


def run_task(
    pm: OrchPluginManager,
    reg: RegisteredTask,
    params: BaseModel,
    project: Project,
    workdir: Path,
    *,
    quiet: bool = False,
    restart: bool = False,
) -> tuple[RunInfo, dict[str, float]]:
    """``orch run``: every stage; the run is tracked from the first tracked stage on, so bad input
    found while preparing data leaves nothing in the tracker."""
    close_lost_runs(pm, project)
    stages = reg.task.stages
    first = tracked_index(reg)
    dirs = {s.name: workdir / s.name for s in stages}
    prepared = run_stages(pm, reg, params, stages[:first], dirs, None, scratch=project.scratch, quiet=quiet,
                          restart=restart)
    run = make_run_info(reg, params, project, mode="run")
    return run, run_stages(pm, reg, params, stages[first:], dirs, run, scratch=project.scratch, quiet=quiet,
                           carried=prepared, restart=restart)


def run_dvc_stage(
    pm: OrchPluginManager,
    reg: RegisteredTask,
    params: BaseModel,
    project: Project,
    stage_name: str,
    *,
    quiet: bool = False,
    restart: bool = False,
) -> dict[str, float]:
    """``orch stage``: one stage as DVC runs it; later stages log into the tracked stage's run."""
    close_lost_runs(pm, project)
    task = reg.task
    stage = task.stage(stage_name)
    base = project.outputs(task.name)
    dirs = {s.name: base / s.name for s in task.stages}
    index = [s.name for s in task.stages].index(stage_name)
    missing = [name for name in stage.inputs if not dirs[name].is_dir()]  # a stage that failed leaves none
    if missing:
        raise UserError(f"stage {stage_name!r} of {task.name} reads the output of {missing[0]!r}, which is not "
                        f"there ({dirs[missing[0]]}): run `orch stage {task.name} {missing[0]}` first, or `dvc repro`")
    first = tracked_index(reg)
    run = None
    if index >= first:
        run = make_run_info(reg, params, project, mode="dvc", dvc_stage=stage_name)
        if index > first:
            ref = dirs[task.stages[first].name] / RUN_FILE
            if not ref.exists():
                raise UserError(f"{ref}: not found; run stage {task.stages[first].name!r} first")
            saved = json.loads(ref.read_text())
            run.name, run.resume = saved["name"], dict(saved["tracking"])
    return run_stages(pm, reg, params, [stage], dirs, run, scratch=project.scratch, quiet=quiet, restart=restart)
