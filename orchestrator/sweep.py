"""Optuna sweeps: random search by default (TPE on request), median pruning from per-epoch
reports, parallel worker processes on one storage, resume by re-running, coarse-to-fine refining.

A sweep runs the task's untracked stages (data preparation) once, then each trial runs the tracked
stage and those after it as one tracked run nested under the sweep's parent run. Trials that raise
or hit a NaN loss are FAIL in Optuna (and FAILED in the tracker) and the sweep goes on.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import re
import shutil
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml
from pydantic import BaseModel

from orchestrator.hookspecs import hookimpl
from orchestrator.errors import Pruned, UserError
from orchestrator.manager import OrchPluginManager, get_plugin_manager
from orchestrator.params import flatten, params_hash, validate
from orchestrator.registry import RegisteredTask, get_task
from orchestrator.runner import Project, make_run_info, run_stages, tracked_index
from orchestrator.space import Constraint, ParamSpace, SweepConfig, refine_space, sample, values_from_optuna
from orchestrator.task import OrchConfig, RunInfo, SweepInfo

INTERRUPTED = "interrupted"
TOP_SHARE = 0.2  # refine around the best 20% of completed trials (at least 3)


@dataclass
class SweepPlan:
    """Everything a worker process needs to run trials (picklable)."""

    root: Path
    tracking_uri: str | None
    task: str
    params: dict[str, Any]
    space: dict[str, dict]
    metric: str
    direction: str
    constraints: dict[str, dict]
    sampler: str
    seed: int | None
    pruner: str
    timeout: float | None
    info: SweepInfo
    quiet: bool = True
    setup_dirs: dict[str, Path] = field(default_factory=dict)

    @property
    def specs(self) -> dict[str, ParamSpace]:
        return {k: ParamSpace.model_validate(v) for k, v in self.space.items()}


def default_storage(project: Project) -> str:
    return f"sqlite:///{project.root / 'optuna.db'}"


def check_space(space: Mapping[str, ParamSpace], params: BaseModel, task: str) -> None:
    known = flatten(params.model_dump(mode="json"))
    for key in space:
        if key not in known:
            raise UserError(f"{task}.sweep.space.{key}: not a param of {task} (params: {', '.join(known)})")


def with_values(params: BaseModel, values: Mapping[str, Any], task: str) -> BaseModel:
    """The params with sampled values set at their (dotted) keys, validated again."""
    data = with_values_plain(params.model_dump(mode="json"), values)
    return validate(type(params), data, task, "sampled params")


# -- the study ------------------------------------------------------------------------------------


def _storage(url: str):
    import optuna

    if url.startswith("sqlite:"):
        # several worker processes write one SQLite file: wait for the lock instead of failing
        return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 120}})
    return optuna.storages.RDBStorage(url)


def _sampler(plan: SweepPlan, offset: int):
    import optuna

    seed = None if plan.seed is None else plan.seed + offset
    if plan.sampler == "tpe":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(seed=seed, constraints_func=_constraint_values)
    return optuna.samplers.RandomSampler(seed=seed)


def _constraint_values(trial) -> list[float]:
    return trial.user_attrs.get("constraints", [0.0])


def _pruner(plan: SweepPlan):
    import optuna

    if plan.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)
    return optuna.pruners.NopPruner()


def load_study(plan: SweepPlan, offset: int = 0):
    import optuna

    # failed and interrupted trials are reported by the sweep itself, in one line each
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    return optuna.create_study(
        study_name=plan.info.study, storage=_storage(plan.info.storage), sampler=_sampler(plan, offset),
        pruner=_pruner(plan), direction=plan.direction, load_if_exists=True,
    )


def counted(study) -> list:
    """Trials that count towards ``--trials``: finished, and not cut short by Ctrl-C. A failure counts
    only with the reason the objective records; a FAIL without one was interrupted where no handler
    could mark it (e.g. while Optuna stored the result) and is run again."""
    from optuna.trial import TrialState

    def counts(t) -> bool:
        if t.user_attrs.get(INTERRUPTED):
            return False
        return t.state in (TrialState.COMPLETE, TrialState.PRUNED) or (t.state == TrialState.FAIL and "reason" in t.user_attrs)

    return [t for t in study.get_trials(deepcopy=False) if counts(t)]


def reclaim_stale(study) -> int:
    """Trials left RUNNING by a sweep that was killed: FAIL them, marked interrupted."""
    from optuna.trial import TrialState

    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for t in stale:
        study._storage.set_trial_user_attr(t._trial_id, INTERRUPTED, True)
        study._storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
    return len(stale)


# -- a trial --------------------------------------------------------------------------------------


class TrialPruner:
    """An in-process plugin for one trial: reports the objective at each epoch end to Optuna and
    raises Pruned when the median pruner says so. ``trylast``: trackers log the epoch first."""

    def __init__(self, trial, metric: str, run_name: str):
        self.trial, self.metric, self.run_name = trial, metric, run_name

    @hookimpl(trylast=True)
    def orch_epoch_end(self, run: RunInfo, epoch: int, metrics: Mapping[str, float]) -> None:
        value = metrics.get(self.metric)
        if run.name != self.run_name or value is None or not math.isfinite(value):
            return
        self.trial.report(value, epoch)
        if self.trial.should_prune():
            raise Pruned(f"pruned at epoch {epoch + 1}: {self.metric}={value:.4f}")


def _violations(constraints: Mapping[str, dict], metrics: Mapping[str, float]) -> list[float]:
    return [Constraint.model_validate(c).violation(metrics.get(k)) for k, c in constraints.items()] or [0.0]


def make_objective(plan: SweepPlan, pm: OrchPluginManager, reg: RegisteredTask, project: Project):
    import optuna

    base = validate(reg.task.params_model, plan.params, reg.task.name, "params")
    first = tracked_index(reg)
    trial_stages = reg.task.stages[first:]
    specs = plan.specs

    def objective(trial) -> float:
        values = sample(specs, trial)
        trial.set_user_attr("params", values)
        params = with_values(base, values, reg.task.name)
        trial_dir = project.root / ".orch" / "sweeps" / plan.info.study / f"trial-{trial.number}"
        dirs = {**plan.setup_dirs, **{s.name: trial_dir / s.name for s in trial_stages}}
        run = make_run_info(reg, params, project, mode="sweep", sweep=plan.info, trial=trial.number)
        pruner = TrialPruner(trial, plan.metric, run.name)
        pm.register(pruner, name=f"pruner-{trial.number}")
        pm.hook.orch_trial_start(sweep=plan.info, trial=trial.number, params=values)
        state, value = "FAIL", None
        try:
            metrics = run_stages(pm, reg, params, trial_stages, dirs, run, scratch=project.scratch, quiet=plan.quiet)
            value = metrics.get(plan.metric)
            if value is None or not math.isfinite(value):
                raise ValueError(f"objective {plan.metric} is {value} (metrics: {', '.join(metrics)})")
            trial.set_user_attr("metrics", metrics)
            violations = _violations(plan.constraints, metrics)
            trial.set_user_attr("constraints", violations)
            trial.set_user_attr("feasible", all(v <= 0 for v in violations))
            report_file = dirs[trial_stages[-1].name] / "report.json"
            if report_file.exists():
                trial.set_user_attr("report", json.loads(report_file.read_text()))
            state = "COMPLETE"
            return value
        except Pruned as exc:
            state = "PRUNED"
            trial.set_user_attr("reason", str(exc))
            raise optuna.TrialPruned(str(exc)) from None
        except KeyboardInterrupt:
            trial.set_user_attr(INTERRUPTED, True)
            raise
        except Exception as exc:
            trial.set_user_attr("reason", f"{type(exc).__name__}: {exc}"[:2000])
            if not plan.quiet:
                print(f"[sweep] trial {trial.number} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            raise
        finally:
            trial.set_user_attr("tracking", dict(run.tracking))
            pm.unregister(pruner)
            shutil.rmtree(trial_dir, ignore_errors=True)  # the trackers hold the artifacts
            pm.hook.orch_trial_end(sweep=plan.info, trial=trial.number, state=state, value=value,
                                   run=run if run.tracking else None)

    return objective


def run_worker(plan: SweepPlan, n_trials: int, offset: int, pm: OrchPluginManager | None = None) -> None:
    """Run ``n_trials`` trials in this process: with the caller's PluginManager, or (in a worker
    process) a new one loaded from the entry points."""
    if pm is None:
        pm = get_plugin_manager()
        pm.hook.orch_configure(config=OrchConfig(plan.root, plan.tracking_uri))
    project = Project(plan.root, None)
    reg = get_task(pm, plan.task)
    study = load_study(plan, offset)
    study.optimize(make_objective(plan, pm, reg, project), n_trials=n_trials, timeout=plan.timeout,
                   catch=(Exception,), gc_after_trial=True)


def _process_worker(plan: SweepPlan, n_trials: int, offset: int, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    try:
        run_worker(plan, n_trials, offset)
    except KeyboardInterrupt:
        sys.exit(130)


# -- the sweep ------------------------------------------------------------------------------------


def resolve_plan(
    pm: OrchPluginManager,
    reg: RegisteredTask,
    project: Project,
    params: BaseModel,
    config: SweepConfig,
    *,
    study: str | None,
    storage: str | None,
    tracking_uri: str | None,
    refine: bool,
    quiet: bool,
) -> SweepPlan:
    task = reg.task
    if config.space:
        space = dict(config.space)
    else:
        space = {k: ParamSpace.model_validate(v) for k, v in task.space.items()}
    if not space:
        raise UserError(f"{task.name}: no search space; declare {task.name}.sweep.space in params.yaml")
    check_space(space, params, task.name)
    metric = config.metric or task.objective
    constraints = {k: v.model_dump(exclude_none=True) for k, v in config.constraints.items()} if config.constraints \
        else {k: dict(v) for k, v in task.constraints.items()}
    storage = storage or default_storage(project)
    plain = params.model_dump(mode="json")
    if refine:
        if not study:
            raise UserError("--refine needs --study NAME: the finished study to refine")
        space, study = _refined(study, storage, space, config.direction)
    elif not study:
        fingerprint = {"params": plain, "space": {k: v.model_dump() for k, v in space.items()}, "metric": metric,
                       "direction": config.direction, "sampler": config.sampler, "seed": config.seed}
        study = f"{task.name}-{params_hash(fingerprint)[:8]}"
    space_dump = {k: v.model_dump(exclude_none=True) for k, v in space.items()}
    info = SweepInfo(task=task.name, study=study, storage=storage, metric=metric, direction=config.direction,
                     sampler=config.sampler, n_trials=config.trials, params=flatten(plain),
                     space={k: json.dumps(v) for k, v in space_dump.items()})
    return SweepPlan(root=project.root, tracking_uri=tracking_uri, task=task.name, params=plain, space=space_dump,
                     metric=metric, direction=config.direction, constraints=constraints, sampler=config.sampler,
                     seed=config.seed, pruner=config.pruner, timeout=config.timeout, info=info, quiet=quiet)


def _refined(study_name: str, storage: str, space: dict[str, ParamSpace], direction: str):
    import optuna
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        old = optuna.load_study(study_name=study_name, storage=_storage(storage))
    except KeyError:
        raise UserError(f"--study {study_name}: no such study in {storage}") from None
    done = [t for t in old.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.user_attrs.get("feasible", True)]
    if not done:
        raise UserError(f"--refine: study {study_name} has no completed feasible trial to refine around")
    done.sort(key=lambda t: t.value, reverse=direction == "maximize")
    best = done[: max(3, math.ceil(TOP_SHARE * len(done)))]
    stored = old.user_attrs.get("space")
    if stored:
        space = {k: ParamSpace.model_validate(v) for k, v in stored.items()}
    narrowed = refine_space(space, [t.user_attrs.get("params") or values_from_optuna(t.params) for t in best])
    match = re.fullmatch(r"(.*)-refine(\d+)", study_name)
    new_name = f"{match.group(1)}-refine{int(match.group(2)) + 1}" if match else f"{study_name}-refine1"
    return narrowed, new_name


def run_sweep(
    pm: OrchPluginManager, reg: RegisteredTask, project: Project, plan: SweepPlan, *, jobs: int, out_dir: Path
) -> dict | None:
    """Run the sweep to ``n_trials`` counted trials (resuming a study of the same name) and write
    best_params.yaml and trials.md into ``out_dir``; returns the best feasible trial or None."""
    study = load_study(plan)
    if study.user_attrs.get("space") not in (None, plan.space):
        raise UserError(f"--study {plan.info.study}: that study was run with another search space; "
                        "choose a new --study name")
    study.set_user_attr("space", plan.space)
    study.set_user_attr("task", plan.task)
    reclaimed = reclaim_stale(study)
    if reclaimed and not plan.quiet:
        print(f"[sweep] {reclaimed} trial(s) left running by an interrupted sweep marked FAIL", file=sys.stderr)

    first = tracked_index(reg)
    setup = reg.task.stages[:first]
    setup_root = project.root / ".orch" / "sweeps" / plan.info.study
    plan.setup_dirs = {s.name: setup_root / s.name for s in setup}
    base = validate(reg.task.params_model, plan.params, reg.task.name, "params")
    if setup:
        run_stages(pm, reg, base, setup, plan.setup_dirs, None, scratch=project.scratch, quiet=plan.quiet)

    pm.hook.orch_sweep_start(sweep=plan.info)
    done = len(counted(study))
    remaining = max(0, plan.info.n_trials - done)
    if not plan.quiet:
        print(f"[sweep] study {plan.info.study}: {done} trial(s) done, {remaining} to run, {jobs} job(s)",
              file=sys.stderr)
    interrupted: BaseException | None = None
    try:
        if remaining and jobs <= 1:
            run_worker(plan, remaining, offset=done, pm=pm)
        elif remaining:
            _run_processes(plan, remaining, jobs, offset=done)
    except BaseException as exc:  # Ctrl-C, a lost worker, a bug: the parent run is closed all the same
        interrupted = exc
    study = load_study(plan)
    best = best_trial(study, plan.direction)
    files = write_outputs(study, best, out_dir, plan)
    pm.hook.orch_sweep_end(sweep=plan.info, best=best, files=files)
    if interrupted is not None:
        raise interrupted
    return best


def _run_processes(plan: SweepPlan, remaining: int, jobs: int, offset: int) -> None:
    import os
    from concurrent.futures import ProcessPoolExecutor

    jobs = min(jobs, remaining)
    quotas = [remaining // jobs + (1 if i < remaining % jobs else 0) for i in range(jobs)]
    threads = max(1, (os.cpu_count() or 1) // jobs)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        futures = [pool.submit(_process_worker, plan, quota, offset + 1000 * (i + 1), threads)
                   for i, quota in enumerate(quotas)]
        for future in futures:
            future.result()


def best_trial(study, direction: str) -> dict | None:
    from optuna.trial import TrialState

    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                if t.user_attrs.get("feasible", True)]
    if not complete:
        return None
    pick = (max if direction == "maximize" else min)(complete, key=lambda t: t.value)
    return {"number": pick.number, "value": pick.value,
            "params": pick.user_attrs.get("params") or values_from_optuna(pick.params),
            "metrics": pick.user_attrs.get("metrics", {}), "tracking": pick.user_attrs.get("tracking", {})}


def trial_rows(study) -> list[dict]:
    rows = []
    for t in study.get_trials(deepcopy=False):
        rows.append({"number": t.number, "state": t.state.name + (" (interrupted)" if t.user_attrs.get(INTERRUPTED) else ""),
                     "value": t.value if t.values else None, "feasible": t.user_attrs.get("feasible"),
                     "params": t.user_attrs.get("params") or values_from_optuna(t.params),
                     "report": t.user_attrs.get("report"), "reason": t.user_attrs.get("reason"),
                     "tracking": t.user_attrs.get("tracking", {})})
    return rows


def write_outputs(study, best: dict | None, out_dir: Path, plan: SweepPlan) -> list[Path]:
    """best_params.yaml (the task's params with the best values: usable as a params file) and
    trials.md (every trial's objective and bias/variance figures)."""
    from orchestrator.report import trial_table

    out_dir.mkdir(parents=True, exist_ok=True)
    best_file = out_dir / "best_params.yaml"
    if best is not None:
        merged = with_values_plain(plan.params, best["params"])
        doc = {plan.task: merged}
        header = (f"# best of study {plan.info.study}: trial {best['number']}, "
                  f"{plan.metric}={best['value']:.6g}\n")
    else:
        doc, header = {plan.task: None}, f"# study {plan.info.study}: no completed feasible trial\n"
    best_file.write_text(header + yaml.safe_dump(doc, sort_keys=False))
    rows = trial_rows(study)
    table = out_dir / "trials.md"
    counts = {}
    for row in rows:
        counts[row["state"]] = counts.get(row["state"], 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    table.write_text(f"# Sweep {plan.info.study}\n\nObjective: {plan.direction} `{plan.metric}`; "
                     f"{len(rows)} trials ({summary}).\n\n" + trial_table(rows))
    (out_dir / "trials.json").write_text(json.dumps(rows, indent=1, default=str))
    return [best_file, table, out_dir / "trials.json"]


def with_values_plain(params: dict, values: Mapping[str, Any]) -> dict:
    data = json.loads(json.dumps(params))
    for key, value in values.items():
        node = data
        *parents, leaf = key.split(".")
        for part in parents:
            node = node[part]
        node[leaf] = value
    return data

