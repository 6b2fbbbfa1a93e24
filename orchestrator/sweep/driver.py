"""A sweep from start to end: join the study, run the setup stages once, tell the trackers, run
the remaining trials here or in worker processes, write the outputs, close the parent run even
when a trial, a worker or Ctrl-C ends the sweep early."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

from orchestrator import leases
from orchestrator.manager import OrchPluginManager
from orchestrator.errors import UserError
from orchestrator.params import validate
from orchestrator.registry import RegisteredTask
from orchestrator.runner import Project, close_lost_runs, run_stages
from orchestrator.sweep import gpus
from orchestrator.sweep.outputs import write_outputs
from orchestrator.sweep.study import Study
from orchestrator.sweep.trial import setup_dirs, setup_turn, split_stages
from orchestrator.sweep.workers import LostRuns, run_processes, run_worker
from orchestrator.task import OrchConfig, SweepInfo, TrialResult


def run_sweep(
    pm: OrchPluginManager, reg: RegisteredTask, project: Project, sweep: SweepInfo, *, jobs: int, out_dir: Path,
    tracking_uri: str | None = None, quiet: bool = True, devices: list[list[str]] | None = None,
    launcher: Callable[..., None] | None = None,
) -> TrialResult | None:
    """Run the study to ``sweep.n_trials`` counted trials (resuming a study of the same name) and
    write best_params.yaml and trials.md into ``out_dir``; returns the best feasible trial or None.
    ``devices``: the GPUs of each of the ``jobs`` worker slots (``gpus.assign``), or None.
    ``launcher``: where the ``jobs`` workers run, called as ``run_processes`` is (default: here,
    or in local processes); ``ray_launcher.run_ray`` puts them on a Ray cluster."""
    if jobs <= 1 and devices:  # trials run in this process: pinned before CUDA starts in it
        gpus.pin(devices[0])
    study = Study.open(sweep)
    study.claim(sweep)
    queued = study.recover(_lost_trials(pm, project, sweep), sweep.max_retries)
    LostRuns(pm, sweep, study).close()  # trials of workers lost elsewhere, failed by their heartbeat
    if queued and not quiet:
        print(f"[sweep] {queued} trial(s) stopped before their end queued again with the same values", file=sys.stderr)
    setup, cache = split_stages(reg)[0], project.cache()
    try:
        if setup:
            base = validate(reg.task.params_model, sweep.params, reg.task.name, "params")
            with setup_turn(project, reg, sweep, base) as make:
                if make:
                    run_stages(pm, reg, base, setup, setup_dirs(project, reg, sweep), None, scratch=project.scratch,
                               quiet=quiet, cache=cache)
        pm.hook.orch_sweep_start(sweep=sweep)
    except UserError:  # bad input (a tracking store that does not answer...): nothing is left behind
        if cache is not None:
            cache.discard()
        raise
    lease = leases.hold(project.scratch, leases.Lease(sweep.task, f"sweep-{sweep.study}", dict(sweep.tracking),
                                                      sweep.study))
    done = study.counted()
    remaining = max(0, sweep.n_trials - done)
    if not quiet:
        print(f"[sweep] study {sweep.study}: {done} trial(s) done, {remaining} to run, {jobs} job(s)", file=sys.stderr)
    config = OrchConfig(project.root, tracking_uri)
    stopped: BaseException | None = None
    def worker_lost() -> None:  # fail the dead worker's trial and queue it again, for its replacement
        study.recover(_lost_trials(pm, project, sweep), sweep.max_retries)

    try:
        if remaining and launcher is not None:
            launcher(config, sweep, min(jobs, remaining), done, quiet=quiet, on_lost=worker_lost)
        elif remaining and jobs <= 1:
            run_worker(config, sweep, done, quiet=quiet, pm=pm)
        elif remaining:
            run_processes(config, sweep, min(jobs, remaining), done, quiet=quiet, on_lost=worker_lost,
                          devices=devices)
    except BaseException as exc:  # Ctrl-C, a lost worker, a bug: the parent run is closed all the same
        stopped = exc
    if jobs > 1 or launcher is not None:  # a worker killed by SIGKILL could not close its trial's run
        study.fail_lost(_lost_trials(pm, project, sweep))
    best = study.best()
    files = write_outputs(sweep, study.results(), best, out_dir)
    elsewhere = study.running()
    if elsewhere:  # workers on other machines still run trials: the last one to leave closes the parent
        print(f"[sweep] {elsewhere} trial(s) of study {sweep.study} still run in other workers; "
              "the last worker to end closes the sweep's run", file=sys.stderr)
    else:
        pm.hook.orch_sweep_end(sweep=sweep, best=best, files=files)
    leases.release(lease)
    if stopped is not None:
        raise stopped
    return best


def _lost_trials(pm: OrchPluginManager, project: Project, sweep: SweepInfo) -> list[int]:
    """Close the runs whose processes died; the numbers of this study's trials among them."""
    return [lease.trial for lease in close_lost_runs(pm, project)
            if lease.study == sweep.study and lease.trial is not None]
