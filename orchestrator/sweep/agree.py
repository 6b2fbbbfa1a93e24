"""One value per study and key that every worker of the study agrees on, whoever writes first.

Workers on several machines start together and each would create the sweep's parent run: a
check-then-create races. The study's own database settles it: a row keyed by (study, key) is
inserted once, a second insert fails on the primary key, and everybody reads the row that won.
This holds on SQLite and PostgreSQL alike, without a lock of our own. The table lives beside
Optuna's in the storage's database; a journal storage keeps its agreements in a JSON file beside
the journal, changed under a lock file.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path

import sqlalchemy
from sqlalchemy import Column, MetaData, String, Table, Text

from orchestrator.errors import UserError, database_reason
from orchestrator.sweep.database import is_journal, journal_path
from orchestrator.task import masked

METADATA = MetaData()
AGREEMENTS = Table(
    "orch_agreements", METADATA,
    Column("study_name", String(512), primary_key=True),
    Column("key", String(512), primary_key=True),
    Column("value", Text, nullable=False),
)


def agree(url: str, study: str, key: str, value: str) -> str:
    """``value`` if it is the first one stored for (``study``, ``key``), else the one stored before."""
    if is_journal(url):
        with _JournalAgreements(url) as table:
            return table.setdefault(f"{study}/{key}", value)
    engine = _engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(AGREEMENTS.insert().values(study_name=study, key=key, value=value))
    except sqlalchemy.exc.IntegrityError:
        pass  # another worker was first
    return agreed(url, study, key)


def agreed(url: str, study: str, key: str) -> str | None:
    """The value stored for (``study``, ``key``), or None."""
    if is_journal(url):
        with _JournalAgreements(url) as table:
            return table.get(f"{study}/{key}")
    with _engine(url).connect() as conn:
        return conn.execute(sqlalchemy.select(AGREEMENTS.c.value).where(
            AGREEMENTS.c.study_name == study, AGREEMENTS.c.key == key)).scalar()


def take_number(url: str, study: str, prefix: str, holder: str) -> tuple[int, str]:
    """The smallest number not yet taken under ``prefix`` (``worker.0``, ``worker.1`` ...), taken
    for ``holder``: unique among the study's workers on every machine. Returns it and its key."""
    number = 0
    while True:
        key = f"{prefix}.{number}"
        if agree(url, study, key, holder) == holder:
            return number, key
        number += 1


def release(url: str, study: str, key: str) -> None:
    """Give a taken key back (a worker that ends frees its number)."""
    if is_journal(url):
        with _JournalAgreements(url) as table:
            table.pop(f"{study}/{key}", None)
        return
    with _engine(url).begin() as conn:
        conn.execute(AGREEMENTS.delete().where(AGREEMENTS.c.study_name == study, AGREEMENTS.c.key == key))


class StudyGate:
    """A lock held by one worker of a study at a time, on every machine: a PostgreSQL advisory
    lock, or a file lock beside a SQLite storage. A worker holds it from the budget check until
    its new trial is RUNNING in the study, so two workers never both take the last place."""

    def __init__(self, url: str, study: str):
        self.url, self.study, self._release = url, study, None

    def acquire(self) -> None:
        if is_journal(self.url):
            self._release = _file_lock(str(journal_path(self.url)), self.study)
            return
        engine = _plain_engine(self.url)
        if engine.dialect.name == "postgresql":
            key = int.from_bytes(hashlib.sha256(self.study.encode()).digest()[:8], "big", signed=True)
            conn = engine.connect()
            conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": key})

            def release() -> None:
                conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.close()
        else:
            release = _file_lock(engine.url.database, self.study)
        self._release = release

    def release(self) -> None:
        """Let the next worker in (again: a no-op)."""
        release, self._release = self._release, None
        if release is not None:
            release()

    def __enter__(self) -> "StudyGate":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _file_lock(path: str, study: str):
    """A lock file beside a SQLite database or a journal, one per study; returns its release."""
    from filelock import FileLock

    lock = FileLock(f"{path}.{hashlib.sha256(study.encode()).hexdigest()[:12]}.lock")
    lock.acquire()
    return lock.release


class _JournalAgreements:
    """The agreements of a journal storage: a JSON file beside the journal, changed under a lock
    file (a journal has no table to insert into). ``with`` it to read and change the dict."""

    def __init__(self, url: str):
        self.path = Path(f"{journal_path(url)}.agreements.json")

    def __enter__(self) -> dict[str, str]:
        from filelock import FileLock

        self._lock = FileLock(f"{self.path}.lock")
        self._lock.acquire()
        self.table = json.loads(self.path.read_text()) if self.path.exists() else {}
        self._before = dict(self.table)
        return self.table

    def __exit__(self, *exc) -> None:
        try:
            if exc[0] is None and self.table != self._before:
                tmp = self.path.with_suffix(".tmp")
                tmp.write_text(json.dumps(self.table, indent=1))
                os.replace(tmp, self.path)  # a reader never sees half a file
        finally:
            self._lock.release()


@functools.lru_cache(maxsize=8)
def _plain_engine(url: str) -> sqlalchemy.engine.Engine:
    args = {"connect_args": {"timeout": 120}} if url.startswith("sqlite:") else {}
    return sqlalchemy.create_engine(url, **args)


@functools.lru_cache(maxsize=8)
def _engine(url: str) -> sqlalchemy.engine.Engine:
    """The engine, with the agreements table created."""
    engine = _plain_engine(url)
    attempts = 3  # workers creating the table at once: one wins, the others find it
    for attempt in range(1, attempts + 1):
        try:
            METADATA.create_all(engine, checkfirst=True)
            break
        except sqlalchemy.exc.SQLAlchemyError as exc:
            if attempt == attempts:
                reason = database_reason(exc)
                raise UserError(f"--storage {masked(url)}: cannot write the study's agreements: {reason}") from None
    return engine
