"""Every lifecycle hook, each writing one JSON line: ``{"time", "event", "pid", ...fields}``."""

from __future__ import annotations

import dataclasses
import json
import os
from datetime import datetime, timezone
from pathlib import Path

from filelock import FileLock

from orchestrator import Pruned, hookimpl

ENV = "ORCH_JSONL"  # the file to write; default: orch-events.jsonl in the project
KEY = "jsonl"


class JsonlTracker:
    def __init__(self) -> None:
        self.path = Path(os.environ.get(ENV) or "orch-events.jsonl").resolve()

    def write(self, event: str, **fields) -> None:
        """One line, appended under a lock: sweep workers in other processes share the file."""
        line = json.dumps({"time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"), "event": event,
                           "pid": os.getpid(), **fields}, default=str, sort_keys=False)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(f"{self.path}.lock"), open(self.path, "a", encoding="utf-8") as f:
            f.write(line + "\n")

    # -- runs -------------------------------------------------------------------------------------

    @hookimpl
    def orch_configure(self, config) -> None:
        self.path = Path(os.environ.get(ENV) or Path(config.root) / "orch-events.jsonl").resolve()

    @hookimpl
    def orch_run_start(self, run) -> None:
        run.tracking[KEY] = run.name  # what orch_run_lost will hand back if this process dies
        self.write("run_start", task=run.task, run=run.name, trial=run.trial,
                   study=run.sweep.study if run.sweep else None, params=run.params, tags=run.tags)

    @hookimpl
    def orch_epoch_end(self, run, epoch, metrics) -> None:
        self.write("epoch_end", run=run.name, epoch=epoch, metrics=dict(metrics))

    @hookimpl
    def orch_artifact(self, run, path, kind) -> None:
        path = Path(path)  # it may be deleted when the run ends: read what you keep now
        self.write("artifact", run=run.name, file=path.name, kind=kind, bytes=path.stat().st_size)

    @hookimpl
    def orch_report_built(self, run, report, files) -> None:
        self.write("report_built", run=run.name, report=report.as_dict())

    @hookimpl
    def orch_run_end(self, run, metrics) -> None:
        self.write("run_end", run=run.name, metrics=dict(metrics))

    @hookimpl
    def orch_run_error(self, run, error) -> None:
        status = "KILLED" if isinstance(error, (Pruned, KeyboardInterrupt)) else "FAILED"  # pruned, Ctrl-C, SIGTERM
        self.write("run_error", run=run.name, status=status, error=f"{type(error).__name__}: {error}")

    @hookimpl
    def orch_run_lost(self, task, name, tracking, reason) -> None:
        if KEY in tracking:
            self.write("run_lost", task=task, run=name, reason=reason)

    # -- sweeps -----------------------------------------------------------------------------------

    @hookimpl
    def orch_sweep_start(self, sweep) -> None:
        self.write("sweep_start", study=sweep.study, task=sweep.task, trials=sweep.n_trials, sampler=sweep.sampler,
                   space=sweep.space)

    @hookimpl
    def orch_trial_start(self, sweep, trial, params) -> None:
        self.write("trial_start", study=sweep.study, trial=trial, params=dict(params))

    @hookimpl
    def orch_trial_end(self, sweep, result, run) -> None:
        self.write("trial_end", study=sweep.study, trial=result.number, result=dataclasses.asdict(result))

    @hookimpl
    def orch_sweep_end(self, sweep, best, files) -> None:
        self.write("sweep_end", study=sweep.study, best=dataclasses.asdict(best) if best else None,
                   files=[Path(f).name for f in files])
