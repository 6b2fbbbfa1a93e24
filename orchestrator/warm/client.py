"""The warm client: the ``orch`` script's side (standard library only, so it starts fast)."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sys

from orchestrator.warm import CHOSEN_ENV, CLIENT_PID_ENV, COLD, ENV, PRELOAD, runtime_dir

KEYED = ("PYTHON", "OMP_", "MKL_", "KMP_", "OPENBLAS", "CUDA_", "TORCH", "LD_", "MPL", "ORCH_WARM")
# not keyed: the search path counts through where it finds the preloaded libraries (_libraries),
# torch writes its compile cache's folder into its own process's environment (not a setting), and
# a warm command's own pid would give the processes it starts (sweep workers) a server of their own
UNKEYED = {"PYTHONPATH", "TORCHINDUCTOR_CACHE_DIR", CLIENT_PID_ENV,
           "PYTHONBREAKPOINT"}  # read at each breakpoint() call, not at start (Ray's driver writes it)
# what libraries write into their own process's environment when imported, with setdefault:
# sklearn and joblib (imported with LightGBM, as a server does) for Intel's OpenMP. A child of
# such a process (a Ray worker's `orch worker`) carries these values; a server has them too.
LIBRARY_WRITTEN = {"KMP_DUPLICATE_LIB_OK": "True", "KMP_INIT_AT_FORK": "FALSE"}
# modules a cold interpreter runs at start from its search path; a warm worker would not
STARTUP = ("sitecustomize", "usercustomize")
FORWARDED = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2")
HERE = os.path.dirname(os.path.abspath(__file__))


def wanted(args: list[str]) -> bool:
    if os.environ.get(ENV, "1") == "0" or not hasattr(socket, "AF_UNIX") or not hasattr(os, "fork"):
        return False
    it = iter(args)
    for arg in it:  # the group's options come before the command
        if arg == "--tracking-uri":
            next(it, None)
        elif not arg.startswith("-"):
            return arg not in COLD
        elif arg in ("--version", "-h", "--help"):
            return False
    return False


def _search_path() -> list[str]:
    """sys.path without its first entry: the working folder (``python -m``) or the script's own
    folder (the ``orch`` script), neither of which holds a preloaded library (``-P`` adds neither)."""
    path = sys.path if sys.flags.safe_path else sys.path[1:]
    return [p for p in path if p not in ("", os.getcwd())]


def _libraries(path: list[str]) -> list[str]:
    """Where each preloaded library (and start-up module) is found from ``path``, with the time its
    folder last changed (a package installed or removed there). Two clients that find the same
    libraries share a server whatever else is on their path: each command imports the rest afresh."""
    from importlib.machinery import PathFinder

    found = []
    for name in dict.fromkeys([m.partition(".")[0] for m in PRELOAD] + list(STARTUP)):
        try:
            spec = PathFinder.find_spec(name, path)
        except (ImportError, ValueError):
            spec = None
        origin = spec and (spec.origin if spec.origin not in (None, "namespace") else
                           next(iter(spec.submodule_search_locations or ()), None))
        if not origin:
            found.append(f"{name}:-")
            continue
        folder = os.path.dirname(os.path.dirname(origin) if spec.submodule_search_locations else origin)
        try:
            found.append(f"{name}:{origin}:{os.stat(folder).st_mtime_ns}")
        except OSError:
            found.append(f"{name}:{origin}")
    return found


def _key() -> str:
    parts = [sys.executable, sys.version]
    for name in sorted(os.listdir(HERE)):  # the warm code itself: an edited server is a new one
        if name.endswith(".py"):
            parts.append(f"{name}:{os.stat(os.path.join(HERE, name)).st_mtime_ns}")
    parts += _libraries(_search_path())
    parts += sorted(f"{k}={v}" for k, v in _settings().items())
    return hashlib.sha1("\0".join(parts).encode()).hexdigest()[:16]


def _settings() -> dict[str, str]:
    """The import-time settings in this environment. A thread count that an orch command chose for
    itself (and its children inherit) is no setting: each command takes its own share again."""
    env = {k: v for k, v in os.environ.items()
           if k.startswith(KEYED) and k not in UNKEYED and LIBRARY_WRITTEN.get(k) != v}
    if CHOSEN_ENV in os.environ and env.get("OMP_NUM_THREADS") == os.environ[CHOSEN_ENV]:
        del env["OMP_NUM_THREADS"]
    return env


def socket_path() -> str | None:
    folder = os.path.join(runtime_dir(), "warm")
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        if os.stat(folder).st_uid != os.getuid():  # someone else's folder: never run their server
            return None
    except OSError:
        return None
    path = os.path.join(folder, f"{_key()}.sock")
    return path if len(path.encode()) < 100 else None  # AF_UNIX paths are short


def relay(path: str) -> int | None:
    """Run the command in the server's worker; its status (exit code, or -signal), or None when no
    server answers."""
    import array
    import signal

    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(path)
    except OSError:
        conn.close()
        return None
    ignored = [name for name in FORWARDED if signal.getsignal(getattr(signal, name)) == signal.SIG_IGN]
    request = {"argv": sys.argv, "env": dict(os.environ), "cwd": os.getcwd(), "path": sys.path,
               "pid": os.getpid(), "umask": _umask(), "ignored": ignored,
               "encodings": [(getattr(s, "encoding", None), getattr(s, "errors", None))
                             for s in (sys.stdin, sys.stdout, sys.stderr)]}
    fds = [fd if _is_open(fd) else os.open(os.devnull, os.O_RDWR) for fd in (0, 1, 2)]
    data = json.dumps(request).encode()
    try:
        conn.sendmsg([len(data).to_bytes(8, "big"), data],
                     [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
    except OSError:
        conn.close()
        return None
    before = {name: signal.getsignal(getattr(signal, name)) for name in FORWARDED if name not in ignored}
    for name in before:  # a signal the caller ignores (nohup, a background job) stays ignored
        signal.signal(getattr(signal, name), lambda signum, _frame: send(conn, f"{signum}\n"))
    reply = b""
    while reply.count(b"\n") < 2:  # "started", then the status
        try:
            chunk = conn.recv(64)
        except OSError:
            chunk = b""
        if not chunk:
            if not reply:  # never started (a server exiting as we came): run cold
                for name, handler in before.items():
                    signal.signal(getattr(signal, name), handler)
                return None
            return -signal.SIGKILL  # the session died (the server was killed): as if killed
        reply += chunk
    return int(reply.split(b"\n")[1])


def send(conn: socket.socket, text: str) -> None:
    try:
        conn.sendall(text.encode())
    except OSError:
        pass


def _umask() -> int:
    mask = os.umask(0o22)
    os.umask(mask)
    return mask


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False


def exit_as(status: int) -> None:
    import signal

    sys.stdout.flush()
    if status < 0:  # killed by a signal: end the same way, so the caller sees what the worker saw
        if -status not in (signal.SIGKILL, signal.SIGSTOP):  # those two have no handler to reset
            signal.signal(-status, signal.SIG_DFL)
        os.kill(os.getpid(), -status)
    os._exit(status if status >= 0 else 128 - status)


def start_server(path: str) -> None:
    import subprocess

    try:
        subprocess.Popen([sys.executable, "-m", "orchestrator.warm.server", path], cwd="/", close_fds=True,
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    except OSError:
        pass


