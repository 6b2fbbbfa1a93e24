"""``orch doctor`` on real projects: a healthy one, bad params, a run left open by a dead process."""

from __future__ import annotations

from dataclasses import replace

from mlflow.tracking import MlflowClient

from orchestrator import leases
from test_integration import client_for, orch
from test_leases import dead_pid


def test_a_healthy_project_is_all_ok(project):
    (project / "params.yaml").write_text("collab:\n  epochs: 2\n")
    out = orch("doctor", cwd=project)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "ok" in out.stdout and "every task's params are valid" in out.stdout and "problem" not in out.stdout


def test_bad_params_are_a_problem_naming_the_key(project):
    (project / "params.yaml").write_text("collab:\n  lr: -1\ncharrnn:\n  epochs: 0\n")
    out = orch("doctor", cwd=project)
    assert out.returncode == 1
    problems = [line for line in out.stdout.splitlines() if line.startswith("problem")]
    assert any("collab.lr: must be > 0, got -1" in line for line in problems)
    assert any("charrnn.epochs: must be > 0, got 0" in line for line in problems)


def test_a_run_left_open_by_a_dead_process_is_closed(project):
    client: MlflowClient = client_for(project)
    exp = client.create_experiment("collab")
    run = client.create_run(exp, run_name="r1")
    leases.hold(project / ".orch", replace(leases.Lease("collab", "r1", {"mlflow": run.info.run_id}), pid=dead_pid()))
    out = orch("doctor", cwd=project)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "fixed  1 run(s) of dead processes closed as KILLED: collab r1" in out.stdout
    assert client.get_run(run.info.run_id).info.status == "KILLED"
    assert "tracking store" in out.stdout and "answers" in out.stdout
