"""``orch sweep --launcher ray``: the sweep's workers run on a Ray cluster (``--ray-address``), or
on a Ray instance started here when none is given. Ray decides where each worker runs, from the
CPUs and GPUs a trial asks for; Optuna decides what it tries. Each Ray actor holds its resources
and runs one plain ``orch worker`` (the same command a Slurm job or a Kubernetes pod runs), so a
worker on Ray joins the study, nests its runs under the parent and is stopped, lost and replaced
exactly as any other. Every node needs the project at the same path, and a tracking store and
study storage it can reach (a server and PostgreSQL, beyond one machine)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Callable

from orchestrator.errors import RunFailed, UserError
from orchestrator.interrupt import Interrupted
from orchestrator.task import OrchConfig, SweepInfo, masked

STORAGE_ENV = "ORCH_STORAGE"  # how a worker gets the storage URL: not on a command line `ps` shows


def _ray():
    try:
        import ray
    except ImportError:
        raise UserError("--launcher ray: Ray is not installed; pip install 'orch[ray]'") from None
    return ray


def start_ray(address: str | None, gpus_per_trial: int | None) -> None:
    """Join the cluster at ``address`` (or start a local instance); a cluster that does not answer,
    or has no GPU for ``--gpus-per-trial``, is a one-line error before any worker starts."""
    ray = _ray()
    if address and address != "auto":
        _check_answers(address)
    try:
        ray.init(address=address, include_dashboard=False, logging_level="ERROR", log_to_driver=True,
                 configure_logging=True)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"--ray-address {address}: no Ray cluster answers ({reason})") from None
    gpus = ray.cluster_resources().get("GPU", 0)
    if gpus_per_trial and gpus < gpus_per_trial:
        ray.shutdown()
        raise UserError(f"--gpus-per-trial {gpus_per_trial}: the Ray cluster has {gpus:g} GPU(s); "
                        "drop the option to run on CPUs")


def _check_answers(address: str, timeout: float = 5.0) -> None:
    """Ray retries an address that does not answer for minutes; a TCP connect says so in seconds."""
    import socket

    host, _, port = address.split("://")[-1].rpartition(":")
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout).close()
    except ValueError:
        raise UserError(f"--ray-address {address}: expected HOST:PORT (or ray://HOST:PORT, or auto)") from None
    except OSError as exc:
        raise UserError(f"--ray-address {address}: no Ray cluster answers ({exc.strerror or exc})") from None


class _Worker:
    """A Ray actor: the resources of one trial, and the ``orch worker`` process that uses them."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None

    def run(self, cmd: list[str], cwd: str, storage: str) -> tuple[int, str]:
        import ray

        cpus = max(1, int(ray.get_runtime_context().get_assigned_resources().get("CPU", 1)))
        env = {**os.environ, STORAGE_ENV: storage, "OMP_NUM_THREADS": str(cpus)}  # Ray set CUDA_VISIBLE_DEVICES
        self.proc = subprocess.Popen(cmd, cwd=cwd, env=env, stderr=subprocess.PIPE, text=True,
                                     preexec_fn=_die_with_parent)
        err = "".join(_echo(self.proc.stderr))
        code = self.proc.wait()
        last = err.strip().splitlines()[-1] if err.strip() else ""
        return code, last

    def stop(self, signum: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signum)


def _echo(stream):
    """The worker's stderr, passed on as it comes (Ray forwards an actor's output to the driver)."""
    for line in stream:
        sys.stderr.write(line)
        yield line


def _die_with_parent() -> None:
    """The worker process ends with its actor (a lost node, ``ray.kill``): no orphan trains on."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux
        pass


def run_ray(config: OrchConfig, sweep: SweepInfo, jobs: int, done: int = 0, *, quiet: bool = True,
            cpus_per_trial: int = 1, gpus_per_trial: int | None = None,
            on_lost: Callable[[], None] = lambda: None) -> None:
    """``jobs`` Ray actors, each with ``cpus_per_trial`` CPUs and ``gpus_per_trial`` GPUs, each
    running ``orch worker`` on the study until its budget is met (each counts ``done`` itself). An
    actor that dies (its node lost, ``ray.kill``) or whose worker is killed costs only its trial:
    ``on_lost`` and the trial's heartbeat fail it and queue it again, and a new actor takes its
    place (at most ``jobs`` times over). A worker that fails on its own fails the sweep."""
    ray = _ray()
    actor = ray.remote(num_cpus=cpus_per_trial, num_gpus=gpus_per_trial or 0, max_concurrency=2)(_Worker)
    cmd = [sys.executable, "-m", "orchestrator"]
    tracking = config.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if tracking:  # given to the worker: a node of a cluster does not have this shell's environment
        cmd += ["--tracking-uri", tracking]
    if quiet:
        cmd.append("-q")
    cmd += ["worker", sweep.task, "--study", sweep.study]  # the storage comes in STORAGE_ENV
    started, replaced, failed = 0, 0, []
    running: dict = {}  # the ref of each actor's run -> the actor

    def start() -> None:
        nonlocal started
        started += 1
        handle = actor.remote()
        running[handle.run.remote(cmd, str(config.root), sweep.storage)] = handle

    for _ in range(jobs):
        start()
    try:
        while running:
            [ready], _ = ray.wait(list(running), num_returns=1)
            running.pop(ready)
            try:
                code, last = ray.get(ready)
            except ray.exceptions.RayActorError:  # the actor died, and its worker with it
                code, last = -signal.SIGKILL, ""
            if code in (130, 143):  # the worker alone was sent the signal
                raise Interrupted(code - 128)
            if code < 0 and replaced < jobs:
                replaced += 1
                on_lost()
                print(f"[sweep] Ray worker {started} was lost: its trial is queued again; worker {started + 1} "
                      "takes its place", file=sys.stderr)
                start()
            elif code != 0:
                failed.append(f"a Ray worker failed (exit code {code}): {masked(last)}")
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM here: each worker closes its run and trial
        signum = Interrupted.of(sys.exc_info()[1]).signum
        for handle in running.values():
            handle.stop.remote(signum)
        ray.wait(list(running), num_returns=len(running), timeout=60)
        raise
    finally:
        ray.shutdown()
    if failed:
        raise RunFailed(f"{failed[0]}; run the same command again to finish the study")
