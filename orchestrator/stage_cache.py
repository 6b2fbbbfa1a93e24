"""The stage cache: a stage's outputs kept under the key of what they depend on, so that a sweep
trial or an ``orch run`` reuses them instead of running the stage again.

A stage's key is a hash of
  its task, its name and its declared params (with ``seed``), as ``ctx.params`` shows them;
  the data its params name: every file or folder a param value points at (paths, sizes, times);
  its code: the plugin modules and host modules ``orch dvc`` lists as its dependencies;
  its inputs' keys (so a key names the whole chain of work behind an output, without reading it).
An entry is ``.orch/cache/TASK/STAGE/KEY/``: the stage's folder as it was when the stage ended,
and ``entry.json`` (when it was made, by which run, its size). Entries are written whole (a
temporary folder renamed into place), restored as hard links (copies across file systems), and
dropped least recently used first when the cache outgrows ``ORCH_CACHE_LIMIT`` (default 5 GB).
Workers that need the same missing entry at once take turns: the first computes it, the others
wait on its lock (in this user's runtime folder) and then reuse it. A command refused for bad input
takes back the entries it stored. ``ORCH_CACHE=0`` turns reuse off; ``orch cache clear`` empties it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from orchestrator.errors import UserError

ENV, LIMIT_ENV = "ORCH_CACHE", "ORCH_CACHE_LIMIT"
DEFAULT_LIMIT = 5 * 1024**3
META = "entry.json"
UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def enabled() -> bool:
    return os.environ.get(ENV, "1").strip() not in ("0", "false", "no", "off")


def limit() -> int:
    """Bytes the cache may hold: ``ORCH_CACHE_LIMIT`` (``500M``, ``20G``, a number of bytes)."""
    raw = os.environ.get(LIMIT_ENV, "").strip().upper().removesuffix("B")
    if not raw:
        return DEFAULT_LIMIT
    number, unit = (raw[:-1], raw[-1]) if raw[-1] in UNITS else (raw, "")
    try:
        value = float(number) * UNITS[unit]
    except ValueError:
        value = -1
    if not value >= 0:
        raise UserError(f"{LIMIT_ENV}={os.environ[LIMIT_ENV]!r}: expected a size such as 500M, 20G or a number of bytes")
    return int(value)


# -- keys -------------------------------------------------------------------------------------------


def stage_keys(task: Any, params: Any) -> dict[str, str]:
    """The key of every stage of ``task`` with ``params`` (a params model), in stage order."""
    from orchestrator.dvcgen import stage_files
    from orchestrator.stage_params import StageParams, declared_keys

    keys: dict[str, str] = {}
    for stage in task.stages:
        view = StageParams(params, declared_keys(stage.params, type(params)), f"{task.name}.{stage.name}")
        plain = view.model_dump(mode="json")
        digest = hashlib.sha256(json.dumps([task.name, stage.name, plain], sort_keys=True).encode())
        for path in stage_files(stage):
            digest.update(path.name.encode())
            digest.update(_file_digest(path))
        for value in _strings(plain):
            digest.update(_data_fingerprint(value))
        for name in stage.inputs:
            digest.update(keys[name].encode())
        keys[stage.name] = digest.hexdigest()[:20]
    return keys


_DIGESTS: dict[tuple[str, int, int], bytes] = {}


def _file_digest(path: Path) -> bytes:
    """A file's content hash, remembered by (path, size, mtime) within this process."""
    stat = path.stat()
    memo = (str(path), stat.st_size, stat.st_mtime_ns)
    if memo not in _DIGESTS:
        _DIGESTS[memo] = hashlib.sha256(path.read_bytes()).digest()
    return _DIGESTS[memo]


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _strings(v)


def _data_fingerprint(value: str) -> bytes:
    """For a param naming a file or folder: its files' relative paths, sizes and modification times
    (an edited data file changes the key, as DVC's data dependencies do). Empty for other strings."""
    if not value or len(value) > 4096 or "\n" in value:
        return b""
    try:
        path = Path(value)
        if not path.exists():
            return b""
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    except OSError:
        return b""
    parts = [f"{p.relative_to(path) if p != path else p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files]
    return hashlib.sha256("\n".join(parts).encode()).digest()


# -- entries ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    folder: Path
    meta: dict

    @property
    def made_by(self) -> str:
        """``mlflow:RUN_ID`` (one per tracker), or the run's name, or '' for an untracked stage."""
        tracking = self.meta.get("tracking") or {}
        return ",".join(f"{k}:{v}" for k, v in sorted(tracking.items())) or self.meta.get("run") or ""


@dataclass
class Plan:
    """What a run does with the cache: ``found`` (stage -> entry it reuses), ``making`` (stage ->
    the held lock of the entry it makes)."""

    found: dict[str, Entry]
    making: dict[str, Any]

    def release(self, stage: str | None = None) -> None:
        """Let others have the entry of ``stage`` (made or given up), or of every stage."""
        for name in [stage] if stage else list(self.making):
            lock = self.making.pop(name, None)
            if lock is not None:
                lock.release()


class StageCache:
    """The cache of one project (``root``: its ``.orch`` folder)."""

    def __init__(self, scratch: Path):
        self.root = Path(scratch) / "cache"
        self.created: list[Path] = []  # the entries this command stored (``discard`` takes them back)

    def folder(self, task: str, stage: str, key: str) -> Path:
        return self.root / task / stage / key

    def lookup(self, task: str, stage: str, key: str) -> Entry | None:
        folder = self.folder(task, stage, key)
        try:
            meta = json.loads((folder / META).read_text())
        except (OSError, ValueError):
            return None
        return Entry(folder, meta)

    def plan(self, task: Any, stages: Sequence[Any], keys: Mapping[str, str], reuse: bool = True) -> "Plan":
        """Before a run starts: the entries it reuses, and the lock of each entry it will make
        (held until it is stored), taken in stage order. A worker that needs an entry another is
        making waits for it here, so the run knows what it reuses before it begins; ``reuse``
        False makes every entry again."""
        plan = Plan({}, {})
        for stage in (s for s in stages if s.cache):
            key = keys[stage.name]
            entry = self.lookup(task.name, stage.name, key) if reuse else None
            if entry is None:
                lock = folder_lock(self.root, f"{task.name}-{stage.name}-{key}")
                lock.acquire()
                entry = self.lookup(task.name, stage.name, key) if reuse else None
                if entry is None:
                    plan.making[stage.name] = lock
                    continue
                lock.release()
            plan.found[stage.name] = entry
        return plan

    def restore(self, entry: Entry, out_dir: Path) -> None:
        """The entry's files into ``out_dir`` (emptied first): hard links where the file system allows.
        Processes restoring one folder at once take turns, and a folder that already holds the
        entry's files is left as it is (another process may be reading it)."""
        with folder_lock(out_dir, "restore"):
            if not _holds(out_dir, entry.folder):
                shutil.rmtree(out_dir, ignore_errors=True)
                shutil.copytree(entry.folder, out_dir, copy_function=_link_or_copy,
                                ignore=shutil.ignore_patterns(META))
        os.utime(entry.folder / META)  # recently used: evicted last

    def store(self, task: str, stage: str, key: str, out_dir: Path, meta: Mapping[str, Any],
              skip: Sequence[str] = (), replace: bool = False) -> None:
        """Keep ``out_dir`` (but the files named in ``skip``) as the entry of ``key``, whole or not at
        all (``replace``: instead of the one there, as after ``--restart``), then trim the cache."""
        target = self.folder(task, stage, key)
        if target.exists() and replace:
            old = target.with_name(f".{key}.{os.getpid()}.old")
            target.rename(old)
            shutil.rmtree(old, ignore_errors=True)
        if target.exists():
            return
        tmp = target.with_name(f".{key}.{os.getpid()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(out_dir, tmp, copy_function=_link_or_copy, ignore=shutil.ignore_patterns(*skip))
        size = sum(p.stat().st_size for p in tmp.rglob("*") if p.is_file())
        (tmp / META).write_text(json.dumps({**meta, "key": key, "task": task, "stage": stage, "bytes": size,
                                            "created": time.time()}, sort_keys=True))
        try:
            tmp.rename(target)
            self.created.append(target)
        except OSError:  # another worker stored it first
            shutil.rmtree(tmp, ignore_errors=True)
        self.trim(limit())

    def discard(self) -> None:
        """Remove the entries this command stored: a command refused for bad input leaves nothing."""
        for folder in self.created:
            shutil.rmtree(folder, ignore_errors=True)
            for parent in (folder.parent, folder.parent.parent, self.root):
                with contextlib.suppress(OSError):
                    parent.rmdir()  # when empty
        self.created.clear()

    def entries(self, task: str | None = None) -> list[Entry]:
        metas = sorted((self.root / task if task else self.root).glob(f"{'' if task else '*/'}*/*/{META}"))
        found = []
        for path in metas:
            try:
                found.append(Entry(path.parent, json.loads(path.read_text())))
            except (OSError, ValueError):
                continue
        return found

    def trim(self, budget: int) -> list[Entry]:
        """Drop the least recently used entries until the cache holds at most ``budget`` bytes."""
        dropped = []
        with folder_lock(self.root, "trim"):
            entries = sorted(self.entries(), key=lambda e: (e.folder / META).stat().st_mtime)
            total = sum(e.meta.get("bytes", 0) for e in entries)
            for entry in entries:
                if total <= budget:
                    break
                shutil.rmtree(entry.folder, ignore_errors=True)
                total -= entry.meta.get("bytes", 0)
                dropped.append(entry)
        return dropped

    def clear(self, task: str | None = None) -> tuple[int, int]:
        """Remove every entry (of ``task``): (entries, bytes) removed."""
        entries = self.entries(task)
        for entry in entries:
            shutil.rmtree(entry.folder, ignore_errors=True)
        return len(entries), sum(e.meta.get("bytes", 0) for e in entries)


def folder_lock(folder: Path, name: str) -> Any:
    """A lock (``filelock.FileLock``) named after ``folder`` and ``name``, its file in this user's
    runtime folder (not the project: a refused command leaves nothing there)."""
    from filelock import FileLock

    from orchestrator.warm import runtime_dir

    locks = Path(runtime_dir()) / "cache-locks"
    locks.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(str(Path(folder).resolve()).encode()).hexdigest()[:12]
    return FileLock(locks / f"{digest}-{name}.lock")


def _holds(out_dir: Path, entry: Path) -> bool:
    """Whether every file of the entry is in ``out_dir`` as the same file (a hard link of it: the
    folder was restored from the entry, or the entry stored from the folder)."""
    files = [p for p in entry.rglob("*") if p.is_file() and p.name != META]
    try:
        return bool(files) and all(os.path.samefile(p, out_dir / p.relative_to(entry)) for p in files)
    except OSError:
        return False


def _link_or_copy(src: str, dst: str) -> str:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
    return dst
