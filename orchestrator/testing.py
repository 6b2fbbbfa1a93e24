"""The pytest kit for plugin authors, loaded by pytest wherever orch is installed (``pytest11``).

Fixtures, each a fresh throwaway project (``orchestrator.sandbox.Sandbox``: params file, MLflow
SQLite store, Optuna storage, and a DVC repository on request) as the test's working folder:

    def test_my_task_meets_the_contract(check_task):
        result = check_task("mytask", epochs=1, n=200)   # declarations + one tiny run: fails listing each problem

    def test_my_task_learns(run_task):
        result = run_task("mytask", epochs=3)       # params as in params.yaml's section
        assert result.metrics["val_error"] < 0.2
        assert result.artifacts["train/model.pt"] == "model"
        assert result.mlflow_run.info.status == "FINISHED"

    def test_my_task_sweeps(orch_sandbox):
        sweep = orch_sandbox.sweep("mytask", trials=3, epochs=1)
        assert sweep.states() == ["COMPLETE"] * 3

    def test_my_tracker_sees_a_run(orch_sandbox, demo_task):
        orch_sandbox.run(demo_task, epochs=2)       # a tiny task the kit registers: y = 3x, under a second

    def test_my_task_joins_dvc(orch_sandbox):
        orch_sandbox.init_dvc(); orch_sandbox.orch("dvc"); orch_sandbox.dvc("repro")

Runs in these fixtures go through every installed plugin, with the tracking store of the sandbox
(``MLFLOW_TRACKING_URI`` is unset for the test; the ``orch`` commands it starts are given it).
"""

from __future__ import annotations

from typing import Any, Callable

import pytest

from orchestrator.sandbox import RunResult, Sandbox

__all__ = ["Sandbox", "RunResult", "orch_sandbox", "run_task", "check_task", "demo_task"]


def pytest_configure(config) -> None:
    # MLflow's own SQLAlchemy deprecations say nothing about the plugin under test
    config.addinivalue_line("filterwarnings", "ignore::DeprecationWarning:mlflow")


@pytest.fixture
def orch_sandbox(tmp_path, monkeypatch) -> Sandbox:
    """A throwaway project in a temporary folder, which is also the test's working folder."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    box = Sandbox(tmp_path / "project")
    monkeypatch.chdir(box.root)
    return box


@pytest.fixture
def run_task(orch_sandbox: Sandbox) -> Callable[..., RunResult]:
    """``run_task(name, **params)``: one ``orch run`` in the sandbox; a ``RunResult`` with its
    metrics, outputs, artifacts (path -> kind), epochs, report and ``mlflow_run``."""
    return orch_sandbox.run


@pytest.fixture
def check_task(orch_sandbox: Sandbox) -> Callable[..., RunResult]:
    """``check_task(name, **params)``: the task against the contract (its declarations, then one
    run on ``params``, which should be tiny); fails the test with one line per problem, else
    returns that run's ``RunResult`` for the test to go on with."""

    def check(name: str, **params: Any) -> RunResult:
        checked = orch_sandbox.check(name, **params)
        if checked.errors:
            pytest.fail(f"task {name!r} breaks the contract:\n" + "\n".join(p.line() for p in checked.problems),
                        pytrace=False)
        return checked.result

    return check


@pytest.fixture
def demo_task(orch_sandbox: Sandbox) -> str:
    """Registers the kit's demo task in the sandbox (``orchestrator.demo``: fits y = 3x in plain
    Python, under a second a run) and returns its name: a task for the tests of a tracker."""
    from orchestrator.demo import DemoPlugin

    orch_sandbox.plugins["orch-demo"] = DemoPlugin()
    return "demo"
