"""Runs a task's stages inside one tracked run, firing the lifecycle hooks.

Three ways in, one code path:
  ``orch run TASK``          all stages in one process, outputs in a work folder;
  ``orch stage TASK STAGE``  one stage, as DVC calls it, outputs in ``outputs/TASK/STAGE``;
  a sweep trial              the tracked stage and those after it, nested under the sweep.
A stage that fails leaves no output folder behind and its run marked failed.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from pydantic import BaseModel

from orchestrator import interrupt, leases, stage_cache
from orchestrator.context import RUN_FILE, StageContext
from orchestrator.device import device_tags
from orchestrator.errors import UserError
from orchestrator.manager import OrchPluginManager
from orchestrator.params import flatten, params_hash
from orchestrator.registry import RegisteredTask
from orchestrator.stage_params import StageParams, declared_keys
from orchestrator.stage_run import cache_tags, log_declared, run_or_reuse
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

    def cache(self) -> stage_cache.StageCache | None:
        """The project's stage cache, or None when ``ORCH_CACHE=0`` (or ``--no-cache``) turns reuse off."""
        return stage_cache.StageCache(self.scratch) if stage_cache.enabled() else None


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
    cache: stage_cache.StageCache | None = None,
) -> dict[str, float]:
    """Run ``stages`` in order, in one tracked run when ``run`` is given; returns their metrics
    (with ``carried``, the metrics of stages run before, which the run's end reports too). With
    ``cache``, a stage whose outputs were made before under the same key is reused, not run (and
    the run's tags say so); ``restart`` runs every stage again."""
    metrics: dict[str, float] = dict(carried or {})
    keys = stage_cache.stage_keys(reg.task, params) if cache is not None else {}
    plan = cache.plan(reg.task, stages, keys, reuse=not restart) if cache is not None else None
    lease = None
    try:
        if run is not None:
            run.tags.update(cache_tags(plan.found if plan else {}))
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
            metrics.update(run_or_reuse(stage, ctx, params, cache, keys.get(stage.name), plan))
    except BaseException as exc:
        if run is not None:
            pm.hook.orch_run_error(run=run, error=exc)
        leases.release(lease)
        raise
    finally:
        if plan is not None:
            plan.release()  # the entries a failed run did not make: another worker may make them
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
    cache = project.cache()
    try:
        prepared = run_stages(pm, reg, params, stages[:first], dirs, None, scratch=project.scratch, quiet=quiet,
                              restart=restart, cache=cache)
        run = make_run_info(reg, params, project, mode="run")
        return run, run_stages(pm, reg, params, stages[first:], dirs, run, scratch=project.scratch, quiet=quiet,
                               carried=prepared, restart=restart, cache=cache)
    except UserError:  # bad input (a tracking store that does not answer...): nothing is left behind
        if cache is not None:
            cache.discard()
        raise


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
