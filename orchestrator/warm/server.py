"""The warm server: preloads the heavy libraries, then forks a session and a worker per command
(``python -m orchestrator.warm.server SOCKET``, started by the first client that found none)."""

from __future__ import annotations

import json
import os
import signal
import socket
import sys

from orchestrator.warm import CLIENT_PID_ENV, PRELOAD, run_and_exit
from orchestrator.warm.client import send

IDLE = 300.0  # seconds a server waits for a command before it exits
MAX_REQUEST = 1 << 22
# what a terminal sends to its whole foreground group (Ctrl-C, hang-up, Ctrl-\); a kill reaches one process
TERMINAL = {int(signal.SIGINT), int(signal.SIGHUP), int(signal.SIGQUIT)}


def serve(path: str) -> None:
    """Preload, then fork a session per client until ``IDLE`` seconds pass without one. One server
    per socket: a second one started at the same moment exits at once."""
    import fcntl
    import importlib
    import select
    import signal

    lock = open(path + ".lock", "a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return
    lock.truncate(0)
    lock.write(f"{os.getpid()}\n")  # who serves this socket (tests, and a user who wants it gone)
    lock.flush()
    os.environ.setdefault("MPLBACKEND", "Agg")
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except Exception:  # not installed, or broken: the worker meets it as a cold process would
            pass
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if os.path.exists(path):
        os.unlink(path)
    listener.bind(path)
    listener.listen(64)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # sessions are reaped by the kernel
    while select.select([listener], [], [], IDLE)[0] and os.path.exists(path):
        conn, _ = listener.accept()
        if _peer_uid(conn) != os.getuid():
            conn.close()
            continue
        if os.fork() == 0:
            listener.close()
            lock.close()
            _session(conn)  # never returns
        conn.close()
    listener.close()
    if os.path.exists(path):
        os.unlink(path)


def _peer_uid(conn: socket.socket) -> int:
    import struct

    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1]


def _session(conn: socket.socket) -> None:
    """Between a client and its worker: forwards the client's signals, kills the worker when the
    client dies, and sends the worker's status back."""
    import select
    import signal

    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    try:
        request, fds = _receive(conn)
    except (OSError, ValueError):
        os._exit(0)
    pid = os.fork()
    if pid == 0:
        _worker(conn, request, fds)  # never returns
    for fd in fds:
        os.close(fd)
    send(conn, "started\n")
    done = os.pidfd_open(pid) if hasattr(os, "pidfd_open") else None
    pending = b""
    while True:
        ready = select.select([conn] + ([done] if done is not None else []), [], [], None if done else 0.05)[0]
        if conn in ready:
            chunk = conn.recv(256)
            if not chunk:  # the client is gone (kill -9): its command dies with it
                _signal(pid, signal.SIGKILL, group=False)
                os.waitpid(pid, 0)
                os._exit(0)
            pending += chunk
            *signals, pending = pending.split(b"\n")
            for signum in signals:  # as a cold command would get them
                _signal(pid, int(signum), group=int(signum) in TERMINAL)
        finished, status = os.waitpid(pid, os.WNOHANG)
        if finished:
            code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
            send(conn, f"{code}\n")
            os._exit(0)


def _signal(pid: int, signum: int, group: bool) -> None:
    try:
        os.killpg(pid, signum) if group else os.kill(pid, signum)
    except OSError:
        pass


def _receive(conn: socket.socket) -> tuple[dict, list[int]]:
    import array

    fds = array.array("i")
    head, ancillary, _, _ = conn.recvmsg(8, socket.CMSG_LEN(3 * fds.itemsize))
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[:len(data) - len(data) % fds.itemsize])
    size = int.from_bytes(head, "big")
    if len(fds) != 3 or len(head) != 8 or size > MAX_REQUEST:
        raise ValueError("not a request")
    body = b""
    while len(body) < size:
        chunk = conn.recv(size - len(body))
        if not chunk:
            raise ValueError("a request cut short")
        body += chunk
    return json.loads(body), list(fds)


def _worker(conn: socket.socket, request: dict, fds: list[int]) -> None:
    """Become the client's command: its descriptors, folder, environment and argv, with orch's
    own modules imported afresh; ends the process as the command ends."""
    import importlib
    import io
    import signal
    import tempfile

    conn.close()
    _die_with_parent()
    os.setpgid(0, 0)  # forwarded signals reach the command and the processes it starts
    for name in ("SIGCHLD", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2"):
        signal.signal(getattr(signal, name), signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for name in request["ignored"]:  # as the caller had them
        signal.signal(getattr(signal, name), signal.SIG_IGN)
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    streams = []
    for fd, (encoding, errors) in enumerate(request["encodings"]):
        tty = os.isatty(fd)
        raw = io.FileIO(fd, "r" if fd == 0 else "w", closefd=False)
        buffered = io.BufferedReader(raw) if fd == 0 else io.BufferedWriter(raw)
        streams.append(io.TextIOWrapper(buffered, encoding=encoding, errors=errors,
                                        line_buffering=fd == 2 or tty, write_through=fd == 2))
    sys.stdin, sys.stdout, sys.stderr = streams
    sys.__stdin__, sys.__stdout__, sys.__stderr__ = streams
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    os.environ[CLIENT_PID_ENV] = f"{request['pid']}:{os.getpid()}"
    os.umask(request["umask"])
    sys.argv = request["argv"]
    sys.path[:] = request["path"]
    tempfile.tempdir = None  # read TMPDIR again
    for name in [m for m in sys.modules if m == "orchestrator" or m.startswith("orchestrator.")]:
        del sys.modules[name]
    importlib.invalidate_caches()
    _reseed()
    from orchestrator.cli import main as cli

    run_and_exit(cli)


def _die_with_parent() -> None:
    try:
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _reseed() -> None:
    """Every worker starts from the server's state: give NumPy's and torch's global generators
    fresh entropy, as a new process has (a stage seeds them itself; unseeded code must differ)."""
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed(None)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.seed()


if __name__ == "__main__":
    serve(sys.argv[1])
