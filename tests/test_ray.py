"""``orch sweep --launcher ray`` on a real, local Ray instance: the workers run as Ray actors, each
a plain ``orch worker``, and the study still has one budget and one parent run."""

from __future__ import annotations

import pytest
import yaml

from orchestrator.sweep.study import Study
from test_integration import client_for, orch, runs_of

pytest.importorskip("ray", reason="Ray is not installed: pip install 'orch[ray]'")
pytestmark = pytest.mark.integration


def toy_sweep_params(project) -> None:
    params = {"toy": {"epochs": 2, "sweep": {"space": {"lr": {"low": 0.01, "high": 0.2, "scale": "log"}},
                                              "pruner": "none"}}}
    (project / "params.yaml").write_text(yaml.safe_dump(params))


def test_a_sweep_on_a_local_ray_instance_meets_its_budget_with_one_parent_run(project, toy_site):
    toy_sweep_params(project)
    out = orch("sweep", "toy", "--launcher", "ray", "--jobs", "2", "--trials", "6", "--study", "r", cwd=project)
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    results = Study.existing("r", f"sqlite:///{project / 'optuna.db'}").results()
    # exact: the actors' workers share the budget
    assert [r.state for r in results] == ["COMPLETE"] * 6, (out.stderr[-3000:], results)
    runs = runs_of(client_for(project), "toy")
    [parent] = [r for r in runs if r.data.tags.get("orch.role") == "sweep"]
    assert parent.info.status == "FINISHED"
    children = {int(r.data.tags["orch.trial"]): r for r in runs if r.data.tags.get("orch.role") != "sweep"}
    assert sorted(children) == [r.number for r in results]
    assert {r.data.tags["mlflow.parentRunId"] for r in children.values()} == {parent.info.run_id}
    for r in results:
        assert float(children[r.number].data.params["lr"]) == r.params["lr"]
        assert children[r.number].info.status == "FINISHED"


def test_a_ray_address_that_does_not_answer_and_gpus_ray_lacks_are_one_line_errors(project, toy_site):
    toy_sweep_params(project)
    out = orch("sweep", "toy", "--launcher", "ray", "--ray-address", "127.0.0.1:1", cwd=project)
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip().splitlines() == ["orch: error: --ray-address 127.0.0.1:1: no Ray cluster answers "
                                               "(Connection refused)"]
    out = orch("sweep", "toy", "--ray-address", "127.0.0.1:1", cwd=project)
    assert out.returncode == 2 and out.stderr.strip().endswith("--ray-address: only with --launcher ray")
    if not __import__("torch").cuda.is_available():  # a local Ray instance starts, finds no GPU and stops
        out = orch("sweep", "toy", "--launcher", "ray", "--gpus-per-trial", "1", cwd=project)
        assert out.returncode == 2, out.stderr
        assert out.stderr.strip().splitlines()[-1] == ("orch: error: --gpus-per-trial 1: the Ray cluster has 0 "
                                                       "GPU(s); drop the option to run on CPUs")
    assert sorted(p.name for p in project.iterdir()) == ["params.yaml"]  # no study, no store
