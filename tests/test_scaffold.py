"""``orch new plugin``: the packages it writes install with real pip, are found through the real
entry point, and work unedited: run, sweep, join ``dvc repro``, and their own tests pass."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from orchestrator.sandbox import Sandbox

pytestmark = pytest.mark.integration


def pip_install(package: Path, site: Path) -> None:
    """Real pip: build the package and install it, entry points and all, into ``site`` (a folder
    on PYTHONPATH: the test environment itself stays as it was for the tests beside this one). It
    builds a private copy: setuptools builds in the source folder, and parallel test workers that
    built one package at once removed each other's ``build/`` files."""
    source = Path(tempfile.mkdtemp(prefix="pip-src-")) / package.name
    shutil.copytree(package, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                           "--target", str(site), str(source)], capture_output=True, text=True, timeout=300)
    shutil.rmtree(source.parent, ignore_errors=True)
    assert done.returncode == 0, done.stderr


@pytest.fixture
def scaffolded(tmp_path, monkeypatch):
    """``orch new plugin NAME [--kind KIND]`` in tmp_path, installed; the package folder."""
    site = tmp_path / "site"
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)

    def make(name: str, *options: str) -> Path:
        box = Sandbox(tmp_path)
        out = box.orch("new", "plugin", name, *options)
        assert f"wrote " in out.stdout and "pip install -e '.[test]'" in out.stdout
        package = tmp_path / f"orch-{name}"
        pip_install(package, site)
        return package

    return make


def test_a_new_task_plugin_installs_runs_sweeps_joins_dvc_and_passes_its_own_tests(scaffolded, tmp_path):
    package = scaffolded("circles")
    box = Sandbox(tmp_path / "project")
    plugins = box.orch("plugins").stdout
    assert "circles   orch-circles  0.1.0    loaded" in plugins

    run = box.orch("-q", "run", "circles")
    assert "diagnosis:" in run.stdout and "val_error=" in run.stdout
    sweep = box.orch("-q", "sweep", "circles", "--trials", "3")
    assert "best trial" in sweep.stdout
    [study] = (box.root / "sweeps").iterdir()
    trials = json.loads((study / "trials.json").read_text())
    assert [t["state"] for t in trials] == ["COMPLETE"] * 3

    box.init_dvc()
    box.orch("dvc", "--task", "circles")
    box.dvc("repro")
    out = box.root / "outputs" / "circles"
    assert {"boundary.png", "report.md"} <= {p.name for p in (out / "report").iterdir()}
    assert box.dvc("status").stdout.strip() == "Data and pipelines are up to date."
    assert box.orch("dvc", "--task", "circles", "--check").returncode == 0

    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-p", "no:cacheprovider"],
                           cwd=package, capture_output=True, text=True, timeout=600)
    assert tests.returncode == 0, tests.stdout[-3000:]
    assert "4 passed" in tests.stdout


def test_a_new_tracker_plugin_installs_records_a_run_and_passes_its_own_tests(scaffolded, tmp_path, toy_site):
    package = scaffolded("runlog", "--kind", "tracker")
    box = Sandbox(tmp_path / "project")
    box.write_params("toy", epochs=2)
    box.orch("run", "toy")
    events = (box.root / ".orch" / "runlog" / "events.log").read_text().splitlines()
    assert [line.split("\t")[1] for line in events][:2] == ["run_start", "epoch"] and "run_end" in events[-1]

    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-p", "no:cacheprovider"],
                           cwd=package, capture_output=True, text=True, timeout=600)
    assert tests.returncode == 0, tests.stdout[-3000:]
    assert "2 passed" in tests.stdout


def test_new_plugin_refuses_a_taken_name_a_bad_name_and_a_folder_in_use(tmp_path):
    box = Sandbox(tmp_path)
    for args, message in [(("collab",), "plugin name 'collab': a plugin or task of that name is installed already"),
                          (("My-Task",), "plugin name 'My-Task': expected a lowercase identifier"),
                          (("fresh", "--kind", "widget"), "Invalid value for '--kind'")]:
        out = box.orch("new", "plugin", *args, check=False)
        assert out.returncode == 2 and message in out.stderr, out.stderr
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    out = box.orch("new", "plugin", "fresh", "--dir", "busy", check=False)
    assert out.returncode == 2 and "busy: exists and is not an empty folder" in out.stderr
    assert sorted(p.name for p in (tmp_path / "busy").iterdir()) == ["notes.txt"]  # nothing written
