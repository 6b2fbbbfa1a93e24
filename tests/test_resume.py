"""Every built-in training loop resumes through the host: a stage stopped after an epoch and run
again ends with the same weights and metrics as one that ran straight through, bit for bit.

Each case runs the smoke pipeline's tiny data and params (pipelines/smoke) in a temp project,
the stages before the one under test once, then the stage twice: straight through, and stopped
at its second epoch (the first epoch's checkpoint is on disk) then run again.
"""

from __future__ import annotations

import importlib
import shutil

import pytest
import torch

from conftest import ROOT
from orchestrator import hookimpl
from orchestrator.params import load_task_params
from orchestrator.registry import load_tasks
from orchestrator.runner import Project, make_run_info, run_stages
from orchestrator.task import OrchConfig

SMOKE = ROOT / "pipelines" / "smoke"
# task, stage under test, params that give it two epochs (or phases)
CASES = [
    ("collab", "train", []),
    ("charrnn", "train", ["epochs=2"]),  # two architectures in one stage: one checkpoint each
    ("rossmann", "train", ["epochs=2"]),
    ("ulmfit", "pretrain", ["pretrain.epochs=2"]),
    ("ulmfit", "classify", []),  # gradual unfreezing: one phase per epoch, a new optimizer each
    ("stylegan", "train", ["epochs=2"]),
]
VARYING = ("seconds", "_per_s", "ms_per", "per_1k", "resumed_from")  # timings, and where it resumed


class StopAtSecondEpoch:
    """Raises in the first epoch-1 report: what a kill right after the first checkpoint leaves."""

    def __init__(self):
        self.fired = False

    @hookimpl
    def orch_epoch_end(self, run, epoch, metrics):
        if epoch == 1 and not self.fired:
            self.fired = True
            raise RuntimeError("stopped")


def weights(folder) -> dict[str, torch.Tensor]:
    out = {}
    for path in sorted(folder.glob("*.pt")):
        for key, value in torch.load(path, weights_only=True).items():
            out[f"{path.name}:{key}"] = value
    return out


@pytest.mark.parametrize("task, stage, overrides", CASES, ids=[f"{t}-{s}" for t, s, _ in CASES])
def test_a_stopped_stage_resumes_to_the_same_weights_and_metrics(task, stage, overrides, pm, tmp_path, monkeypatch):
    shutil.copytree(SMOKE / "data", tmp_path / "data")
    shutil.copy(SMOKE / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)
    pm.register(importlib.import_module(f"orch_{task}"), name=task)
    pm.hook.orch_configure(config=OrchConfig(tmp_path))
    reg = load_tasks(pm)[task]
    params, _ = load_task_params(reg.task, tmp_path / "params.yaml", overrides)
    project = Project(tmp_path, tmp_path / "params.yaml")
    stages = list(reg.task.stages)
    index = [s.name for s in stages].index(stage)
    dirs = {s.name: tmp_path / "work" / s.name for s in stages}
    run_stages(pm, reg, params, stages[:index], dirs, None, scratch=project.scratch, quiet=True)
    checkpoints = project.scratch / "checkpoints" / task

    def attempt():
        run = make_run_info(reg, params, project, mode="run")
        return run_stages(pm, reg, params, [stages[index]], dirs, run, scratch=project.scratch, quiet=True)

    straight = attempt()
    expected = weights(dirs[stage])
    assert expected
    if stages[index].checkpoint_ignores:  # kept, so that more epochs continue the finished run
        assert list(checkpoints.glob("*.pt"))
        shutil.rmtree(checkpoints)
    assert not list(checkpoints.glob("*.pt"))  # a finished stage leaves no checkpoint

    stopper = StopAtSecondEpoch()
    pm.register(stopper)
    with pytest.raises(RuntimeError, match="stopped"):
        attempt()
    pm.unregister(stopper)
    assert stopper.fired and list(checkpoints.glob("*.pt"))
    resumed = attempt()

    got = weights(dirs[stage])
    assert got.keys() == expected.keys()
    assert all(torch.equal(got[k], expected[k]) for k in expected), "weights differ after resuming"
    same = {k: v for k, v in straight.items() if not any(t in k for t in VARYING)}
    assert {k: resumed[k] for k in same} == same
    assert bool(list(checkpoints.glob("*.pt"))) == bool(stages[index].checkpoint_ignores)
