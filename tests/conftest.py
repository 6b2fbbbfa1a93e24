"""Shared fixtures: a fresh project folder, the test plugins' site folder, tiny MovieLens data."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

# one of the `pytest -n` workers, which share the cores: one thread each, here and in the processes
# it starts, set before numpy and torch read it (on 2 cores, two 2-thread trainings ran ~7x slower)
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from orchestrator import hookimpl  # noqa: E402
from orchestrator.manager import get_plugin_manager  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
TOY_SITE = FIXTURES / "site"
BROKEN_SITE = FIXTURES / "broken_site"


def add_site(monkeypatch, folder: Path) -> None:
    """Make a folder of dist-infos importable here and in child processes (sweep workers, CLI)."""
    monkeypatch.syspath_prepend(str(folder))
    importlib.invalidate_caches()
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH")])))


def pytest_xdist_auto_num_workers(config) -> int:
    """``-n auto``: one worker more than the cores. Many tests wait on subprocesses, servers and
    timed epochs; on 2 cores 3 workers took 378 s where 2 took 417 s (same 289 tests)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return cores + 1


def pytest_collection_modifyitems(config, items):
    """The longest tests first, so that parallel workers (``pytest -n``) end together: the DVC
    pipeline test (minutes), then the integration tests, then the unit tests."""
    def weight(item) -> int:
        if "dvc_project" in getattr(item, "fixturenames", ()):
            return 0
        return 1 if item.get_closest_marker("integration") else 2

    items.sort(key=weight)  # stable: the order within each group stays


@pytest.fixture
def toy_site(monkeypatch):
    add_site(monkeypatch, TOY_SITE)
    yield TOY_SITE
    sys.modules.pop("orch_toy", None)


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """An empty project folder as the working directory, with its own tracking stores."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("ORCH_DISABLE_PLUGINS", raising=False)
    return tmp_path


@pytest.fixture
def pm():
    return get_plugin_manager(load_entrypoints=False)


class Recorder:
    """A tracker that records every lifecycle hook call: (hook name, interesting argument)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    @hookimpl
    def orch_configure(self, config):
        self.calls.append(("orch_configure", config.root))

    @hookimpl
    def orch_run_start(self, run):
        run.tracking["recorder"] = run.name
        self.calls.append(("orch_run_start", run.name))

    @hookimpl
    def orch_run_end(self, run, metrics):
        self.calls.append(("orch_run_end", dict(metrics)))

    @hookimpl
    def orch_run_error(self, run, error):
        self.calls.append(("orch_run_error", error))

    @hookimpl
    def orch_epoch_end(self, run, epoch, metrics):
        self.calls.append(("orch_epoch_end", (epoch, dict(metrics))))

    @hookimpl
    def orch_artifact(self, run, path, kind):
        self.calls.append(("orch_artifact", (Path(path).name, kind)))

    @hookimpl
    def orch_report_built(self, run, report, files):
        self.calls.append(("orch_report_built", (report.diagnosis, [Path(f).name for f in files])))

    @hookimpl
    def orch_sweep_start(self, sweep):
        sweep.tracking["recorder"] = sweep.study
        self.calls.append(("orch_sweep_start", sweep.study))

    @hookimpl
    def orch_sweep_end(self, sweep, best, files):
        self.calls.append(("orch_sweep_end", (best, [Path(f).name for f in files])))

    @hookimpl
    def orch_trial_start(self, sweep, trial, params):
        self.calls.append(("orch_trial_start", (trial, dict(params))))

    @hookimpl
    def orch_trial_end(self, sweep, result, run):
        self.calls.append(("orch_trial_end", result))


def write_movielens(folder: Path, n_users: int = 40, n_items: int = 30, per_user: int = 15, seed: int = 0) -> Path:
    """A tiny ml-latest-small folder whose ratings follow user and film tastes (learnable)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    taste_u, taste_i = rng.normal(size=n_users), rng.normal(size=n_items)
    rows = []
    for u in range(n_users):
        for i in rng.choice(n_items, size=per_user, replace=False):
            score = 3.5 + taste_u[u] * taste_i[i] * 0.8 + rng.normal(0, 0.3)
            rows.append((u + 1, int(i) * 10 + 1, float(np.clip(np.round(score * 2) / 2, 0.5, 5.0)), 1_000_000 + len(rows)))
    pd.DataFrame(rows, columns=["userId", "movieId", "rating", "timestamp"]).to_csv(folder / "ratings.csv", index=False)
    pd.DataFrame({"movieId": [i * 10 + 1 for i in range(n_items)], "title": [f"Film {i} (2000)" for i in range(n_items)],
                  "genres": ["Drama"] * n_items}).to_csv(folder / "movies.csv", index=False)
    return folder


@pytest.fixture
def movielens(tmp_path) -> Path:
    return write_movielens(tmp_path / "ml-tiny")


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL server for the session (see tests/servers.py); skips without one. Its
    folder is not under pytest's root-only temp folder: the server may run as another user."""
    import shutil
    import tempfile

    from servers import Postgres

    folder = Path(tempfile.mkdtemp(prefix="orch-pg-"))
    try:
        server = Postgres(folder)
        yield server
        server.stop()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
