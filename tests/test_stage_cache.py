"""The stage cache: keys that follow params, code, data and inputs; entries stored whole, restored,
trimmed; runs and sweep trials that reuse a stage instead of running it, and say so."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from pydantic import Field

from conftest import add_site
from orchestrator import Artifact, HumanBaseline, Params, Stage, Task, hookimpl
from orchestrator.demo import TASK as DEMO, DemoParams
from orchestrator.errors import UserError
from orchestrator.stage_cache import LIMIT_ENV, StageCache, limit, stage_keys


def test_a_stages_key_follows_its_params_and_its_inputs_keys_only():
    base = stage_keys(DEMO, DemoParams())
    assert stage_keys(DEMO, DemoParams()) == base
    lr = stage_keys(DEMO, DemoParams(lr=0.2))  # a train param: train and what reads it
    assert lr["prepare"] == base["prepare"] and lr["train"] != base["train"] and lr["report"] != base["report"]
    noise = stage_keys(DEMO, DemoParams(noise=0.3))  # a prepare param: everything after it too
    assert all(noise[s] != base[s] for s in base)
    seed = stage_keys(DEMO, DemoParams(seed=1))  # the seed is every stage's param
    assert all(seed[s] != base[s] for s in base)


class FileParams(Params):
    data: str = "points.csv"
    k: int = 1


def read_data(ctx):
    return {"n": len(Path(ctx.params.data).read_text())}


FILE_TASK = Task(name="files", description="reads a file", params_model=FileParams, metric="error",
                 human=HumanBaseline(0.1, "s"), stages=(Stage("prepare", read_data, ("data",)),
                                                        Stage("train", read_data, ("data", "k"), ("prepare",), True)))


def test_an_edited_data_file_that_a_param_names_changes_the_key(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "points.csv").write_text("1,2\n")
    before = stage_keys(FILE_TASK, FileParams())
    assert stage_keys(FILE_TASK, FileParams()) == before
    (tmp_path / "points.csv").write_text("1,2\n3,4\n")
    assert stage_keys(FILE_TASK, FileParams())["prepare"] != before["prepare"]


def test_edited_stage_code_changes_the_key(tmp_path, monkeypatch):
    module = tmp_path / "orch_edited.py"
    module.write_text("def fit(ctx):\n    return {}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import orch_edited

    task = Task(name="edited", description="d", params_model=FileParams, metric="error", human=HumanBaseline(0.1, "s"),
                stages=(Stage("fit", orch_edited.fit, ("k",), tracked=True),))
    before = stage_keys(task, FileParams())
    module.write_text("def fit(ctx):\n    return {'x': 1}\n")
    assert stage_keys(task, FileParams()) != before
    sys.modules.pop("orch_edited", None)


def test_entries_are_stored_whole_restored_and_the_least_recently_used_go_first(tmp_path):
    cache = StageCache(tmp_path / ".orch")
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.pt").write_bytes(b"x" * 1000)
    (out / "run.json").write_text("{}")
    cache.store("t", "train", "k1", out, {"run": "r1", "tracking": {"mlflow": "abc"}}, skip=("run.json",))
    entry = cache.lookup("t", "train", "k1")
    assert entry.made_by == "mlflow:abc" and entry.meta["bytes"] == 1000
    restored = tmp_path / "restored"
    cache.restore(entry, restored)
    assert sorted(p.name for p in restored.iterdir()) == ["model.pt"]  # not entry.json, not run.json
    assert (restored / "model.pt").stat().st_ino == (entry.folder / "model.pt").stat().st_ino  # a hard link
    cache.store("t", "train", "k2", out, {}, skip=("run.json",))
    cache.store("t", "train", "k3", out, {}, skip=("run.json",))
    os.utime(cache.lookup("t", "train", "k1").folder / "entry.json")  # k1 used last
    dropped = cache.trim(2500)
    assert [e.meta["key"] for e in dropped] == ["k2"] and cache.lookup("t", "train", "k1") is not None
    assert cache.clear("t") == (2, 2000) and cache.entries() == []


def test_workers_restoring_one_folder_at_once_take_turns_and_leave_a_restored_one_alone(tmp_path):
    """The setup stages of a sweep: each worker on the project restores them into the same folder,
    while the trials of the first may already read it."""
    cache = StageCache(tmp_path / ".orch")
    made = tmp_path / "sweeps" / "s" / "prepare"
    made.mkdir(parents=True)
    for i in range(20):
        (made / f"part-{i}.csv").write_text(f"{i}\n" * 100)
    (made / "run.json").write_text("{}")  # not stored: a sign that the folder was not emptied
    cache.store("t", "prepare", "k", made, {}, skip=("run.json",))
    entry = cache.lookup("t", "prepare", "k")
    reading = (made / "part-0.csv").open()  # a trial of the worker that made it reads on
    before = {p.name: p.stat().st_ino for p in made.iterdir()}
    cache.restore(entry, made)  # the maker's own folder holds the entry: left as it is
    assert {p.name: p.stat().st_ino for p in made.iterdir()} == before  # run.json too
    assert reading.read() == "0\n" * 100
    before.pop("run.json")

    other = tmp_path / "other"  # a folder of older content, restored by 4 workers at once
    other.mkdir()
    (other / "stale.csv").write_text("old")
    errors = []

    def restore():
        try:
            cache.restore(entry, other)
        except OSError as exc:  # FileExistsError when two restored at once
            errors.append(exc)

    threads = [threading.Thread(target=restore) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(p.name for p in other.iterdir()) == sorted(before)  # the entry's files, nothing stale


@pytest.mark.parametrize("raw, expected", [("500M", 500 * 1024**2), ("2g", 2 * 1024**3), ("1234", 1234),
                                           ("1.5GB", int(1.5 * 1024**3))])
def test_the_size_limit_reads_units(monkeypatch, raw, expected):
    monkeypatch.setenv(LIMIT_ENV, raw)
    assert limit() == expected


def test_a_bad_size_limit_is_one_line(monkeypatch):
    monkeypatch.setenv(LIMIT_ENV, "lots")
    with pytest.raises(UserError, match="ORCH_CACHE_LIMIT='lots': expected a size such as 500M"):
        limit()


# -- reuse in runs and sweeps -----------------------------------------------------------------------

TWO_STEP = '''
"""A task whose train stage counts its runs in a file: sweeps over the score stage's param reuse it."""
import json, os, time
from pathlib import Path
from pydantic import Field
from orchestrator import Artifact, HumanBaseline, Params, Stage, Task, hookimpl

class TwoStepParams(Params):
    seed: int = 0
    width: int = 3
    shift: float = Field(0.0, ge=-1, le=1)
    train_seconds: float = 0.0

def train(ctx):
    with open(os.environ["TWO_STEP_COUNT"], "a") as f:
        f.write("train\\n")
    time.sleep(ctx.params.train_seconds)
    for epoch in range(2):
        ctx.log_epoch(epoch, {"train_loss": 1.0 / (epoch + 1), "val_loss": 1.2 / (epoch + 1)})
    (ctx.out_dir / "weights.json").write_text(json.dumps({"width": ctx.params.width}))
    return {"train_error": 0.1, "train_dev_error": 0.15}

def score(ctx):
    width = json.loads((ctx.input_dir("train") / "weights.json").read_text())["width"]
    ctx.bias_variance_report({"train_error": 0.1, "train_dev_error": 0.15, "val_error": 0.2 + abs(ctx.params.shift)})
    return {"val_error": 0.2 + abs(ctx.params.shift) + width * 0}

@hookimpl
def orch_register_tasks():
    return [Task(name="twostep", description="train once, score many", params_model=TwoStepParams, metric="error",
                 human=HumanBaseline(0.05, "made up"), metrics=("train_loss", "val_loss"),
                 stages=(Stage("train", train, ("width", "train_seconds"), tracked=True),
                         Stage("score", score, ("shift",), inputs=("train",))),
                 artifacts=(Artifact("weights.json", "model", "train"),),
                 space={"shift": {"low": -1.0, "high": 1.0}})]
'''


@pytest.fixture
def two_step(tmp_path, monkeypatch, project):
    from test_manager import plugin_site

    add_site(monkeypatch, plugin_site(tmp_path / "site", "twostep", TWO_STEP))
    count = tmp_path / "count.txt"
    count.touch()
    monkeypatch.setenv("TWO_STEP_COUNT", str(count))
    yield count
    sys.modules.pop("orch_twostep", None)


def orch(*args, cwd):
    return subprocess.run([sys.executable, "-m", "orchestrator", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.integration
def test_a_second_orch_run_reuses_every_stage_and_its_run_says_where_they_came_from(two_step, project):
    from test_integration import client_for, runs_of

    first = orch("run", "twostep", cwd=project)
    assert first.returncode == 0, first.stderr
    again = orch("run", "twostep", cwd=project)
    assert again.returncode == 0, again.stderr
    assert two_step.read_text().count("train") == 1  # the second run trained nothing
    assert "reused from the stage cache" in again.stderr
    client = client_for(project)
    old, new = sorted(runs_of(client, "twostep"), key=lambda r: r.info.start_time)
    assert new.data.tags["orch.cached_stages"] == "train,score"
    assert new.data.tags["orch.cached_from.train"] == f"mlflow:{old.info.run_id}"
    assert new.data.metrics == old.data.metrics  # the same figures, the report's included
    assert [m.step for m in client.get_metric_history(new.info.run_id, "train_loss")] == [0, 1]
    assert {a.path for a in client.list_artifacts(new.info.run_id, "model")} == {"model/weights.json"}
    assert new.data.tags["orch.diagnosis"] == old.data.tags["orch.diagnosis"]

    assert orch("run", "twostep", "--set", "width=4", cwd=project).returncode == 0  # a train param: trains
    assert orch("run", "twostep", "--restart", cwd=project).returncode == 0  # on purpose: trains again
    assert orch("run", "twostep", "--no-cache", cwd=project).returncode == 0
    assert two_step.read_text().count("train") == 4
    listed = orch("cache", "list", cwd=project)
    assert listed.returncode == 0 and "twostep  train" in listed.stdout and "twostep  score" in listed.stdout
    cleared = orch("cache", "clear", cwd=project)
    assert cleared.stdout.startswith("removed 4 entries")
    assert orch("run", "twostep", cwd=project).returncode == 0 and two_step.read_text().count("train") == 5


@pytest.mark.integration
def test_a_sweep_over_a_later_stage_trains_once_even_with_two_workers_at_once(two_step, project):
    """Eight trials over the score stage's param: the train stage runs once; the second worker's
    first trial waits for the first worker's train stage and reuses it."""
    import yaml

    from test_integration import client_for, runs_of

    (project / "params.yaml").write_text(yaml.safe_dump({"twostep": {"train_seconds": 2.0}}))
    out = orch("-q", "sweep", "twostep", "--trials", "8", "--jobs", "2", cwd=project)
    assert out.returncode == 0, out.stderr
    assert two_step.read_text().count("train") == 1
    trials = json.loads(next((project / "sweeps").iterdir()).joinpath("trials.json").read_text())
    assert [t["state"] for t in trials] == ["COMPLETE"] * 8
    children = [r for r in runs_of(client_for(project), "twostep") if "orch.trial" in r.data.tags]
    reused = [r for r in children if r.data.tags.get("orch.cached_stages") == "train"]
    assert len(children) == 8 and len(reused) == 7


@pytest.mark.integration
@pytest.mark.parametrize("cache", ["1", "0"])
def test_a_worker_joining_a_sweep_leaves_its_made_setup_stages_alone(project, toy_site, monkeypatch, cache):
    """Every worker of a sweep on this project runs its setup: one that finds them made from the
    same params and code uses them as they are (another worker's trials may read them), with the
    stage cache on or off."""
    import yaml

    monkeypatch.setenv("ORCH_CACHE", cache)
    (project / "params.yaml").write_text(yaml.safe_dump({"toy": {"epochs": 1}}))
    assert orch("-q", "sweep", "toy", "--trials", "1", "--study", "s", cwd=project).returncode == 0
    prepared = project / ".orch" / "sweeps" / "s" / "prepare" / "data.json"
    made = (prepared.stat().st_ino, prepared.stat().st_mtime_ns)
    joined = orch("-q", "sweep", "toy", "--trials", "2", "--study", "s", cwd=project)  # the study goes on
    assert joined.returncode == 0, joined.stderr
    assert (prepared.stat().st_ino, prepared.stat().st_mtime_ns) == made  # not emptied, not written again
    shutil.rmtree(prepared.parent)  # a folder removed by hand is made again, not trusted to be there
    again = orch("-q", "sweep", "toy", "--trials", "3", "--study", "s", cwd=project)
    assert again.returncode == 0, again.stderr
    assert prepared.exists()
