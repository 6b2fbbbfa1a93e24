"""Real servers the tests start for themselves: a PostgreSQL cluster from Debian's binaries, on
127.0.0.1, in a temporary folder, with password authentication (so that URLs carry a password
to mask). Without the binaries the tests that need it skip, saying what to install."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

INSTALL = "apt-get install -y postgresql (what .ci/run does), and pip install -e '.[test]' for psycopg"
USER, PASSWORD = "orch", "s3cret-pw"


def _binaries() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(versions[-1]).parent if versions else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Postgres:
    """One running cluster; ``url(db)`` creates a fresh database and returns its URL."""

    def __init__(self, folder: Path):
        bin_dir = _binaries()
        if bin_dir is None:
            pytest.skip(f"no PostgreSQL server binaries (initdb); install them: {INSTALL}")
        try:
            import psycopg  # noqa: F401  (the driver SQLAlchemy uses for postgresql://)
        except ImportError:
            pytest.skip(f"no psycopg driver; {INSTALL}")
        self.folder, self.port = folder, free_port()
        # the server refuses to run as root: as root, run it as the postgres user
        self.prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "pw").write_text(PASSWORD + "\n")
        if self.prefix:
            shutil.chown(folder, "postgres")
            shutil.chown(folder / "pw", "postgres")
        data, self.pg_ctl = folder / "data", str(bin_dir / "pg_ctl")
        self._run(str(bin_dir / "initdb"), "-D", str(data), "-U", USER, f"--pwfile={folder / 'pw'}",
                  "-A", "scram-sha-256", "--no-sync")
        options = f"-p {self.port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100"
        self._run(self.pg_ctl, "-D", str(data), "-o", options, "-l", str(folder / "log"), "-w", "start")
        self.data, self.count = data, 0

    def _run(self, *cmd: str) -> None:
        out = subprocess.run([*self.prefix, *cmd], capture_output=True, text=True, cwd=self.folder)
        if out.returncode != 0:
            pytest.fail(f"{' '.join(cmd)} failed: {out.stderr or out.stdout}")

    def url(self, name: str | None = None, password: str = PASSWORD) -> str:
        """A new, empty database (``name`` or the next free ``dbN``) as a SQLAlchemy URL."""
        import psycopg

        self.count += 1
        name = name or f"db{self.count}"
        with psycopg.connect(self.base("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.base(name, password)

    def base(self, name: str, password: str = PASSWORD) -> str:
        return f"postgresql://{USER}:{password}@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        subprocess.run([*self.prefix, self.pg_ctl, "-D", str(self.data), "-m", "immediate", "stop"],
                       capture_output=True, cwd=self.folder)
