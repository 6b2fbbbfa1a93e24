"""Every built-in training loop resumes through the host: a stage stopped after an epoch, or in
the middle of one, and run again ends with the same weights and metrics as one that ran straight
through, bit for bit.

Each case runs the smoke pipeline's tiny data and params (pipelines/smoke) in a temp project,
the stages before the one under test once, then the stage straight through, and stopped then
run again: at its second epoch (the first epoch's checkpoint is on disk), or right after an
in-epoch checkpoint (``ORCH_CHECKPOINT_EVERY=0`` checkpoints after every batch).
"""

from __future__ import annotations

import importlib
import shutil

import pytest
import torch

from conftest import ROOT
from orchestrator import checkpoint, hookimpl
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


class StageUnderTest:
    """The stage under test in a temp copy of the smoke project, the stages before it done."""

    def __init__(self, task, stage, overrides, pm, tmp_path, monkeypatch):
        shutil.copytree(SMOKE / "data", tmp_path / "data")
        shutil.copy(SMOKE / "params.yaml", tmp_path / "params.yaml")
        monkeypatch.chdir(tmp_path)
        pm.register(importlib.import_module(f"orch_{task}"), name=task)
        pm.hook.orch_configure(config=OrchConfig(tmp_path))
        self.pm, self.reg = pm, load_tasks(pm)[task]
        self.params, _ = load_task_params(self.reg.task, tmp_path / "params.yaml", overrides)
        self.project = Project(tmp_path, tmp_path / "params.yaml")
        stages = list(self.reg.task.stages)
        index = [s.name for s in stages].index(stage)
        self.dirs = {s.name: tmp_path / "work" / s.name for s in stages}
        run_stages(pm, self.reg, self.params, stages[:index], self.dirs, None, scratch=self.project.scratch, quiet=True)
        self.spec, self.checkpoints = stages[index], self.project.scratch / "checkpoints" / task

    def attempt(self) -> dict:
        run = make_run_info(self.reg, self.params, self.project, mode="run")
        return run_stages(self.pm, self.reg, self.params, [self.spec], self.dirs, run, scratch=self.project.scratch,
                          quiet=True)

    def weights(self) -> dict[str, torch.Tensor]:
        return weights(self.dirs[self.spec.name])

    def clear_kept_checkpoints(self) -> None:
        if self.spec.checkpoint_ignores:  # kept, so that more epochs continue the finished run
            assert list(self.checkpoints.glob("*.pt"))
            shutil.rmtree(self.checkpoints)
        assert not list(self.checkpoints.glob("*.pt"))  # a finished stage leaves no checkpoint

    def assert_same_as(self, expected: dict, straight: dict, resumed: dict) -> None:
        got = self.weights()
        assert got.keys() == expected.keys()
        assert all(torch.equal(got[k], expected[k]) for k in expected), "weights differ after resuming"
        same = {k: v for k, v in straight.items() if not any(t in k for t in VARYING)}
        assert {k: resumed[k] for k in same} == same
        assert bool(list(self.checkpoints.glob("*.pt"))) == bool(self.spec.checkpoint_ignores)


@pytest.mark.parametrize("task, stage, overrides", CASES, ids=[f"{t}-{s}" for t, s, _ in CASES])
def test_a_stopped_stage_resumes_to_the_same_weights_and_metrics(task, stage, overrides, pm, tmp_path, monkeypatch):
    under_test = StageUnderTest(task, stage, overrides, pm, tmp_path, monkeypatch)
    straight = under_test.attempt()
    expected = under_test.weights()
    assert expected
    under_test.clear_kept_checkpoints()

    stopper = StopAtSecondEpoch()
    pm.register(stopper)
    with pytest.raises(RuntimeError, match="stopped"):
        under_test.attempt()
    pm.unregister(stopper)
    assert stopper.fired and list(under_test.checkpoints.glob("*.pt"))
    under_test.assert_same_as(expected, straight, under_test.attempt())


class Killed(Exception):
    """What a kill right after a checkpoint's write leaves behind."""


@pytest.mark.parametrize("task, stage, overrides", CASES, ids=[f"{t}-{s}" for t, s, _ in CASES])
def test_a_stage_stopped_inside_an_epoch_resumes_from_that_batch(task, stage, overrides, pm, tmp_path, monkeypatch):
    monkeypatch.setenv(checkpoint.EVERY_ENV, "0")  # an in-epoch checkpoint after every batch
    under_test = StageUnderTest(task, stage, overrides, pm, tmp_path, monkeypatch)
    write, saves = checkpoint.write_atomic, []

    def recording(state, path):
        write(state, path)
        within = state["state"]["within"]
        if within:
            saves.append((path.name, state["state"]["epoch"], within["batches"]))
            if stop_at == saves[-1]:
                raise Killed

    stop_at = None
    monkeypatch.setattr(checkpoint, "write_atomic", recording)
    straight = under_test.attempt()
    expected = under_test.weights()
    under_test.clear_kept_checkpoints()
    in_second_epoch = [s for s in saves if s[1] == 1 and s[2] > 1]
    assert in_second_epoch, f"no in-epoch checkpoint past the first batch of the second epoch: {saves}"
    stop_at = in_second_epoch[len(in_second_epoch) // 2]  # the middle of the second epoch

    with pytest.raises(Killed):
        under_test.attempt()
    monkeypatch.setattr(checkpoint, "write_atomic", write)
    under_test.assert_same_as(expected, straight, under_test.attempt())
