"""Where trials run: in this process, or in ``--jobs`` worker processes that share the study's
storage. Each worker loads the plugins again from the entry points (spawn: no forked torch state)."""

from __future__ import annotations

import multiprocessing
import os
import sys

from orchestrator.manager import OrchPluginManager, get_plugin_manager
from orchestrator.registry import get_task
from orchestrator.runner import Project
from orchestrator.sweep.study import Study
from orchestrator.sweep.trial import TrialRunner
from orchestrator.task import OrchConfig, SweepInfo

WORKER_SEED_STRIDE = 1000  # worker i samples from seed + done + 1000 * (i + 1)


def run_worker(config: OrchConfig, sweep: SweepInfo, n_trials: int, offset: int, *, quiet: bool = True,
               pm: OrchPluginManager | None = None) -> None:
    """Run ``n_trials`` trials here: with the caller's PluginManager, or (in a worker process) a new
    one loaded from the entry points."""
    if pm is None:
        pm = get_plugin_manager()
        pm.hook.orch_configure(config=config)
    project = Project(config.root, None)
    runner = TrialRunner(pm, get_task(pm, sweep.task), project, sweep, quiet=quiet)
    Study.open(sweep, offset).optimize(runner, n_trials=n_trials, timeout=sweep.timeout)


def run_processes(config: OrchConfig, sweep: SweepInfo, remaining: int, jobs: int, offset: int) -> None:
    """``remaining`` trials shared out over ``jobs`` processes, the cores split between them."""
    from concurrent.futures import ProcessPoolExecutor

    jobs = min(jobs, remaining)
    quotas = [remaining // jobs + (1 if i < remaining % jobs else 0) for i in range(jobs)]
    threads = max(1, (os.cpu_count() or 1) // jobs)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        futures = [pool.submit(_process_worker, config, sweep, quota, offset + WORKER_SEED_STRIDE * (i + 1), threads)
                   for i, quota in enumerate(quotas)]
        for future in futures:
            future.result()


def _process_worker(config: OrchConfig, sweep: SweepInfo, n_trials: int, offset: int, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    try:
        run_worker(config, sweep, n_trials, offset)
    except KeyboardInterrupt:
        sys.exit(130)
