"""A study in Optuna's journal storage, for workers that share a file system (NFS, a cluster's
scratch space) and no database: ``--storage journal:///shared/path/optuna.log``.

Optuna's journal keeps every operation in one append-only file, under a lock file that works on
NFS. It has no heartbeat, so a worker lost on another machine would hold its trial RUNNING for
ever; here each running trial touches a file of its own beside the journal, and a trial whose file
was not touched for the grace period is failed and queued again, as on a database. Times are the
file system's own (the mtime of a file this worker touches now), not this machine's clock, so
machines whose clocks disagree still judge the same way.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import optuna
from optuna.storages import JournalStorage
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock
from optuna.trial import TrialState

class HeartbeatJournalStorage(JournalStorage, BaseHeartbeat):
    """Optuna's journal storage with the heartbeat Optuna's RDB storage has (``BaseHeartbeat``):
    ``Study.optimize`` beats it for each running trial, ``fail_stale_trials`` reads it."""

    def __init__(self, path: Path, interval: int, grace: int,
                 callback: Callable[[optuna.Study, optuna.trial.FrozenTrial], None] | None):
        lock = JournalFileOpenLock(str(path))  # a lock by file creation: safe on NFS
        super().__init__(JournalFileBackend(str(path), lock_obj=lock))
        self.beats = Path(f"{path}.heartbeats")
        self.beats.mkdir(exist_ok=True)
        self._interval, self._grace, self._callback = interval, grace, callback

    def record_heartbeat(self, trial_id: int) -> None:
        _touch(self.beats / str(trial_id))

    def set_trial_state_values(self, trial_id: int, state: TrialState, values=None) -> bool:
        changed = super().set_trial_state_values(trial_id, state, values)
        if state.is_finished():  # its heartbeat file has served: no file per trial piles up
            (self.beats / str(trial_id)).unlink(missing_ok=True)
        return changed

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        now = self._now()
        stale = []
        for trial in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
            trial_id = self.get_trial_id_from_study_id_trial_number(study_id, trial.number)
            try:
                beat = (self.beats / str(trial_id)).stat().st_mtime
            except FileNotFoundError:  # asked, not yet beating (as Optuna's RDB storage: not stale)
                continue
            if now - beat > self._grace:
                stale.append(trial_id)
        return stale

    def _now(self) -> float:
        probe = self.beats / f"now-{os.getpid()}"
        _touch(probe)
        try:
            return probe.stat().st_mtime
        finally:
            probe.unlink(missing_ok=True)

    def get_heartbeat_interval(self) -> int | None:
        return self._interval

    def get_heartbeat_stale_trial_callback(self):
        return self._callback


def _touch(path: Path) -> None:
    path.touch()
    os.utime(path, None)  # "now" as the file system tells it (NFS: the server's time)
