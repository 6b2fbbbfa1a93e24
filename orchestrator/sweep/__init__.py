"""Optuna sweeps: random search by default (TPE on request), median pruning from per-epoch
reports, parallel worker processes on one storage, resume by re-running, coarse-to-fine refining.

A sweep runs the task's untracked stages (data preparation) once, then each trial runs the tracked
stage and those after it as one tracked run nested under the sweep's parent run. Trials that raise
or hit a NaN loss are FAIL in Optuna (and FAILED in the tracker) and the sweep goes on.

The seams, one module each:

- ``plan``: the sweep's settings, one ``SweepInfo``, from the task, params.yaml and the CLI
- ``study``: everything Optuna (storage, sampler, pruner, the trial budget, stored results);
  with ``journal``, the only modules that import optuna
- ``database``: the storage URL checked before use, SQLite transactions that serialize
- ``journal``: Optuna's journal storage with a heartbeat of files (a study on a shared file system)
- ``trial``: one trial: sample, run the stages, report epochs to the pruner, a ``TrialResult``
- ``workers``: trials in this process, or in worker processes sharing the storage
- ``gpus``: ``--gpus-per-trial``: each worker slot pinned to its own GPUs
- ``ray_launcher``: ``--launcher ray``: the workers as Ray actors, each a plain ``orch worker``
- ``agree``: values all workers of a study agree on, on any machine (the parent run, worker numbers)
- ``outputs``: best_params.yaml, trials.md, trials.json
- ``driver``: a sweep from start to end, with the tracker hooks around it
"""

from orchestrator.sweep.driver import run_sweep
from orchestrator.sweep.plan import default_storage, plan_sweep

__all__ = ["default_storage", "plan_sweep", "run_sweep"]
