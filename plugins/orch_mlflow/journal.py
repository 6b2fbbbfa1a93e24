"""The outage journal: tracker writes a tracking server did not take, kept in order on disk and
sent again when it answers (at the next write, at the run's end, on the next command, by
``orch sync``), so that a run's history in MLflow ends as if the server had never gone away.

One JSON line per write in ``.orch/journal/RUN_ID.jsonl``; a logged file is copied beside it
(the run's own folder is removed when the run ends). Metrics keep the time and step they were
logged with, a run's end its end time. A file lock keeps a sweep's workers and ``orch sync``
from sending one journal twice."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable

RETRY_EVERY = 10.0  # seconds between tries while a server stays away (each try may wait for its timeout)


def is_outage(exc: BaseException) -> bool:
    """A write that did not reach the server (refused, timed out, 5xx after MLflow's retries), as
    opposed to one the server refused (a bad value): only the first kind is kept for later."""
    from mlflow.exceptions import MlflowException

    return isinstance(exc, MlflowException) and str(exc.message).startswith("API request to")


def _apply(client, run_id: str, op: str, args: dict[str, Any]) -> None:
    from mlflow.entities import Metric, Param, RunTag

    if op == "log_batch":
        client.log_batch(run_id, metrics=[Metric(*m) for m in args.get("metrics", [])],
                         params=[Param(*p) for p in args.get("params", [])],
                         tags=[RunTag(*t) for t in args.get("tags", [])])
    elif op == "set_tag":
        client.set_tag(run_id, args["key"], args["value"])
    elif op == "log_artifact":
        client.log_artifact(run_id, args["local"], args.get("artifact_path"))
    elif op == "set_terminated":
        client.set_terminated(run_id, args["status"], end_time=args.get("end_time"))
    elif op == "update_run":
        client.update_run(run_id, status=args["status"])
    else:
        raise ValueError(f"unknown journal entry {op!r}")


class Journal:
    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self._next_try: dict[str, float] = {}

    @property
    def lock(self) -> str:
        return str(self.folder / ".lock")  # one for the folder: writes are rare (only in an outage)

    def file(self, run_id: str) -> Path:
        return self.folder / f"{run_id}.jsonl"

    def pending(self, run_id: str) -> bool:
        return self.file(run_id).exists()

    def runs(self) -> list[str]:
        return sorted(p.stem for p in self.folder.glob("*.jsonl")) if self.folder.is_dir() else []

    def count(self, run_id: str) -> int:
        return len(self._entries(run_id))

    def send(self, client, run_id: str, op: str, on_outage: Callable[[BaseException], None], **args) -> None:
        """Write now; if the server is away, or earlier writes still wait, keep it (in order)."""
        if self.pending(run_id):
            self.replay(client, run_id, on_outage)
        if not self.pending(run_id):
            try:
                return _apply(client, run_id, op, args)
            except Exception as exc:
                if not is_outage(exc):
                    raise
                on_outage(exc)
                self._next_try[run_id] = time.monotonic() + RETRY_EVERY
        self._append(run_id, op, args)

    def replay(self, client, run_id: str, on_outage: Callable[[BaseException], None] | None = None,
               force: bool = False) -> int:
        """Send the run's kept writes in order; stop at the first that does not get through.
        Returns how many were sent. Between tries it waits RETRY_EVERY unless ``force``."""
        if not self.pending(run_id) or (not force and time.monotonic() < self._next_try.get(run_id, 0.0)):
            return 0
        from filelock import FileLock

        sent = 0
        with FileLock(self.lock):
            entries = self._entries(run_id)
            try:
                for entry in entries:
                    _apply(client, run_id, entry["op"], entry["args"])
                    sent += 1
            except Exception as exc:
                if not is_outage(exc):
                    raise
                self._next_try[run_id] = time.monotonic() + RETRY_EVERY
                if on_outage is not None:
                    on_outage(exc)
            finally:
                self._rewrite(run_id, entries[sent:])
        return sent

    def _append(self, run_id: str, op: str, args: dict[str, Any]) -> None:
        from filelock import FileLock

        self.folder.mkdir(parents=True, exist_ok=True)
        with FileLock(self.lock):
            if op == "log_artifact":  # the original goes when the run ends: keep a copy
                keep = self.folder / run_id / f"{self.count(run_id):06d}" / Path(args["local"]).name
                keep.parent.mkdir(parents=True, exist_ok=True)
                copy = shutil.copytree if Path(args["local"]).is_dir() else shutil.copy2
                copy(args["local"], keep)
                args = {**args, "local": str(keep)}
            with open(self.file(run_id), "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"op": op, "args": args}) + "\n")
                fh.flush()
                os.fsync(fh.fileno())

    def _entries(self, run_id: str) -> list[dict]:
        path = self.file(run_id)
        if not path.exists():
            return []
        entries = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:  # a kill while appending cut the last line: never acknowledged
                continue
        return entries

    def _rewrite(self, run_id: str, left: list[dict]) -> None:
        path = self.file(run_id)
        if not left:
            path.unlink(missing_ok=True)
            shutil.rmtree(self.folder / run_id, ignore_errors=True)
            return
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(e) + "\n" for e in left), encoding="utf-8")
        os.replace(tmp, path)
