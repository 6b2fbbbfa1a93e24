"""Every lifecycle hook, called by the real runner and sweep with the toy task plugin."""

from __future__ import annotations

import dataclasses
import math
import os
import signal
import sys
from pathlib import Path

import pytest

from conftest import Recorder
from orchestrator import hookimpl, interrupt
from orchestrator.errors import NonFiniteLoss, Pruned, UserError
from orchestrator.interrupt import Interrupted
from orchestrator.params import validate
from orchestrator.registry import load_tasks
from orchestrator.runner import Project, run_dvc_stage, run_task
from orchestrator.space import SweepConfig
from orchestrator.sweep import plan_sweep, run_sweep
from orchestrator.sweep.study import Study
from orchestrator.task import OrchConfig
from orchestrator.context import StageContext
from orchestrator.stage_params import StageParams, declared_keys


@pytest.fixture
def toy(pm, toy_site, project):
    import orch_toy

    pm.register(orch_toy, name="toy")
    recorder = Recorder()
    pm.register(recorder, name="recorder")
    pm.hook.orch_configure(config=OrchConfig(project))
    reg = load_tasks(pm)["toy"]
    try:
        yield pm, reg, recorder, Project(project, None)
    finally:
        pm.unregister(recorder)
        pm.unregister(orch_toy)


def params(reg, **values):
    return validate(reg.task.params_model, values, "toy", "test")


def test_configure_receives_project_root(toy):
    _, _, recorder, project = toy
    assert recorder.calls[0] == ("orch_configure", project.root)


def test_register_tasks_collects_the_plugin_task(toy):
    pm, reg, _, _ = toy
    assert reg.task.name == "toy" and reg.plugin == "toy"
    assert [s.name for s in reg.task.stages] == ["prepare", "train", "report"]


def test_run_fires_lifecycle_hooks_in_order(toy, tmp_path):
    pm, reg, recorder, project = toy
    run, metrics = run_task(pm, reg, params(reg, epochs=3), project, tmp_path / "work")
    names = recorder.names()
    assert names[1] == "orch_run_start" and names[-1] == "orch_run_end"
    epochs = [arg for name, arg in recorder.calls if name == "orch_epoch_end"]
    assert [e for e, _ in epochs] == [0, 1, 2]
    assert set(epochs[0][1]) == {"train_loss", "val_loss", "val_rmse"}
    assert ("orch_artifact", ("w.json", "model")) in recorder.calls
    diagnosis, files = dict(recorder.calls)["orch_report_built"]
    assert files == ["report.md", "report.html", "report.png", "report.json"]
    end_metrics = dict(recorder.calls)["orch_run_end"]
    assert math.isclose(end_metrics["val_rmse"], metrics["val_rmse"])
    assert run.tracking == {"recorder": run.name}
    assert "orch_run_error" not in names


def test_run_error_is_called_then_reraised_and_outputs_removed(toy, tmp_path):
    pm, reg, recorder, project = toy
    with pytest.raises(RuntimeError, match="toy failure"):
        run_task(pm, reg, params(reg, fail_at_epoch=1), project, tmp_path / "work")
    name, error = recorder.calls[-1]
    assert name == "orch_run_error" and isinstance(error, RuntimeError)
    assert "orch_run_end" not in recorder.names()
    assert not (tmp_path / "work" / "train").exists()  # nothing half-written
    assert (tmp_path / "work" / "prepare" / "data.json").exists()  # the finished stage stays


def test_nan_loss_fails_the_run(toy, tmp_path):
    pm, reg, recorder, project = toy
    with pytest.raises(NonFiniteLoss):
        run_task(pm, reg, params(reg, lr=20.0, epochs=8), project, tmp_path / "work")
    assert isinstance(recorder.calls[-1][1], NonFiniteLoss)


def test_dvc_stages_share_one_run(toy):
    pm, reg, recorder, project = toy
    p = params(reg)
    assert run_dvc_stage(pm, reg, p, project, "prepare")["n_rows"] == 200
    assert "orch_run_start" not in recorder.names()  # data preparation is not a tracked run
    run_dvc_stage(pm, reg, p, project, "train")
    first_run = dict(recorder.calls)["orch_run_start"]
    recorder.calls.clear()
    run_dvc_stage(pm, reg, p, project, "report")
    assert recorder.names()[0] == "orch_run_start"
    assert recorder.calls[0][1] == first_run  # the report stage continues the train stage's run
    assert (project.root / "outputs" / "toy" / "report" / "report.md").exists()


class Stopper:
    """An epoch_end hook that raises Pruned: the runner must hand it to run_error."""

    @hookimpl
    def orch_epoch_end(self, run, epoch, metrics):
        if epoch == 1:
            raise Pruned("stop")


def test_epoch_end_can_stop_a_run(toy, tmp_path):
    pm, reg, recorder, project = toy
    stopper = Stopper()
    pm.register(stopper)
    try:
        with pytest.raises(Pruned):
            run_task(pm, reg, params(reg), project, tmp_path / "work")
    finally:
        pm.unregister(stopper)
    assert isinstance(recorder.calls[-1][1], Pruned)


def test_sweep_hooks(toy):
    pm, reg, recorder, project = toy
    config = validate(SweepConfig, {"trials": 4, "seed": 1, "pruner": "none",
                                    "space": {"lr": {"low": 0.01, "high": 0.3, "scale": "log"}}}, "toy.sweep", "t")
    sweep = plan_sweep(reg, project, params(reg), config)
    best = run_sweep(pm, reg, project, sweep, jobs=1, out_dir=project.root / "sweep")
    names = recorder.names()
    assert names.count("orch_trial_start") == 4 and names.count("orch_trial_end") == 4
    assert names.index("orch_sweep_start") < names.index("orch_trial_start")
    assert names[-1] == "orch_sweep_end"
    trial, sampled = dict(recorder.calls)["orch_trial_start"]
    assert 0.01 <= sampled["lr"] <= 0.3
    ends = [result for name, result in recorder.calls if name == "orch_trial_end"]
    assert {r.state for r in ends} == {"COMPLETE"} and [r.number for r in ends] == [0, 1, 2, 3]
    assert all(r.report and r.tracking["recorder"] and r.feasible for r in ends)
    reported_best, files = dict(recorder.calls)["orch_sweep_end"]
    assert reported_best == best and best.value == min(r.value for r in ends)
    assert files == ["best_params.yaml", "trials.md", "trials.json"]
    assert Path(project.root / "sweep" / "best_params.yaml").read_text().count("lr:") == 1
    assert Study.existing(sweep.study, sweep.storage).results() == ends  # what Optuna stored reads back the same


def test_sweep_best_trial_is_the_best_feasible_one(toy):
    pm, reg, recorder, project = toy
    config = validate(SweepConfig, {"trials": 6, "seed": 0, "pruner": "none", "constraints": {"weight": {"max": 2.0}},
                                    "space": {"lr": {"low": 0.003, "high": 0.2, "scale": "log"}}}, "toy.sweep", "t")
    sweep = plan_sweep(reg, project, params(reg), config, study="feasible")
    best = run_sweep(pm, reg, project, sweep, jobs=1, out_dir=project.root / "sweep")
    results = Study.existing("feasible", sweep.storage).results()
    feasible = [r for r in results if r.feasible]
    infeasible = [r for r in results if not r.feasible]
    assert feasible and infeasible  # w near 3 (converged) breaks the constraint; slow lrs keep w under 2
    assert best.metrics["weight"] <= 2.0
    assert best.value == min(r.value for r in feasible) > min(r.value for r in infeasible)
    assert all(r.violations[0] > 0 for r in infeasible)


def test_a_range_the_params_refuse_is_refused_before_the_sweep(toy):
    pm, reg, recorder, project = toy
    config = validate(SweepConfig, {"space": {"epochs": {"low": 0, "high": 8, "type": "int"}}}, "toy.sweep", "t")
    with pytest.raises(UserError, match=r"^toy.sweep.space.epochs: low 0 is refused by the params "
                                        r"\(toy.epochs: must be > 0, got 0\)$"):
        plan_sweep(reg, project, params(reg), config, study="refused")
    config = validate(SweepConfig, {"space": {"noise": {"choices": [0.1, -1.0]}}}, "toy.sweep", "t")
    with pytest.raises(UserError, match=r"^toy.sweep.space.noise: choice -1.0 is refused"):
        plan_sweep(reg, project, params(reg), config, study="refused")


def test_sampled_values_the_params_refuse_fail_the_trial_with_the_reason(toy):
    """The check before the sweep reads the ends of each range; a value refused inside it (a
    validator of the plugin's own) still fails only its trial, with the reason."""
    pm, reg, recorder, project = toy
    config = validate(SweepConfig, {"trials": 2, "pruner": "none", "space": {"epochs": {"low": 1, "high": 3,
                                                                                       "type": "int"}}},
                      "toy.sweep", "t")
    sweep = plan_sweep(reg, project, params(reg), config, study="refused")
    sweep = dataclasses.replace(sweep, space={"epochs": {"low": -5, "high": -1, "type": "int"}})
    assert run_sweep(pm, reg, project, sweep, jobs=1, out_dir=project.root / "sweep") is None
    results = Study.existing("refused", sweep.storage).results()
    assert [r.state for r in results] == ["FAIL", "FAIL"]
    assert all("sampled params: toy.epochs" in r.reason for r in results)


def test_restart_ignores_and_removes_an_earlier_checkpoint(toy):
    pm, reg, _, project = toy
    stage = reg.task.stage("train")
    view = StageParams(params(reg), declared_keys(stage.params, reg.task.params_model), "toy.train")
    dirs = {s.name: project.root / "work" / s.name for s in reg.task.stages}
    dirs["prepare"].mkdir(parents=True)

    def ctx(restart: bool) -> StageContext:
        return StageContext(reg.task, stage, view, pm.hook, dirs, project.scratch, None, True, restart)

    ctx(False).checkpoint({"epoch": 3})
    assert ctx(False).restore() == {"epoch": 3}
    assert ctx(True).restore() is None  # --restart
    assert ctx(False).restore() is None  # removed: a later run without it starts over too


def test_a_checkpoint_is_keyed_by_its_inputs_data_not_by_their_metrics_and_timings(toy):
    """A rerun rewrites the input stages: their metrics.json (tokens per second...) differ, their data
    do not. Keyed by the metrics, ULMFiT's language models never resumed after a kill."""
    pm, reg, _, project = toy
    stage = reg.task.stage("train")
    view = StageParams(params(reg), declared_keys(stage.params, reg.task.params_model), "toy.train")
    dirs = {s.name: project.root / "work" / s.name for s in reg.task.stages}
    dirs["prepare"].mkdir(parents=True)
    (dirs["prepare"] / "data.json").write_text("[1, 2]")

    def key() -> Path:
        return StageContext(reg.task, stage, view, pm.hook, dirs, project.scratch, None, True, False).checkpoint_path()

    (dirs["prepare"] / "metrics.json").write_text('{"seconds": 1.5}')
    first = key()
    (dirs["prepare"] / "metrics.json").write_text('{"seconds": 1.7}')
    (dirs["prepare"] / "history.csv").write_text("epoch,seconds\n0,1.7\n")
    assert key() == first
    (dirs["prepare"] / "data.json").write_text("[1, 3]")
    assert key() != first


def _sigterm() -> None:
    os.kill(os.getpid(), signal.SIGTERM)


class SigtermAtRunStart:
    """Sends this process SIGTERM while the trackers open the run."""

    @hookimpl
    def orch_run_start(self, run):
        _sigterm()


class SigtermAtTrialStart:
    """Sends this process SIGTERM as a trial starts, before its run opens."""

    @hookimpl
    def orch_trial_start(self, sweep, trial, params):
        _sigterm()


@pytest.fixture
def stop_at(toy):
    """Registers a plugin with this process's stop handlers installed; both undone afterwards."""
    pm = toy[0]
    saved = {s: signal.getsignal(s) for s in interrupt.SIGNALS}, sys.unraisablehook
    interrupt.install()
    registered = []

    def register(plugin) -> None:
        pm.register(plugin)
        registered.append(plugin)

    yield register
    for plugin in registered:
        pm.unregister(plugin)
    interrupt.reset()
    for signum, handler in saved[0].items():
        signal.signal(signum, handler)
    sys.unraisablehook = saved[1]


def test_a_stop_while_the_trackers_open_the_run_closes_it_and_leaves_no_lease(toy, stop_at, tmp_path):
    pm, reg, recorder, project = toy
    stop_at(SigtermAtRunStart())
    with pytest.raises(Interrupted):
        run_task(pm, reg, params(reg), project, tmp_path / "work")
    name, error = recorder.calls[-1]
    assert name == "orch_run_error" and isinstance(error, Interrupted)  # closed as KILLED, not left RUNNING
    assert list((project.scratch / "leases").glob("*.json")) == []


def test_a_stop_as_a_trial_starts_is_interrupted_with_its_values_not_lost(toy, stop_at):
    pm, reg, recorder, project = toy
    stop_at(SigtermAtTrialStart())
    config = validate(SweepConfig, {"trials": 2, "pruner": "none",
                                    "space": {"lr": {"low": 0.01, "high": 0.3, "scale": "log"}}}, "toy.sweep", "t")
    sweep = plan_sweep(reg, project, params(reg), config, study="stopped")
    with pytest.raises(Interrupted):
        run_sweep(pm, reg, project, sweep, jobs=1, out_dir=project.root / "sweep")
    (result,) = Study.existing("stopped", sweep.storage).results()
    assert result.state == "INTERRUPTED" and 0.01 <= result.params["lr"] <= 0.3  # queued again on the rerun
    assert recorder.names()[-1] == "orch_sweep_end"  # the parent run is closed too
