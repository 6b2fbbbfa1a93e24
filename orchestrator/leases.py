"""Tracked runs held open by a process. A run is closed by the process that runs it, even after
Ctrl-C or SIGTERM; one killed by SIGKILL (the OOM killer, ``kill -9``) cannot close it. So each
open run is leased to its process in ``.orch/leases/``, and the next ``orch`` command on this
machine (and a sweep's driver whose worker died) finds the leases whose process is gone and has
the trackers close those runs as KILLED (``orch_run_lost``). A lease names the process by pid and
start time, so a reused pid is not taken for the dead process."""

from __future__ import annotations

import json
import os
import socket
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from orchestrator.warm import holder_pid

FOLDER = "leases"


@dataclass(frozen=True)
class Lease:
    task: str
    name: str  # the run's name
    tracking: dict[str, str]  # tracker key -> its run id
    study: str | None = None  # for a sweep trial: its study and number
    trial: int | None = None
    folder: str | None = None  # the run's scratch folder, removed once its process is found dead
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=holder_pid)  # the orch command's process (a warm one's client)
    started: float = field(default_factory=lambda: started_at(holder_pid()))

    def holder_alive(self) -> bool:
        return self.host != socket.gethostname() or started_at(self.pid) == self.started

    def reason(self) -> str:
        return f"lost: its process {self.pid} on {self.host} ended without closing it (killed?)"


def started_at(pid: int) -> float | None:
    """When process ``pid`` started (None: gone, or a zombie): with the pid, names a process."""
    import psutil

    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:  # dead, not yet reaped (orphans in a container
            return None                               # whose init does not reap): not a holder
        return process.create_time()
    except psutil.Error:  # gone, or not ours to see
        return None


def hold(scratch: Path, lease: Lease) -> Path:
    """Write the lease (atomically: a reader never sees half a file); returns its path."""
    folder = scratch / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{uuid.uuid4().hex}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(lease)))
    os.replace(tmp, path)
    return path


def release(path: Path | None) -> None:
    if path is not None:
        path.unlink(missing_ok=True)


def collect_lost(scratch: Path) -> list[Lease]:
    """The leases of this machine whose process is gone, each taken from the folder by one caller
    only. A run that a live process holds again (a resumed sweep's parent run, a later DVC stage)
    is not lost."""
    leases: dict[Path, Lease] = {}
    for path in sorted((scratch / FOLDER).glob("*.json")):
        try:
            leases[path] = Lease(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):  # a foreign or unreadable file: not a lease of ours
            continue
    held = {tuple(sorted(lease.tracking.items())) for lease in leases.values() if lease.holder_alive()}
    lost = []
    for path, lease in leases.items():
        if lease.holder_alive():
            continue
        try:
            path.unlink()
        except FileNotFoundError:  # another orch command took it
            continue
        if not lease.tracking or tuple(sorted(lease.tracking.items())) not in held:
            lost.append(lease)
    return lost


def live_folders(scratch: Path) -> set[str]:
    """The scratch folders that leases of live processes name."""
    folders = set()
    for path in (scratch / FOLDER).glob("*.json"):
        try:
            lease = Lease(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            continue
        if lease.folder and lease.holder_alive():
            folders.add(lease.folder)
    return folders
