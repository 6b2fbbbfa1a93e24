"""The study's retries on a real SQLite storage: stopped trials run again with the same values,
live ones are left alone, stale heartbeats are failed, a lost trial is tried at most 3 times."""

from __future__ import annotations

import time

import optuna
import pytest

from orchestrator.sweep import study as study_module
from orchestrator.sweep.study import MAX_ATTEMPTS, Study
from orchestrator.task import SweepInfo

pytestmark = pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")


@pytest.fixture
def study(tmp_path):
    sweep = SweepInfo(task="t", study="s", storage=f"sqlite:///{tmp_path / 'optuna.db'}", metric="val_rmse",
                      n_trials=3, params={}, space={"lr": {"low": 0.1, "high": 1.0}})
    return Study.open(sweep)


def started(study: Study) -> optuna.Trial:
    """A trial a worker has begun: asked, sampled, its heartbeat beating."""
    trial = study._study.ask()
    trial.suggest_float("lr", 0.1, 1.0)
    study._study._storage.record_heartbeat(trial._trial_id)
    return trial


def test_a_lost_trial_is_queued_again_with_its_values_and_a_live_one_is_left_alone(study):
    live, lost = started(study), started(study)
    study.fail_lost([lost.number])
    assert study.requeue() == 1
    states = {t.number: t.state.name for t in study._study.trials}
    assert states[live.number] == "RUNNING" and states[lost.number] == "FAIL"
    [waiting] = study._study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert waiting.user_attrs == {"retry_of": lost.number, "attempt": 2}
    assert study.requeue() == 1  # queued once, not once per call
    assert study._study.ask().suggest_float("lr", 0.1, 1.0) == study._study.trials[lost.number].params["lr"]


def test_a_lost_trial_is_tried_at_most_max_attempts_times(study):
    queued = []
    for attempt in range(MAX_ATTEMPTS):
        trial = started(study)  # the queued retry, after the first
        study.fail_lost([trial.number])
        queued.append(study.requeue())
    assert queued == [1] * (MAX_ATTEMPTS - 1) + [0]
    assert len({t.params["lr"] for t in study._study.trials}) == 1


def test_a_trial_without_heartbeat_for_the_grace_period_is_failed_and_queued(study, monkeypatch, tmp_path):
    monkeypatch.setattr(study_module, "GRACE_SECONDS", 1)
    sweep = SweepInfo(task="t", study="s", storage=f"sqlite:///{tmp_path / 'optuna.db'}", metric="val_rmse",
                      n_trials=3, params={}, space={"lr": {"low": 0.1, "high": 1.0}})
    study = Study.open(sweep)  # the storage reads the grace period when it is made
    vanished = started(study)
    time.sleep(2.5)  # the grace period itself is what is under test
    assert study.requeue() == 1
    assert study._study.trials[vanished.number].state.name == "FAIL"
    [waiting] = study._study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert waiting.user_attrs["retry_of"] == vanished.number
    again = study._study.ask()  # the next worker takes the queued trial: the same value
    assert again.number == waiting.number and again.suggest_float("lr", 0.1, 1.0) == vanished.params["lr"]
