"""The study's retries on a real SQLite storage: stopped trials run again with the same values,
live ones are left alone, stale heartbeats are failed, a lost trial is tried at most 3 times."""

from __future__ import annotations

import sqlite3
import time
from datetime import datetime, timedelta, timezone

import optuna
import pytest

from orchestrator.sweep.study import Study
from orchestrator.task import SweepInfo

pytestmark = pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")


def sweep_info(tmp_path, **settings) -> SweepInfo:
    return SweepInfo(task="t", study="s", storage=f"sqlite:///{tmp_path / 'optuna.db'}", metric="val_rmse",
                     n_trials=3, params={}, space={"lr": {"low": 0.1, "high": 1.0}}, **settings)


@pytest.fixture
def study(tmp_path):
    return Study.open(sweep_info(tmp_path))


def started(study: Study) -> optuna.Trial:
    """A trial a worker has begun: asked, sampled, its heartbeat beating."""
    trial = study._study.ask()
    trial.suggest_float("lr", 0.1, 1.0)
    study._study._storage.record_heartbeat(trial._trial_id)
    return trial


def test_a_lost_trial_is_queued_again_with_its_values_and_a_live_one_is_left_alone(study):
    live, lost = started(study), started(study)
    study.fail_lost([lost.number])
    assert study.requeue(max_retries=2) == 1
    states = {t.number: t.state.name for t in study._study.trials}
    assert states[live.number] == "RUNNING" and states[lost.number] == "FAIL"
    [waiting] = study._study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert waiting.user_attrs == {"retry_of": lost.number, "attempt": 2}
    results = {r.number: r for r in study.results()}
    assert results[lost.number].state == "LOST" and results[lost.number].reason == "worker lost"
    assert results[lost.number].retried_as == waiting.number and not results[lost.number].counted
    assert results[waiting.number].state == "WAITING" and results[live.number].state == "RUNNING"
    assert study.requeue(max_retries=2) == 1  # queued once, not once per call
    assert study._study.ask().suggest_float("lr", 0.1, 1.0) == study._study.trials[lost.number].params["lr"]


@pytest.mark.parametrize("max_retries", [0, 2])
def test_a_lost_trial_is_retried_at_most_max_retries_times(study, max_retries):
    queued = []
    for attempt in range(max_retries + 1):
        trial = started(study)  # the queued retry, after the first
        study.fail_lost([trial.number])
        queued.append(study.requeue(max_retries))
    assert queued == [1] * max_retries + [0]
    assert len({t.params["lr"] for t in study._study.trials}) == 1


def beat_last(trial: optuna.Trial, ago: timedelta, db) -> None:
    """Set the trial's last heartbeat ``ago`` in the past (Optuna compares it with the database's UTC
    clock), as a worker that vanished that long ago would have left it: no waiting in the test."""
    when = (datetime.now(timezone.utc).replace(tzinfo=None) - ago).strftime("%Y-%m-%d %H:%M:%S.%f")
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE trial_heartbeats SET heartbeat = ? WHERE trial_id = ?", (when, trial._trial_id))


def test_a_trial_without_heartbeat_for_the_grace_period_is_failed_and_queued(tmp_path):
    study = Study.open(sweep_info(tmp_path, heartbeat=30, grace_period=120, max_retries=1))
    vanished, live = started(study), started(study)
    beat_last(vanished, timedelta(seconds=121), tmp_path / "optuna.db")
    beat_last(live, timedelta(seconds=119), tmp_path / "optuna.db")  # within its grace period
    assert study.requeue(max_retries=1) == 1
    assert study._study.trials[live.number].state.name == "RUNNING"
    assert study._study.trials[vanished.number].state.name == "FAIL"
    [waiting] = study._study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert waiting.user_attrs["retry_of"] == vanished.number
    again = study._study.ask()  # the next worker takes the queued trial: the same value
    assert again.number == waiting.number and again.suggest_float("lr", 0.1, 1.0) == vanished.params["lr"]


def _take_a_queued_trial(info: SweepInfo, at: float, taken) -> None:
    study = Study.open(info)
    while time.time() < at:  # both workers ask at the same moment (a barrier wakes them too far apart)
        pass
    taken.put(study._study.ask().number)


def test_two_workers_asking_at_once_never_take_the_same_queued_trial(tmp_path):
    """SQLite ignores SELECT ... FOR UPDATE: without serialized transactions both workers read the
    first queued trial WAITING and both ran it (18 races in 20 before the fix)."""
    import multiprocessing

    fork = multiprocessing.get_context("fork")
    info = sweep_info(tmp_path)
    study = Study.open(info)
    for round_ in range(4):
        for lr in (0.2, 0.3):
            study._study.enqueue_trial({"lr": lr})
        at, taken = time.time() + 0.5, fork.Queue()
        workers = [fork.Process(target=_take_a_queued_trial, args=(info, at, taken)) for _ in range(2)]
        for w in workers:
            w.start()
        numbers = {taken.get(timeout=60), taken.get(timeout=60)}
        for w in workers:
            w.join(timeout=60)
        assert numbers == {2 * round_, 2 * round_ + 1}, f"round {round_}: both workers took trial {numbers}"


def test_each_trial_takes_one_place_of_the_budget_whatever_moment_it_is_read_at(study):
    """A worker reads the places taken in one go: a trial that ends while it reads is counted once
    (two reads, counted then running, missed it in both and let a 7th trial start for 6)."""
    running, ending, done = started(study), started(study), started(study)
    study._study.tell(done, 0.5)
    ending.set_user_attr("result", {"state": "COMPLETE", "params": {"lr": 0.5}, "value": 0.4})  # told next
    stopped = started(study)
    stopped.set_user_attr("result", {"state": "INTERRUPTED", "params": {"lr": 0.5}})
    study._study.tell(stopped, state=optuna.trial.TrialState.FAIL)  # queued again: its place is free
    assert {r.number: r.state for r in study.results()} == {
        running.number: "RUNNING", ending.number: "COMPLETE", done.number: "COMPLETE", stopped.number: "INTERRUPTED"}
    assert study.places() == (2, 3)  # (counted, taken)
    study._study.tell(ending, 0.4)
    assert study.places() == (2, 3)


def test_a_journal_trial_whose_heartbeat_file_went_stale_is_failed_and_queued(tmp_path):
    """Optuna's journal has no heartbeat: each running trial touches a file beside the journal,
    judged by the file system's clock (the mtime of a file touched now)."""
    import os

    info = sweep_info(tmp_path, heartbeat=30, grace_period=120, max_retries=1)
    info.storage = f"journal://{tmp_path / 'optuna.log'}"
    study = Study.open(info)
    vanished, live = started(study), started(study)
    beats = tmp_path / "optuna.log.heartbeats"
    now = time.time()
    os.utime(beats / str(vanished._trial_id), (now - 121, now - 121))
    os.utime(beats / str(live._trial_id), (now - 100, now - 100))  # within its grace period
    assert study.requeue(max_retries=1) == 1
    states = {t.number: t.state.name for t in study._study.trials}
    assert states[vanished.number] == "FAIL" and states[live.number] == "RUNNING"
    again = Study.existing("s", info.storage)._study.ask()  # another worker, another process's view
    assert again.suggest_float("lr", 0.1, 1.0) == vanished.params["lr"]


def test_journal_storage_urls_that_cannot_work_are_one_line_errors(tmp_path):
    from orchestrator.errors import UserError
    from orchestrator.sweep.study import storage

    with pytest.raises(UserError, match=r"^--storage journal:///no/such/optuna.log: folder /no/such does not exist$"):
        storage("journal:///no/such/optuna.log")
    with pytest.raises(UserError, match=r"^--study s: no such study in journal://"):
        Study.existing("s", f"journal://{tmp_path / 'optuna.log'}")
    assert not (tmp_path / "optuna.log").exists()  # nothing created by reading
