"""Everything Optuna: the storage, sampler and pruner a sweep's settings ask for, the trial budget,
and each trial's result, stored as one user attribute and read back as a ``TrialResult``."""

from __future__ import annotations

import dataclasses
import functools
import signal
import time
import warnings
from typing import Any, Callable

import optuna
import sqlalchemy
from optuna.trial import TrialState

from orchestrator import interrupt
from orchestrator.sweep import agree
from orchestrator.sweep.journal import HeartbeatJournalStorage
from orchestrator.errors import UserError, database_reason
from orchestrator.sweep.database import MissingStorage, check_storage, is_journal, journal_path, serialize_transactions
from orchestrator.space import values_from_optuna
from orchestrator.sweep.trial import TRACKING
from orchestrator.task import SweepInfo, TrialResult, masked

RESULT = "result"  # the user attribute that holds a finished trial's TrialResult fields
RETRY_OF, ATTEMPT = "retry_of", "attempt"  # user attributes of a trial run again
LOST_REASON = "worker lost"
SCHEMA_GATE = "orch: Optuna's schema"  # the name of a gate no sweep uses (an advisory lock keyed by its hash)
SETTINGS = "sweep"  # the study's user attribute that holds its SweepInfo (but storage and tracking)


class TrialFailed(Exception):
    """Raised to Optuna for a trial whose result is FAIL (the reason is in its result)."""


def storage(url: str, sweep: SweepInfo | None = None, create: bool = True) -> optuna.storages.BaseStorage:
    """The study's storage. Each running trial beats a heartbeat: a trial whose worker died on
    any machine is failed by the next trial to start and queued again (``_retry``). With
    ``create=False`` a SQLite file that does not exist is an error, not a new empty store."""
    sweep = sweep or SweepInfo(task="", study="", storage=url, metric="")  # default settings
    check_storage(url, create)
    retry = functools.partial(_retry, max_retries=sweep.max_retries)
    if is_journal(url):  # a shared file system, no database
        return HeartbeatJournalStorage(journal_path(url), sweep.heartbeat, sweep.grace_period, retry)
    # several worker processes write one SQLite file: wait for the lock instead of failing
    engine = {"connect_args": {"timeout": 120}} if url.startswith("sqlite:") else None
    try:
        # Optuna creates its tables and types when a storage opens; workers opening a fresh database
        # at once raced on it (PostgreSQL: UniqueViolation on CREATE TYPE; SQLite: "table studies
        # already exists"): they take turns under a gate of their own
        with warnings.catch_warnings(), agree.StudyGate(url, SCHEMA_GATE):
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            rdb = optuna.storages.RDBStorage(url, engine_kwargs=engine, heartbeat_interval=sweep.heartbeat,
                                             grace_period=sweep.grace_period, heartbeat_stale_trial_callback=retry)
    except ImportError:  # Optuna's own, without the module's name
        raise UserError(f"--storage {masked(url)}: its database driver is not installed; "
                        "pip install 'orch[server]' (psycopg)") from None
    except sqlalchemy.exc.SQLAlchemyError as exc:
        reason = database_reason(exc)
        raise UserError(f"--storage {masked(url)}: cannot open the study storage: {reason}") from None
    if url.startswith("sqlite:"):
        serialize_transactions(rdb.engine)
    return rdb


def _retry(study: optuna.Study, trial: optuna.trial.FrozenTrial, max_retries: int) -> None:
    """Queue a trial stopped before its end (Ctrl-C, SIGTERM, a lost worker) with the same values,
    so that it resumes from its checkpoints; a lost one at most ``max_retries`` times."""
    lost = RESULT not in trial.user_attrs
    attempt = trial.user_attrs.get(ATTEMPT, 1) + lost
    if sampled_all(study, trial) and attempt <= max_retries + 1:
        study.enqueue_trial(trial.params, user_attrs={RETRY_OF: trial.number, ATTEMPT: attempt})


def sampled_all(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
    """Whether the trial drew every value of the space before it stopped. One stopped while it
    sampled never trained: it has nothing to resume, and its partial draw is not run again."""
    space = study.user_attrs.get("space") or {}
    return bool(trial.params) and set(space) <= set(trial.params)


def _sampler(sweep: SweepInfo, offset: int) -> optuna.samplers.BaseSampler:
    seed = None if sweep.seed is None else sweep.seed + offset
    if sweep.sampler == "tpe":
        n = max(1, len(sweep.constraints))

        def violations(trial: optuna.trial.FrozenTrial) -> list[float]:
            return trial.user_attrs.get(RESULT, {}).get("violations") or [0.0] * n

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(seed=seed, constraints_func=violations)
    return optuna.samplers.RandomSampler(seed=seed)


def _pruner(sweep: SweepInfo) -> optuna.pruners.BasePruner:
    if sweep.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)
    return optuna.pruners.NopPruner()


class Study:
    """One Optuna study, created or joined. ``offset`` shifts the sampler's seed so that workers
    sharing the study do not draw the same values."""

    def __init__(self, study: optuna.Study, url: str):
        self._study, self._url = study, url

    @classmethod
    def open(cls, sweep: SweepInfo, offset: int = 0) -> "Study":
        # failed and interrupted trials are reported by the sweep itself, in one line each
        optuna.logging.set_verbosity(optuna.logging.ERROR)
        return cls(optuna.create_study(
            study_name=sweep.study, storage=storage(sweep.storage, sweep), sampler=_sampler(sweep, offset),
            pruner=_pruner(sweep), direction=sweep.direction, load_if_exists=True,
        ), sweep.storage)

    @classmethod
    def existing(cls, name: str, url: str) -> "Study":
        optuna.logging.set_verbosity(optuna.logging.ERROR)
        try:
            return cls(optuna.load_study(study_name=name, storage=storage(url, create=False)), url)
        except (KeyError, MissingStorage):
            raise UserError(f"--study {name}: no such study in {url}") from None

    def space(self) -> dict[str, dict] | None:
        return self._study.user_attrs.get("space")

    def claim(self, sweep: SweepInfo) -> None:
        """Record the sweep's settings on the study (``orch worker`` reads them on another
        machine); a study of another task, direction or space is refused."""
        task = self._study.user_attrs.get("task")
        if task not in (None, sweep.task):
            raise UserError(f"--study {sweep.study}: that study sweeps task {task}, not {sweep.task}")
        direction = self._study.direction.name.lower()
        if direction != sweep.direction:
            raise UserError(f"--study {sweep.study}: that study was created to {direction} its metric, "
                            f"not to {sweep.direction}; choose a new --study name")
        if self.space() not in (None, sweep.space):
            raise UserError(f"--study {sweep.study}: that study was run with another search space; "
                            "choose a new --study name")
        self._study.set_user_attr("space", sweep.space)
        self._study.set_user_attr("task", sweep.task)
        settings = {k: v for k, v in dataclasses.asdict(sweep).items() if k not in ("storage", "tracking")}
        self._study.set_user_attr(SETTINGS, settings)

    def settings(self, url: str) -> SweepInfo:
        """The settings ``orch sweep`` recorded on the study, for a worker that joins it."""
        stored = self._study.user_attrs.get(SETTINGS)
        if stored is None:
            raise UserError(f"--study {self._study.study_name}: no sweep settings recorded on it; "
                            "start it with `orch sweep` first")
        return SweepInfo(**stored, storage=url)

    def results(self) -> list[TrialResult]:
        trials = self._study.get_trials(deepcopy=False)
        retries = {t.user_attrs[RETRY_OF]: t.number for t in trials if RETRY_OF in t.user_attrs}
        return [dataclasses.replace(_result(t), retried_as=retries.get(t.number)) for t in trials]

    def counted(self) -> int:
        """Trials that count towards the budget: finished, not interrupted."""
        return sum(r.counted for r in self.results())

    def places(self) -> tuple[int, int]:
        """(counted trials, places of the budget taken: counted or running), from one read.
        Counting them in two reads let a trial that ended between the reads slip through both,
        and a seventh trial start for a budget of six (a CI failure of the Ray test)."""
        results = self.results()
        return sum(r.counted for r in results), sum(r.counted or r.state == "RUNNING" for r in results)

    def best(self) -> TrialResult | None:
        """The best COMPLETE trial that satisfies the constraints."""
        done = [r for r in self.results() if r.state == "COMPLETE" and r.feasible]
        if not done:
            return None
        return (max if self._study.direction == optuna.study.StudyDirection.MAXIMIZE else min)(
            done, key=lambda r: r.value)

    def fail_lost(self, lost: list[int]) -> None:
        """Fail the ``lost`` trials: their processes died (see ``orchestrator.leases``)."""
        for number in lost:
            self._study.tell(number, state=TrialState.FAIL, skip_if_finished=True)

    def gate(self) -> agree.StudyGate:
        return agree.StudyGate(self._url, self._study.study_name)

    def recover(self, lost: list[int], max_retries: int) -> int:
        """``fail_lost`` then ``requeue``, under the study's gate: between a lost trial's failure
        and its retry's queueing no worker sees a free place (the budget stays exact)."""
        with self.gate():
            self.fail_lost(lost)
            return self.requeue(max_retries)

    def requeue(self, max_retries: int) -> int:
        """Fail the trials whose heartbeat stopped, then queue every trial stopped before its end
        once more; trials that live workers are running are left alone. Returns how many wait."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(self._study)  # queues them through _retry
        trials = self._study.get_trials(deepcopy=False)
        retried = {t.user_attrs.get(RETRY_OF) for t in trials}
        for t in trials:
            if t.number not in retried and _result(t).state in ("INTERRUPTED", "LOST"):  # _retry: if sampled
                _retry(self._study, t, max_retries)
        return len(self._study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))

    def running(self) -> int:
        return len(self._study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))

    def lost_runs(self) -> dict[int, dict[str, str]]:
        """Trial number -> the tracker ids of its run, for the trials lost with their worker
        (failed by a lease or the heartbeat): runs that a live worker closes."""
        return {t.number: t.user_attrs[TRACKING] for t in self._study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
                if TRACKING in t.user_attrs and RESULT not in t.user_attrs}

    def optimize(self, run_trial: Callable[[Any], TrialResult], budget: int, timeout: float | None,
                 poll: float = 1.0) -> None:
        """Run trials until the study holds ``budget`` counted trials (the budget is the study's,
        however many workers share it, on any machine), or until ``timeout`` seconds have passed;
        ``run_trial(optuna_trial)`` samples, runs and returns. Each worker checks the budget and
        starts its trial under the study's gate (``agree.StudyGate``), so that two workers never
        both take its last place. When the last places are held by trials running elsewhere, the
        worker waits (checking every ``poll`` seconds) until they end, or until their heartbeat
        stops: then it fails them and runs them again itself."""

        gate = self.gate()

        def objective(trial: optuna.Trial) -> float:
            gate.release()  # the trial is RUNNING in the study: the next worker counts it
            with interrupt.exposed():  # a stop signal ends the trial's training at once
                try:
                    result = run_trial(trial)
                except KeyboardInterrupt as exc:  # before its run began: stopped, not lost
                    result = TrialResult(number=trial.number, state="INTERRUPTED",
                                         params=values_from_optuna(trial.params), reason=str(exc) or "interrupted")
            trial.set_user_attr(RESULT, {k: v for k, v in dataclasses.asdict(result).items() if k != "number"})
            if result.state == "COMPLETE":
                return result.value
            if result.state == "PRUNED":
                raise optuna.TrialPruned(result.reason)
            if result.state == "INTERRUPTED":
                raise interrupt.Interrupted(interrupt.requested() or signal.SIGINT)
            raise TrialFailed(result.reason)

        def stop_if_asked(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            if interrupt.requested():  # a stop held back while Optuna wrote: no next trial
                raise interrupt.Interrupted(interrupt.requested())

        deadline = None if timeout is None else time.monotonic() + timeout
        # Optuna's own bookkeeping (ask, tell) is never cut in half by a first stop signal: it
        # takes effect in the trial's training (each batch and epoch checks), or after the trial
        # the budget check and the new trial's start happen under the study's gate: exact budgets
        with interrupt.shielded():
            while deadline is None or time.monotonic() < deadline:
                with gate:
                    counted, taken = self.places()
                    if counted >= budget:
                        return
                    if taken < budget:  # Optuna fails stale trials first, under the gate
                        self._study.optimize(objective, n_trials=1, catch=(TrialFailed,),
                                             callbacks=[stop_if_asked], gc_after_trial=True)
                        continue
                with interrupt.exposed():  # other workers hold the last places: wait and see
                    time.sleep(poll)
                with gate, warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    optuna.storages.fail_stale_trials(self._study)  # a lost worker's trial: queued again


def _result(t: optuna.trial.FrozenTrial) -> TrialResult:
    stored = t.user_attrs.get(RESULT)
    if stored:
        return TrialResult(number=t.number, **stored)
    # no result recorded: queued, still running, or its process died (failed by fail_lost or the heartbeat)
    state = {TrialState.RUNNING: "RUNNING", TrialState.WAITING: "WAITING",
             TrialState.COMPLETE: "COMPLETE"}.get(t.state, "LOST")
    return TrialResult(number=t.number, state=state, params=values_from_optuna(t.params),
                       value=t.value if t.values else None, reason=LOST_REASON if state == "LOST" else None)
