"""Warm start: an ``orch`` command runs in a process forked from a server that has already
imported the heavy libraries (torch, MLflow, pandas, LightGBM), so it skips 2-4 s of imports.
Each DVC stage is its own ``orch stage`` process; on tiny data the imports were most of its time.

The ``orch`` script is a thin client (standard library only). It connects to this user's server
for its interpreter, sends its argv, environment, working folder and its stdin/stdout/stderr (the
file descriptors themselves), and waits. The server forks a session; the session forks the
worker, which takes the client's descriptors, folder and environment, imports orch's own code
afresh (only third-party libraries are preloaded, so edited plugin code is always current) and
runs the command. The client forwards its signals (Ctrl-C, SIGTERM) to the worker's process group
and ends as the worker ends: same exit code, or killed by the same signal. A client killed with
SIGKILL takes its worker with it, and the worker's leases name the client's pid, so a run whose
command was killed is found lost exactly as in a cold process.

No server yet: the command runs cold, here, and a server starts beside it for the next command.
A server is keyed by the interpreter, where the libraries it preloads are found from the
client's search path (and when their folders last changed) and the environment variables read at
import time (PYTHON*, OMP_*, ...), so a changed setting or an installed package gets a new server,
while folders of plugins on PYTHONPATH (which each command imports afresh) share one; the old
one exits after five minutes without a command (``server.IDLE``). ``ORCH_WARM=0`` turns it off. Commands that
serve (server, ui) and ``doctor`` always run cold. A sweep's worker processes (``--jobs``) are
``orch _sweep-worker`` commands, warm like the others.
"""

from __future__ import annotations

import os
import sys

ENV = "ORCH_WARM"  # "0": never warm
CLIENT_PID_ENV = "ORCH_WARM_CLIENT"  # in a worker: "client pid:worker pid"
COLD = {"server", "ui", "doctor"}
# marks an OMP_NUM_THREADS that orch wrote (a thread share, orchestrator.device), not the user
CHOSEN_ENV = "ORCH_THREADS_CHOSEN"
# what a server imports before its first command (the client keys servers by where these are found)
PRELOAD = ("numpy", "pandas", "torch", "mlflow.tracking", "mlflow.store.tracking.sqlalchemy_store",
           "pydantic", "yaml", "filelock", "psutil", "click", "pluggy", "tqdm", "matplotlib.pyplot",
           "lightgbm", "optuna", "PIL.Image")


def runtime_dir() -> str:
    """This user's folder for what orch processes of every project share on this machine."""
    import tempfile

    return os.environ.get("ORCH_RUNTIME_DIR") or os.path.join(tempfile.gettempdir(), f"orch-{os.getuid()}")


def holder_pid() -> int:
    """The pid that stands for this orch command: its client's when a warm worker runs it (the
    variable names the worker too, so a process the command starts is never taken for it)."""
    client, _, worker = os.environ.get(CLIENT_PID_ENV, "").partition(":")
    return int(client) if client.isdigit() and worker == str(os.getpid()) else os.getpid()


def main() -> None:
    """The ``orch`` script: run the command warm when a server is up, else cold (and start one)."""
    from orchestrator.warm import client

    if client.wanted(sys.argv[1:]):
        path = client.socket_path()
        if path is not None:
            code = client.relay(path)
            if code is not None:
                client.exit_as(code)
            client.start_server(path)
    from orchestrator.cli import main as cli

    run_and_exit(cli)


def run_and_exit(cli) -> None:
    """Run the command and end the process as Python would, without tearing the interpreter down:
    in a forked process that touches every page of the server's heap (copied on write), 1.5 s."""
    import atexit
    import signal
    import threading
    import traceback

    code, killed = 0, None
    try:
        cli(prog_name="orch")
    except SystemExit as exc:
        code = exc.code
    except KeyboardInterrupt:
        traceback.print_exc()
        killed = signal.SIGINT  # as Python ends on an uncaught Ctrl-C
    except BaseException:
        traceback.print_exc()
        code = 1
    threading._shutdown()  # what interpreter exit does: join the threads that are not daemons,
    atexit._run_exitfuncs()  # run the exit handlers (MLflow's async logging flushes here)
    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    if killed is not None:
        signal.signal(killed, signal.SIG_DFL)
        os.kill(os.getpid(), killed)
    os._exit((code or 0) & 0xFF)


