"""``--gpus-per-trial``: which GPUs each sweep worker gets (checked without a GPU), the error on a
machine without enough, and the pinning of real worker processes, read back from their runs' tags."""

from __future__ import annotations

import pytest
import yaml

from orchestrator.errors import UserError
from orchestrator.sweep import gpus
from test_integration import client_for, orch, runs_of


def test_each_worker_slot_gets_its_own_gpus_in_turn():
    assert gpus.assign(["0", "1", "2", "3"], workers=2, per_trial=2) == [["0", "1"], ["2", "3"]]
    assert gpus.assign(["0", "1", "2"], workers=3, per_trial=1) == [["0"], ["1"], ["2"]]
    assert gpus.assign(["GPU-a", "GPU-b"], workers=1, per_trial=1) == [["GPU-a"]]  # UUIDs pass through


def test_too_few_gpus_is_one_line_naming_what_fits():
    with pytest.raises(UserError, match=r"^--gpus-per-trial 1 with 3 worker\(s\) needs 3 GPUs, this machine "
                                        r"shows 2; use --jobs 2$"):
        gpus.assign(["0", "1"], workers=3, per_trial=1)
    with pytest.raises(UserError, match=r"needs 3 GPUs, this machine shows 2; use --jobs 1 and fewer GPUs per trial"):
        gpus.assign(["0", "1"], workers=1, per_trial=3)
    with pytest.raises(UserError, match=r"^--gpus-per-trial 1: this machine shows no GPU; drop the option"):
        gpus.assign([], workers=1, per_trial=1)


def test_visible_gpus_are_those_torch_finds_named_as_cuda_visible_devices_names_them(monkeypatch):
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    monkeypatch.setenv(gpus.ENV, "5,GPU-x,7,8,9,10,11,12,13")
    assert gpus.visible_gpus() == ["5", "GPU-x", "7", "8", "9", "10", "11", "12", "13"][:count]


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has a GPU: the error cannot happen")
@pytest.mark.parametrize("command", [["sweep", "toy", "--trials", "2"], ["worker", "toy", "--storage", "STORAGE",
                                                                          "--study", "s"]])
def test_gpus_per_trial_without_a_gpu_is_one_line_and_writes_nothing(project, toy_site, command):
    (project / "params.yaml").write_text(yaml.safe_dump({"toy": {"epochs": 1}}))
    storage = f"sqlite:///{project / 'optuna.db'}"
    if command[0] == "worker":  # a study to join, made by a sweep on the CPU
        assert orch("-q", "sweep", "toy", "--trials", "1", "--study", "s", cwd=project).returncode == 0
        command = [storage if a == "STORAGE" else a for a in command]
    before = sorted(p.name for p in project.iterdir())
    out = orch(*command, "--gpus-per-trial", "1", cwd=project)
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip().splitlines() == ["orch: error: --gpus-per-trial 1: this machine shows no GPU; "
                                               "drop the option to run on the CPU"]
    assert sorted(p.name for p in project.iterdir()) == before  # no study, no store, no run


def test_each_worker_process_sees_only_its_own_gpus_and_its_runs_say_which(project, toy_site):
    """Two workers, each pinned to its slot's (here made-up) GPU ids; each trial waits before its
    last epoch until the other is there too (the toy's meet barrier), so both workers run one."""
    from orchestrator.manager import get_plugin_manager
    from orchestrator.params import validate
    from orchestrator.registry import get_task
    from orchestrator.runner import Project
    from orchestrator.space import SweepConfig
    from orchestrator.sweep import plan_sweep, run_sweep
    from orchestrator.task import OrchConfig

    pm = get_plugin_manager()
    pm.hook.orch_configure(config=OrchConfig(project))
    reg = get_task(pm, "toy")
    params = validate(reg.task.params_model, {"epochs": 2, "meet": str(project / "meet")}, "toy", "test")
    config = validate(SweepConfig, {"trials": 2, "pruner": "none", "space": {"lr": {"low": 0.01, "high": 0.2}}},
                      "toy.sweep", "test")
    sweep = plan_sweep(reg, Project(project, None), params, config, study="pinned")
    run_sweep(pm, reg, Project(project, None), sweep, jobs=2, out_dir=project / "out", devices=[["7"], ["9"]])
    trials = [r for r in runs_of(client_for(project), "toy") if "orch.trial" in r.data.tags]
    assert sorted(r.data.tags["orch.gpus"] for r in trials) == ["7", "9"]
    assert {r.info.status for r in trials} == {"FINISHED"}
