"""The pytest kit for plugin authors (orchestrator.testing, a pytest11 plugin): its fixtures on the
built-in tasks, the contract check failing on a sloppy task, a sweep in a sandbox."""

from __future__ import annotations

import pytest

from conftest import write_movielens
from orchestrator import Artifact, HumanBaseline, Params, Stage, Task, hookimpl

pytestmark = pytest.mark.integration


def test_the_kit_is_a_pytest_plugin_wherever_orch_is_installed(request):
    plugin = request.config.pluginmanager.get_plugin("orch")
    assert plugin is not None and plugin.__name__ == "orchestrator.testing"


def test_check_task_passes_collab_on_tiny_data_and_returns_its_run(check_task, orch_sandbox):
    data = write_movielens(orch_sandbox.root / "ml-tiny")
    result = check_task("collab", data=str(data), epochs=2, n_factors=4, bs=64)
    assert result.artifacts["train/model.pt"] == "model" and result.artifacts["report/report.md"] == "report"
    assert [epoch for epoch, _ in result.epochs] == [0, 1]
    assert result.report.diagnosis and result.metrics["val_rmse"] > 0
    assert "model.pt" in result.files("train")
    run = result.mlflow_run
    assert run.info.status == "FINISHED" and run.data.params["n_factors"] == "4"
    assert run.data.metrics["val_rmse"] == pytest.approx(result.metrics["val_rmse"])


class SloppyParams(Params):
    k: int = 3


def fit(ctx):
    (ctx.out_dir / "weights.txt").write_text(str(ctx.params.k))
    return {"train_error": 0.2, "train_dev_error": float("nan"), "secret_score": 1.0}


class Sloppy:
    """A task with one of each problem the contract check names."""

    @hookimpl
    def orch_register_tasks(self):
        return [Task(name="sloppy", description="loose ends", params_model=SloppyParams, metric="error",
                     human=HumanBaseline(0.1, " "), metrics=("train_seconds",),
                     stages=(Stage("fit", fit, ("k",), tracked=True),),
                     artifacts=(Artifact("weights.txt", "model", "fit"), Artifact("curve.png", "plot", "fit")),
                     space={"lr": {"low": 0.1, "high": 1.0}})]


def test_the_contract_check_names_each_problem_in_one_line(orch_sandbox, check_task):
    orch_sandbox.plugins["sloppy"] = Sloppy()
    checked = orch_sandbox.check("sloppy", k=4)
    assert [p.line() for p in checked.problems] == [
        "problem: plugin 'sloppy', task 'sloppy': human baseline has no source: say where the human-level error "
        "comes from",
        "problem: plugin 'sloppy', task 'sloppy': search space key 'lr' is not a param of SloppyParams",
        "problem: plugin 'sloppy', task 'sloppy': its run logged train_dev_error = nan",
        "problem: plugin 'sloppy', task 'sloppy': its run logged no val_error: the report and sweeps read "
        "train_error, train_dev_error, val_error",
        "problem: plugin 'sloppy', task 'sloppy': its run logged metrics that Task.metrics does not declare: "
        "secret_score",
        "problem: plugin 'sloppy', task 'sloppy': its run built no bias/variance report (call "
        "ctx.bias_variance_report() in a stage after training)",
        "problem: plugin 'sloppy', task 'sloppy', artifact 'curve.png': declared for stage 'fit' but its run "
        "wrote no such file"]
    assert checked.result.artifacts == {"fit/weights.txt": "model"}  # what the trackers were handed
    with pytest.raises(pytest.fail.Exception, match=r"task 'sloppy' breaks the contract:\n.*human baseline"):
        check_task("sloppy", k=4)


def test_a_task_that_is_not_there_is_named_with_the_tasks_that_are(orch_sandbox):
    [problem] = orch_sandbox.check("nope").problems
    assert problem.what.startswith("no loaded plugin registers it (tasks: charrnn, collab, ")


def test_a_sandbox_sweep_nests_its_trials_under_one_parent(orch_sandbox, toy_site):
    sweep = orch_sandbox.sweep("toy", trials=3, epochs=2)
    assert sweep.states() == ["COMPLETE"] * 3 and sweep.best is not None
    assert (sweep.out_dir / "best_params.yaml").exists()
    parent = sweep.tracking["mlflow"]
    children = orch_sandbox.client.search_runs([orch_sandbox.client.get_experiment_by_name("toy").experiment_id],
                                               filter_string=f"tags.`mlflow.parentRunId` = '{parent}'")
    assert len(children) == 3 and {r.info.status for r in children} == {"FINISHED"}
