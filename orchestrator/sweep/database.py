"""The study's database below Optuna: checking a storage URL before anything touches it, telling
a journal file from a database, and SQLite transactions that serialize (what Optuna's queue needs
of a shared SQLite file)."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy

from orchestrator.errors import UserError
from orchestrator.task import masked


JOURNAL = "journal:"  # Optuna's journal storage, a file on a shared file system (sweep/journal.py)


def is_journal(url: str) -> bool:
    return url.startswith(JOURNAL)


def journal_path(url: str) -> Path:
    """``journal:///abs/path.log`` or ``journal:relative/path.log`` -> the journal file."""
    path = url[len(JOURNAL):]
    return Path(path[2:] if path.startswith("//") else path).expanduser()


class MissingStorage(UserError):
    """A SQLite study storage that was to be read does not exist (nothing is created)."""


def check_storage(url: str, create: bool = True) -> None:
    """A one-line error for a storage URL that cannot work, before anything touches it."""
    if is_journal(url):
        _check_file(url, journal_path(url), create)
        return
    try:
        parsed = sqlalchemy.engine.make_url(url)
        parsed.get_dialect()
    except sqlalchemy.exc.NoSuchModuleError:  # before ArgumentError, its base class
        raise UserError(f"--storage {masked(url)}: unsupported database {url.split(':')[0]!r} "
                        "(expected sqlite, postgresql or journal)") from None
    except sqlalchemy.exc.ArgumentError:
        raise UserError(f"--storage {url}: not a database URL (expected sqlite:///PATH/optuna.db "
                        "postgresql://USER@HOST/DB or journal:///PATH/optuna.log)") from None
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        _check_file(url, Path(parsed.database).expanduser(), create)


def _check_file(url: str, path: Path, create: bool) -> None:
    if not create and not path.is_file():
        raise MissingStorage(f"--storage {url}: no study storage at {path}")
    if not path.parent.is_dir():
        raise UserError(f"--storage {url}: folder {path.parent} does not exist")


def serialize_transactions(engine) -> None:
    """Make each SQLite transaction take the write lock when it begins (``BEGIN IMMEDIATE``).

    Optuna hands a queued trial to one worker by reading it WAITING and then writing it RUNNING
    (``SELECT ... FOR UPDATE``). SQLite ignores ``FOR UPDATE`` and Python's driver starts the
    transaction only at the write, so two workers both read WAITING and both ran the same trial
    (18 times in 20 in a two-process race). PostgreSQL locks the row and needs none of this.
    This is SQLAlchemy's recipe for SQLite transactions that serialize."""
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _driver_leaves_transactions_to_us(dbapi_connection, record):
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # connections opened by Optuna's set-up reconnect with the listeners
