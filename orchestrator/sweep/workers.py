"""Where trials run: in this process, or in ``--jobs`` worker processes that share the study's
storage. Each worker process is an ``orch _sweep-worker`` command (its arguments pickled on its
stdin): warm, forked from the server that preloaded torch and MLflow, when one is up, else a fresh
interpreter, as any ``orch`` command. It loads the plugins again from the entry points."""

from __future__ import annotations

import multiprocessing.connection
import os
import pickle
import signal
import socket
import subprocess
import sys
import uuid
from typing import BinaryIO, Callable

from orchestrator import interrupt
from orchestrator.errors import RunFailed, UserError
from orchestrator.interrupt import SIGNALS, Interrupted
from orchestrator.manager import OrchPluginManager, get_plugin_manager
from orchestrator.registry import get_task
from orchestrator.runner import Project
from orchestrator.sweep import agree, gpus
from orchestrator.sweep.study import Study
from orchestrator.sweep.trial import TrialRunner
from orchestrator.task import OrchConfig, SweepInfo

WORKER_SEED_STRIDE = 1000  # worker number i samples from seed + done + 1000 * i
STOP_SECONDS = 30  # per step of stopping workers after Ctrl-C or SIGTERM
STOP_EXIT_CODES = {Interrupted(s).exit_code for s in SIGNALS}


def run_worker(config: OrchConfig, sweep: SweepInfo, done: int, *, quiet: bool = True,
               pm: OrchPluginManager | None = None) -> None:
    """Run trials here until the study's budget is met: with the caller's PluginManager, or (in a
    worker process) a new one loaded from the entry points. The worker takes a number no other
    live worker of the study holds, on any machine, and samples from ``seed + done + 1000 *
    number``: workers started together never draw the same values."""
    if pm is None:
        pm = get_plugin_manager()
        pm.hook.orch_configure(config=config)
    project = Project(config.root, None)
    runner = TrialRunner(pm, get_task(pm, sweep.task), project, sweep, quiet=quiet)
    holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    number, key = agree.take_number(sweep.storage, sweep.study, "worker", holder)
    try:
        study = Study.open(sweep, done + WORKER_SEED_STRIDE * number)
        lost = LostRuns(pm, sweep, study)

        def run_trial(trial):
            lost.close()
            return runner(trial)

        study.optimize(run_trial, budget=sweep.n_trials, timeout=sweep.timeout)
        lost.close()
    finally:
        with interrupt.shielded():
            agree.release(sweep.storage, sweep.study, key)


class LostRuns:
    """Closes the runs of the study's trials lost with their worker, on whatever machine: a trial
    failed by its heartbeat left its run open (its lease, and the process that would close it,
    were on the dead machine). Each once per worker; closing an already closed run is a no-op."""

    REASON = "lost: its worker stopped beating its heartbeat (killed, or its machine went away)"

    def __init__(self, pm: OrchPluginManager, sweep: SweepInfo, study: Study):
        self.pm, self.sweep, self.study, self.done = pm, sweep, study, set()

    def close(self) -> None:
        for number, tracking in self.study.lost_runs().items():
            if number not in self.done:
                self.done.add(number)
                self.pm.hook.orch_run_lost(task=self.sweep.task, name=f"trial-{number}", tracking=tracking,
                                           reason=self.REASON)


def run_processes(config: OrchConfig, sweep: SweepInfo, jobs: int, done: int, *, quiet: bool = True,
                  on_lost: Callable[[], None] = lambda: None, devices: list[list[str]] | None = None) -> None:
    """``jobs`` worker processes share the study's budget, the cores split between them, and
    worker slot i sees only the GPUs ``devices[i]`` (``--gpus-per-trial``). A worker killed by a
    signal (the OOM killer, kill -9) costs only its trial: ``on_lost`` fails it and queues it
    again, and a new worker takes its place and its GPUs (at most ``jobs`` times over). A worker
    that fails on its own (an error) is not replaced; the sweep then fails naming it."""
    threads = max(1, (os.cpu_count() or 1) // jobs)
    started, slots = 0, {}

    def start(slot: int) -> WorkerProcess:
        nonlocal started
        started += 1
        worker = WorkerProcess(f"worker {started}",
                               (config, sweep, done, threads, quiet, devices[slot] if devices else None))
        slots[worker] = slot
        return worker

    running, ended, replaced = [start(slot) for slot in range(jobs)], [], []
    try:
        while running:
            WorkerProcess.wait(running)
            for worker in [w for w in running if not w.is_alive()]:
                worker.join()
                running.remove(worker)
                ended.append(worker)
                if worker.exitcode is not None and worker.exitcode < 0 and len(replaced) < jobs:
                    replaced.append(worker)
                    on_lost()
                    print(f"[sweep] {worker.name} {_ended(worker.exitcode)}: its trial is queued again; "
                          f"worker {started + 1} takes its place", file=sys.stderr)
                    running.append(start(slots[worker]))
    except KeyboardInterrupt as exc:
        _stop(running, Interrupted.of(exc).signum)
        raise
    stopped = [w.exitcode - 128 for w in ended if w.exitcode in STOP_EXIT_CODES]
    if stopped:  # a worker alone was sent the signal
        raise Interrupted(stopped[0])
    lost = [f"{w.name} {_ended(w.exitcode)}" for w in ended if w.exitcode != 0 and w not in replaced]
    if lost:
        raise RunFailed(f"{', '.join(lost)}; run the same command again to finish the study")


class WorkerProcess:
    """``orch _sweep-worker`` as a child process, seen as run_processes needs it: alive or not, its
    exit code (-N when a signal killed it; a warm command ends as its worker did), signals, kill."""

    COMMAND = "_sweep-worker"

    def __init__(self, name: str, args: tuple):
        self.name = name
        self.proc = subprocess.Popen([sys.executable, "-m", "orchestrator", self.COMMAND], stdin=subprocess.PIPE)
        self.pid = self.proc.pid
        try:
            self.proc.stdin.write(pickle.dumps(args))
            self.proc.stdin.close()
        except OSError:  # it died before reading: its exit code says so
            pass
        self.sentinel = os.pidfd_open(self.pid) if hasattr(os, "pidfd_open") else None  # readable at its end

    @staticmethod
    def wait(workers: list[WorkerProcess]) -> None:
        """Until one of ``workers`` ends."""
        fds = [w.sentinel for w in workers if w.sentinel is not None]
        while all(w.is_alive() for w in workers):
            multiprocessing.connection.wait(fds, timeout=None if len(fds) == len(workers) else 0.2)

    @property
    def exitcode(self) -> int | None:
        return self.proc.poll()

    def is_alive(self) -> bool:
        return self.proc.poll() is None

    def join(self, timeout: float | None = None) -> None:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return
        if self.sentinel is not None:
            os.close(self.sentinel)
            self.sentinel = None

    def kill(self) -> None:
        self.proc.kill()


def serve_worker(stdin: BinaryIO) -> None:
    """The ``orch _sweep-worker`` command: a worker process with the arguments its sweep sent."""
    _process_worker(*pickle.load(stdin))


def _stop(workers: list, signum: int) -> None:
    """Stop the workers, each closing its run. Ctrl-C reached them too (one process group); a
    SIGTERM was sent to this process alone, so they get it now. Then give them time; interrupt
    again those that are still alive (a second signal is not held back); kill the rest."""
    if signum != signal.SIGINT:
        _signal(workers, signum)
    _join(workers)
    _signal(workers, signal.SIGINT)
    _join(workers)
    for worker in _alive(workers):
        worker.kill()
    _join(workers)


def _signal(workers: list, signum: int) -> None:
    for worker in _alive(workers):
        os.kill(worker.pid, signum)


def _alive(workers: list) -> list:
    return [w for w in workers if w.is_alive()]


def _join(workers: list) -> None:
    for worker in _alive(workers):
        worker.join(timeout=STOP_SECONDS)


def _ended(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        return f"was killed ({signal.Signals(-exitcode).name})"
    return f"failed (exit code {exitcode})"


def _process_worker(config: OrchConfig, sweep: SweepInfo, done: int, threads: int, quiet: bool,
                    devices: list[str] | None) -> None:
    interrupt.install()
    gpus.pin(devices)  # before torch starts CUDA here
    import torch

    torch.set_num_threads(threads)
    try:
        run_worker(config, sweep, done, quiet=quiet)
    except KeyboardInterrupt as exc:
        sys.exit(Interrupted.of(exc).exit_code)
    except Exception as exc:  # one line, as the CLI would print it; the parent names the worker
        print(f"orch: error: {exc}" if isinstance(exc, UserError) else f"orch: error: {type(exc).__name__}: {exc}",
              file=sys.stderr)
        sys.exit(1)
