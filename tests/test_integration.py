"""End to end with the real parts: MLflow (SQLite store), Optuna (SQLite storage), DVC, in temp
folders on tiny data."""

from __future__ import annotations

import contextlib
import json
import math
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient

from conftest import ROOT, write_movielens
from orch_mlflow.tracker import open_client
from orchestrator.sweep.study import Study

pytestmark = pytest.mark.integration
optuna.logging.set_verbosity(optuna.logging.WARNING)


def orch(*args, cwd, timeout=600, **kwargs):
    return subprocess.run([sys.executable, "-m", "orchestrator", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, **kwargs)


def client_for(project: Path) -> MlflowClient:
    """A client of the project's store, made ready under the tracker's lock (the child may be
    creating the same store right now)."""
    return open_client(f"sqlite:///{project / 'mlflow.db'}")


def runs_of(client: MlflowClient, task: str):
    exp = client.get_experiment_by_name(task)
    return client.search_runs([exp.experiment_id], max_results=1000) if exp else []


def tiny_collab_params(project: Path, **extra) -> Path:
    data = write_movielens(project / "ml-tiny", n_users=60, n_items=40, per_user=20)
    params = {"collab": {"data": str(data), "epochs": 3, "n_factors": 8, "bs": 32, "lr": 0.02, "wd": 0.01, **extra}}
    path = project / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_orch_run_collab_logs_everything_to_mlflow(project):
    tiny_collab_params(project)
    out = orch("run", "collab", "--set", "n_factors=6", cwd=project)
    assert out.returncode == 0, out.stderr
    client = client_for(project)
    [run] = runs_of(client, "collab")
    assert run.info.status == "FINISHED"
    assert run.data.params["n_factors"] == "6" and run.data.params["y_range"] == "[0.0, 5.5]"
    tags = run.data.tags
    assert tags["orch.plugin"] == "collab" and tags["orch.task"] == "collab" and len(tags["orch.params_hash"]) == 12
    assert tags["orch.mode"] == "run" and "orch.git_commit" in tags and tags["orch.diagnosis"]
    history = client.get_metric_history(run.info.run_id, "val_rmse")
    assert sorted(m.step for m in history) == [0, 1, 2, 2]  # three epochs, then the final value
    for key in ("train_rmse", "train_dev_rmse", "val_rmse", "avoidable_bias", "variance", "data_mismatch"):
        assert math.isfinite(run.data.metrics[key])
    assert run.data.metrics["variance"] == pytest.approx(
        run.data.metrics["train_dev_rmse"] - run.data.metrics["train_rmse"])
    listed = {a.path for folder in ("model", "plots", "tables", "report", "data")
              for a in client.list_artifacts(run.info.run_id, folder)}
    for path in ("model/model.pt", "plots/pca_scatter.png", "plots/loss_curves.png", "tables/film_bias.csv",
                 "report/report.md", "report/report.html", "report/report.png", "data/items.csv"):
        assert path in listed
    assert f"mlflow run {run.info.run_id}" in out.stdout

    # the model artifact loads with weights_only=True and serves predictions
    pred = orch("predict", "collab", "--run", run.info.run_id, "--user", "1", "--top", "3", "--json", cwd=project)
    assert pred.returncode == 0, pred.stderr
    rows = __import__("json").loads(pred.stdout)
    assert len(rows) == 3 and all(0 <= r["predicted"] <= 5.5 for r in rows)
    import pandas as pd

    ratings = pd.read_csv(project / "ml-tiny" / "ratings.csv")
    rated = set(ratings.loc[ratings["userId"] == 1, "movieId"])
    assert not rated & {r["movieId"] for r in rows}  # films the user rated are not recommended
    rep = orch("report", "collab", "--run", run.info.run_id, cwd=project)
    assert rep.returncode == 0 and "Diagnosis:" in rep.stdout


def test_sweep_nests_trials_under_one_parent_fails_nan_trials_and_resumes(project, toy_site):
    params = {"toy": {"epochs": 4, "sweep": {"space": {"lr": {"low": 0.05, "high": 1000.0, "scale": "log"}},
                                             "pruner": "none", "seed": 3}}}
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    out = orch("sweep", "toy", "--trials", "6", "--jobs", "2", "--study", "s1", cwd=project)
    assert out.returncode == 0, out.stderr
    study = optuna.load_study(study_name="s1", storage=f"sqlite:///{project / 'optuna.db'}")
    states = [t.state.name for t in study.trials]
    assert len(states) == 6 and "COMPLETE" in states and "FAIL" in states  # lr >= 5 diverges to NaN
    client = client_for(project)
    runs = runs_of(client, "toy")
    [parent] = [r for r in runs if r.data.tags.get("orch.role") == "sweep"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 6
    by_trial = {int(r.data.tags["orch.trial"]): r for r in children}
    results = Study.existing("s1", f"sqlite:///{project / 'optuna.db'}").results()
    for r in results:
        run = by_trial[r.number]
        assert r.tracking["mlflow"] == run.info.run_id  # the trial records its run id
        assert run.data.tags["orch.study"] == "s1"
        assert run.info.status == ("FINISHED" if r.state == "COMPLETE" else "FAILED")
        if r.state == "FAIL":
            assert "NonFiniteLoss" in r.reason and "NonFiniteLoss" in run.data.tags["orch.error"]
    lrs = [r.params["lr"] for r in results]
    assert len(set(lrs)) == 6  # two workers did not sample the same values
    assert parent.info.status == "FINISHED" and parent.data.tags["orch.best_trial"]
    best = yaml.safe_load((project / "sweeps" / "s1" / "best_params.yaml").read_text())
    assert best["toy"]["lr"] == pytest.approx(min((r for r in results if r.state == "COMPLETE"),
                                                  key=lambda r: r.value).params["lr"])
    assert "| trial | state |" in (project / "sweeps" / "s1" / "trials.md").read_text()

    # the same command with a bigger budget resumes the study and the parent run
    out = orch("sweep", "toy", "--trials", "8", "--jobs", "2", "--study", "s1", cwd=project)
    assert out.returncode == 0, out.stderr
    assert len(optuna.load_study(study_name="s1", storage=f"sqlite:///{project / 'optuna.db'}").trials) == 8
    runs = runs_of(client, "toy")
    assert len([r for r in runs if r.data.tags.get("orch.role") == "sweep"]) == 1
    assert len([r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]) == 8


class StderrLines:
    """A child's stderr, line by line, read by a thread: a test waits for the line it needs."""

    def __init__(self, proc: subprocess.Popen):
        self.queue: queue.Queue = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, args=(proc.stderr,), daemon=True).start()

    def _read(self, stream) -> None:
        for line in stream:
            self.queue.put(line)
        self.queue.put(None)

    def wait_for(self, predicate, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while True:
            line = self.queue.get(timeout=max(0.0, deadline - time.monotonic()))  # queue.Empty: timed out
            assert line is not None, "the process ended first:\n" + "".join(self.seen)
            self.seen.append(line)
            if predicate(line):
                return

    def rest(self) -> str:
        """Everything it wrote, once it has ended."""
        while (line := self.queue.get(timeout=60)) is not None:
            self.seen.append(line)
        return "".join(self.seen)


def epoch_of(line: str) -> tuple[int | None, int | None]:
    """(trial, epoch) of a trial's per-epoch line ``[toy.train trial 3] epoch 2  ...``."""
    found = re.match(r"\[toy\.train trial (\d+)\] epoch (\d+) ", line)
    return (int(found.group(1)), int(found.group(2))) if found else (None, None)


@pytest.mark.parametrize("jobs,stop", [("1", "ctrl-c"), ("2", "ctrl-c"), ("2", "sigterm")])
def test_a_stopped_sweep_leaves_no_run_running_and_the_rerun_finishes_it(project, toy_site, jobs, stop):
    """Ctrl-C reaches the whole process group; SIGTERM (kill, Slurm, Kubernetes) the driver alone,
    which passes it on to its workers."""
    params = {"toy": {"epochs": 6, "epoch_seconds": 0.4,
                      "sweep": {"space": {"lr": {"low": 0.01, "high": 0.2, "scale": "log"}}, "pruner": "none"}}}
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    args = [sys.executable, "-m", "orchestrator", "sweep", "toy", "--trials", "5", "--study", "c", "--jobs", jobs]
    # SIGINT at its default even when the tests run in a background job (which ignores it)
    proc = subprocess.Popen(args, cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    storage = f"sqlite:///{project / 'optuna.db'}"
    client = client_for(project)
    lines, finished = StderrLines(proc), set()

    def a_trial_just_started_after_another_finished(line: str) -> bool:
        trial, epoch = epoch_of(line)
        if epoch == 6:
            finished.add(trial)
        return epoch == 1 and bool(finished) and trial not in finished  # 2 s of its run left

    lines.wait_for(a_trial_just_started_after_another_finished)
    if stop == "ctrl-c":
        os.killpg(proc.pid, signal.SIGINT)
    else:
        os.kill(proc.pid, signal.SIGTERM)
    proc.wait(timeout=120)
    err = lines.rest()
    assert proc.returncode == (130 if stop == "ctrl-c" else 143), err
    assert err.strip().splitlines()[-1] == ("orch: interrupted" if stop == "ctrl-c" else "orch: stopped by SIGTERM")
    assert "Traceback" not in err and "Exception ignored" not in err
    results = Study.existing("c", storage).results()
    states = [(r.number, r.state) for r in results]
    assert "INTERRUPTED" in {r.state for r in results} and "RUNNING" not in {r.state for r in results}, states
    assert "RUNNING" not in {r.info.status for r in runs_of(client, "toy")}, (
        [(r.info.run_name, r.info.status) for r in runs_of(client, "toy")], states, err)
    assert "KILLED" in {r.info.status for r in runs_of(client, "toy")}

    out = orch("-q", "sweep", "toy", "--trials", "5", "--study", "c", "--jobs", jobs, cwd=project)
    assert out.returncode == 0, out.stderr
    study = optuna.load_study(study_name="c", storage=storage)
    counted = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(counted) == 5, ([(t.number, t.state.name, t.user_attrs) for t in study.trials], out.stderr)
    # a trial stopped after it was created but before it drew its values trained nothing: it is
    # not run again (a new trial takes its place); every other stopped trial is
    stopped = [r.number for r in Study.existing("c", storage).results() if r.state == "INTERRUPTED" and r.params]
    retried = {t.user_attrs["retry_of"]: t for t in study.trials if "retry_of" in t.user_attrs}
    assert set(retried) == set(stopped), (states, out.stderr)  # run again with the same values: they resume
    assert all(retried[n].params == study.trials[n].params for n in stopped)
    assert {r.info.status for r in runs_of(client, "toy")} <= {"FINISHED", "KILLED"}


def toy_run_in_its_second_epoch(project: Path) -> tuple[subprocess.Popen, StderrLines]:
    """``orch run toy`` of 50 epochs started, returned once its second epoch is logged."""
    (project / "params.yaml").write_text(yaml.safe_dump({"toy": {"epochs": 50, "epoch_seconds": 0.2}}))
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator", "run", "toy"], cwd=project,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = StderrLines(proc)
    lines.wait_for(lambda line: line.startswith("[toy.train] epoch 2 "))
    return proc, lines


def test_sigterm_stops_orch_run_like_ctrl_c(project, toy_site):
    proc, lines = toy_run_in_its_second_epoch(project)
    proc.terminate()
    proc.wait(timeout=60)
    err = lines.rest()
    assert proc.returncode == 143, err
    assert err.strip().splitlines()[-1] == "orch: stopped by SIGTERM" and "Traceback" not in err
    (run,) = runs_of(client_for(project), "toy")
    assert run.info.status == "KILLED" and run.data.tags["orch.error"] == "interrupted (SIGTERM)"
    assert list((project / ".orch" / "runs").iterdir()) == []  # its work folder is gone


def test_the_run_of_a_process_killed_by_sigkill_is_closed_by_the_next_command(project, toy_site):
    proc, lines = toy_run_in_its_second_epoch(project)
    proc.kill()
    proc.wait(timeout=60)
    client = client_for(project)
    assert [r.info.status for r in runs_of(client, "toy")] == ["RUNNING"]  # nobody could close it

    assert orch("-q", "run", "toy", "--set", "epochs=1", "--restart", cwd=project).returncode == 0
    statuses = {r.info.status: r for r in runs_of(client, "toy")}
    assert set(statuses) == {"KILLED", "FINISHED"}
    assert statuses["KILLED"].data.tags["orch.error"] == f"lost: its process {proc.pid} on {socket.gethostname()} " \
                                                        "ended without closing it (killed?)"
    assert list((project / ".orch" / "leases").iterdir()) == []
    assert list((project / ".orch" / "runs").iterdir()) == []  # the killed run's work folder too


def test_refine_narrows_the_space_in_a_new_study(project, toy_site):
    params = {"toy": {"epochs": 3, "sweep": {"space": {"lr": {"low": 0.001, "high": 0.3, "scale": "log"}},
                                             "pruner": "none"}}}
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    assert orch("-q", "sweep", "toy", "--trials", "6", "--study", "r", cwd=project).returncode == 0
    out = orch("-q", "sweep", "toy", "--trials", "3", "--study", "r", "--refine", cwd=project)
    assert out.returncode == 0, out.stderr
    assert "study r-refine1" in out.stdout
    new = optuna.load_study(study_name="r-refine1", storage=f"sqlite:///{project / 'optuna.db'}")
    space = new.user_attrs["space"]["lr"]
    assert space["high"] / space["low"] < 0.3 / 0.001
    assert len(new.trials) == 3


@pytest.fixture
def dvc_project(tmp_path):
    """This repository's code and its smoke pipeline in a fresh git + DVC repo."""
    root = tmp_path / "repo"
    root.mkdir()
    for name in ("dvc.yaml", ".dvcignore"):
        shutil.copy(ROOT / name, root / name)
    for name in ("orchestrator", "plugins", "pipelines"):
        shutil.copytree(ROOT / name, root / name, ignore=shutil.ignore_patterns("__pycache__", "outputs", "*.db",
                                                                                 "mlartifacts", ".orch"))
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])  # dvc and orch
    env = {**os.environ, "PATH": path, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "DVC_NO_ANALYTICS": "1"}  # no daemon to report `dvc init`
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"], ["dvc", "config", "core.analytics", "false"],
                ["git", "add", "-A"], ["git", "commit", "-qm", "init"]):
        subprocess.run(cmd, cwd=root, check=True, env=env, capture_output=True)
    return root, env


SMOKE = "pipelines/smoke/dvc.yaml"


def dvc(*args, cwd, env):
    out = subprocess.run(["dvc", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def ran(output: str) -> list[str]:
    return [line.split("'")[1].split(":")[-1] for line in output.splitlines() if line.startswith("Running stage")]


def edited(path: Path, old: str, new: str) -> str:
    text = path.read_text()
    assert old in text, f"{path} lacks {old!r}"
    return text.replace(old, new, 1)


@contextlib.contextmanager
def changed(path: Path, text: str):
    """``path`` holds ``text`` inside the block, its own text again after it."""
    before = path.read_text()
    path.write_text(text)
    try:
        yield
    finally:
        path.write_text(before)


def stale(root: Path, env) -> list[str]:
    """The smoke pipeline's stages whose own params, code or data changed since they ran."""
    return sorted(name.split(":")[-1] for name in json.loads(dvc("status", "--json", SMOKE, cwd=root, env=env)))


def test_dvc_repro_runs_caches_and_reruns_only_what_changed(dvc_project):
    root, env = dvc_project
    smoke = root / "pipelines" / "smoke"
    first = dvc("repro", SMOKE, cwd=root, env=env)
    assert ran(first) == ["charrnn_prepare", "charrnn_train", "charrnn_report", "collab_prepare", "collab_train",
                          "collab_report", "collab_sweep", "rossmann_prepare", "rossmann_train", "rossmann_embeddings",
                          "rossmann_gbm", "rossmann_report", "stylegan_prepare", "stylegan_features", "stylegan_train",
                          "stylegan_evaluate", "stylegan_report", "ulmfit_prepare", "ulmfit_corpus", "ulmfit_pretrain",
                          "ulmfit_finetune", "ulmfit_classify", "ulmfit_ablation", "ulmfit_report"]
    out = smoke / "outputs"
    for path in ("prepare/ratings.parquet", "train/model.pt", "train/history.csv", "train/metrics.json",
                 "report/report.md", "report/pca_scatter.png", "sweep/best_params.yaml"):
        assert (out / "collab" / path).exists(), path
    assert (out / "charrnn" / "report" / "comparison.md").exists()
    assert (out / "rossmann" / "report" / "state_embedding.png").exists()
    states = __import__("pandas").read_csv(out / "rossmann" / "embeddings" / "State.csv")
    assert states.columns[0] == "State" and states["State"].iloc[0] == "<unknown>"
    for path in ("style_mixing.png", "truncation.png", "report.md", "evaluation.md"):
        assert (out / "stylegan" / "report" / path).exists(), path
    assert len(list((smoke / ".orch" / "checkpoints" / "stylegan").glob("train-*.pt"))) == 1
    from orchestrator.manager import get_plugin_manager
    from orchestrator.registry import load_tasks

    for name, reg in load_tasks(get_plugin_manager()).items():  # what `orch plugins --check --smoke` checks
        unwritten = [a.name for a in reg.task.artifacts if not any((out / name / a.stage).glob(a.name))]
        assert not unwritten, (name, unwritten)
    ablation = __import__("pandas").read_csv(out / "ulmfit" / "report" / "ablation.csv")
    assert ablation["variant"].tolist() == ["scratch", "pretrained", "no_unfreezing", "ulmfit"]

    assert ran(dvc("repro", SMOKE, cwd=root, env=env)) == []  # nothing changed: nothing runs
    metrics = dvc("metrics", "show", "--json", cwd=root, env=env)
    assert "val_rmse" in metrics and "n_ratings" in metrics
    assert dvc("plots", "show", "--json", cwd=root, env=env)

    # a param: the stage that declares it and those downstream rerun, for real
    params_file = smoke / "params.yaml"
    params = yaml.safe_load(params_file.read_text())
    params["collab"]["wd"] = 0.05
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    assert ran(dvc("repro", SMOKE, cwd=root, env=env)) == ["collab_train", "collab_report", "collab_sweep"]

    # an experiment, DVC's own way: `dvc exp run -S` reruns the same stages and records the value
    exp = dvc("exp", "run", SMOKE, "-S", "pipelines/smoke/params.yaml:collab.n_factors=4", cwd=root, env=env)
    assert ran(exp) == ["collab_train", "collab_report", "collab_sweep"], exp
    shown = json.loads(dvc("exp", "show", "--json", cwd=root, env=env))
    assert '"n_factors": 4' in json.dumps(shown), shown
    params = yaml.safe_load(params_file.read_text())
    assert params["collab"]["n_factors"] == 4

    # what else a change invalidates, from the declarations (DVC reruns what follows a stage whose
    # outputs change, as collab's reports above): `dvc status`, without paying for the reruns
    params["rossmann"]["gbm"]["learning_rate"] = 0.1  # a GBM param: not the network
    params["stylegan"]["psi"] = 0.5  # a generation param: the GAN is not retrained
    with changed(params_file, yaml.safe_dump(params, sort_keys=False)):
        assert stale(root, env) == ["rossmann_gbm", "stylegan_evaluate", "stylegan_report"]
    # code: a training loop invalidates training (and the GBM, which scores with it), a plot only the report
    train_py = root / "plugins" / "orch_rossmann" / "train.py"
    with changed(train_py, edited(train_py, "EVAL_BATCH = 8192", "EVAL_BATCH = 4096")):
        assert stale(root, env) == ["rossmann_gbm", "rossmann_train"]
    plots_py = root / "plugins" / "orch_rossmann" / "plots.py"
    with changed(plots_py, edited(plots_py, "def importance(", "def importance(  # edited\n")):
        assert stale(root, env) == ["rossmann_report"]
    assert stale(root, env) == []

    client = client_for(smoke)
    from orchestrator.runner import tracked_index

    for name, reg in load_tasks(get_plugin_manager()).items():  # Task.metrics declares the run's metrics
        stages = reg.task.stages[tracked_index(reg):]  # what a sweep trial scores
        logged = {k for s in stages for k in json.loads((out / name / s.name / "metrics.json").read_text())}
        assert logged and not {k for k in logged if not reg.task.logs(k)}, name
    dvc_runs = [r for r in runs_of(client, "collab") if r.data.tags.get("orch.mode") == "dvc"]
    assert len(dvc_runs) == 3 and {r.info.status for r in dvc_runs} == {"FINISHED"}  # first, wd, the experiment
    assert all("report/report.md" in {a.path for a in client.list_artifacts(r.info.run_id, "report")}
               for r in dvc_runs)


def test_charrnn_meets_the_contract_then_generates_from_its_run(check_task, orch_sandbox):
    text = "".join(f"KING.\nWhat say you, lord {i}? Speak, and be brief.\n\n" for i in range(400))
    (orch_sandbox.root / "play.txt").write_text(text)
    result = check_task("charrnn", data="play.txt", compare=["char3", "lstm"], epochs=2, n_hidden=32, bs=8,
                        block=1000, sample_chars=40)
    client, run = orch_sandbox.client, result.mlflow_run
    m = run.data.metrics
    assert run.info.status == "FINISHED" and {"val_bpc", "train_bpc", "train_dev_bpc", "char3.val_bpc"} <= set(m)
    assert m["val_bpc"] < m["ref_unigram_bpc"]
    assert [x.step for x in client.get_metric_history(run.info.run_id, "char3.val_bpc")][:2] == [0, 1]
    samples = {a.path for a in client.list_artifacts(run.info.run_id, "samples")}
    assert {"samples/epoch_01.txt", "samples/epoch_02.txt", "samples/samples.md"} <= samples

    def generate(*args):
        return orch_sandbox.orch("generate", "charrnn", "--run", run.info.run_id, *args, check=False)

    gen = generate("--prompt", "KING.", "--chars", "60", "--seed", "3")
    assert gen.returncode == 0, gen.stderr
    assert gen.stdout.startswith("KING.") and len(gen.stdout.rstrip("\n")) == 65
    assert generate("--prompt", "KING.", "--chars", "60", "--seed", "3").stdout == gen.stdout
    bad = generate("--prompt", "QUEEN")
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == ["orch: error: --prompt: characters not in the model's vocabulary: 'EQU'"]


def ulmfit_tiny(root: Path) -> dict:
    """A labelled CSV folder and a general corpus, a few kilobytes each, and a model to match."""
    folder = root / "reviews"
    folder.mkdir()
    (folder / "classes.txt").write_text("no\nyes\n")
    good = ["Love this dress, it fits PERFECTLY!!!!", "Great quality and so soft", "Beautiful colour, I wear it daily"]
    bad = ["Returned it: the fabric is cheap", "Awful fit, way too small", "Disappointed, it ripped after one wash"]
    rows = [f'yes,"Nice","{t} {i}"' for i in range(40) for t in good] + [f'no,"Meh","{t} {i}"' for i in range(40) for t in bad]
    (folder / "train.csv").write_text("\n".join(rows) + "\n")
    (root / "general.txt").write_text("".join(f"In the beginning was the word {i}.\n\nAnd the word was good.\n\n"
                                              for i in range(300)))
    return dict(data="reviews", pretrain_corpus=["general.txt"], processes=1, max_vocab=300, emb_sz=8, n_hid=16,
                pretrain=dict(epochs=1, lr=1e-2, bs=4, bptt=10, wd=0.01, max_tokens=3000),
                finetune=dict(epochs=1, lr=1e-2, bs=4, bptt=10, wd=0.01, max_tokens=None),
                classifier=dict(train_docs=None, lr=2e-2, final_epochs=1, bs=16, max_len=30, wd=0.01, drop_mult=0.5))


def test_ulmfit_meets_the_contract_then_labels_new_texts_from_its_run(check_task, orch_sandbox):
    project = orch_sandbox.root
    result = check_task("ulmfit", **ulmfit_tiny(project), ablation=[])
    run_id = result.mlflow_run.info.run_id
    models = {a.path for a in orch_sandbox.client.list_artifacts(run_id, "model")}
    assert {"model/classifier.pt", "model/classifier.json", "model/classifier.vocab.txt"} <= models

    def predict(*args):
        return orch_sandbox.orch("predict", "ulmfit", "--run", run_id, *args, check=False)

    texts = ["Love this dress, so soft", "Awful, it ripped and the fabric is cheap"]
    pred = predict("--json", *texts)
    assert pred.returncode == 0, pred.stderr
    rows = json.loads(pred.stdout)
    assert [r["text"] for r in rows] == texts  # in the order given, though batched by length
    assert all(r["label"] in ("no", "yes") and abs(r["p_no"] + r["p_yes"] - 1) < 1e-3 for r in rows)
    # the same texts from a file (a title, a tab, the review), one per line
    (project / "texts.txt").write_text("".join(f"Nice\t{t}\n" for t in texts))
    again = predict("--file", "texts.txt", "--json")
    assert [r["label"] for r in json.loads(again.stdout)] == [
        r["label"] for r in json.loads(predict("--json", *(f"Nice\t{t}" for t in texts)).stdout)]
    bad = predict("a\tb\tc")
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == ["orch: error: predict ulmfit: 3 tab-separated fields in 'a\\tb\\tc'; "
                                               "the model was trained on 2"]


STYLEGAN_TINY = dict(max_images=400, resolution=16, eval_images=100, feature_epochs=1, z_dim=16, w_dim=16,
                     mapping_depth=2, fmap_base=128, fmap_max=8, epochs=2, bs=16)


def test_stylegan_meets_the_contract_resumes_from_its_checkpoint_and_generates(check_task, run_task, orch_sandbox):
    result = check_task("stylegan", **STYLEGAN_TINY)
    client, run = orch_sandbox.client, result.mlflow_run
    m = run.data.metrics
    assert {"train_fid", "train_dev_fid", "val_fid", "val_kid", "untrained_val_fid", "floor_fid"} <= set(m)
    assert [x.step for x in client.get_metric_history(run.info.run_id, "train_dev_fid")][:2] == [0, 1]
    plots = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert {"plots/style_mixing.png", "plots/truncation.png", "plots/noise.png", "plots/interpolation.png"} <= plots
    assert {"images/epoch_001.png", "images/epoch_002.png"} <= {a.path for a in client.list_artifacts(run.info.run_id, "images")}

    # a longer run with the same params continues from the 2-epoch checkpoint instead of starting over:
    # the checkpoint's place comes from the task, its params and its inputs, not the run's folder
    resumed = run_task("stylegan", **STYLEGAN_TINY | {"epochs": 3})
    assert resumed.metrics["resumed_from_epoch"] == 2
    # the host reports the epochs done before the kill again: the new run shows the whole curve
    assert [x.step for x in client.get_metric_history(resumed.run.tracking["mlflow"], "d_loss")] == [0, 1, 2]
    other = run_task("stylegan", **STYLEGAN_TINY | {"lr_g": 0.001})
    assert other.metrics["resumed_from_epoch"] == 0  # other params: a fresh start

    png = orch_sandbox.root / "gen.png"

    def generate(*args):
        return orch_sandbox.orch("generate", "stylegan", "--run", run.info.run_id, *args, check=False)

    gen = generate("--seeds", "1-4", "--psi", "0.7", "--mix-seed", "9", "--out", str(png))
    assert gen.returncode == 0, gen.stderr
    first = png.read_bytes()
    generate("--seeds", "1-4", "--psi", "0.7", "--mix-seed", "9", "--out", str(png))
    assert png.read_bytes() == first
    bad = generate("--psi", "1.5")
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == ["orch: error: --psi: must be in [-1, 1], got 1.5"]


def test_a_worker_joins_a_running_study_and_both_nest_under_one_parent(project, toy_site):
    """`orch sweep` and `orch worker` (what a second machine runs) started together on one study:
    one parent run (the race to create it is settled by the study), every child under it with its
    worker's host, no value set drawn twice, the study's budget shared."""
    params = {"toy": {"epochs": 2, "sweep": {"space": {"lr": {"low": 0.01, "high": 0.2, "scale": "log"}},
                                              "pruner": "none"}}}
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    storage = f"sqlite:///{project / 'optuna.db'}"
    orch("sweep", "toy", "--trials", "1", "--study", "w", "--storage", storage, cwd=project)  # records the settings
    sweep = subprocess.Popen([sys.executable, "-m", "orchestrator", "-q", "sweep", "toy", "--trials", "8", "--study", "w",
                              "--storage", storage], cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    worker = subprocess.Popen([sys.executable, "-m", "orchestrator", "-q", "worker", "toy", "--study", "w",
                               "--storage", storage], cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for proc in (sweep, worker):
        _, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
    results = Study.existing("w", storage).results()
    complete = [r for r in results if r.state == "COMPLETE"]
    # the worker reads the budget recorded on the study (1, or 8 once the second sweep claimed it)
    assert len(complete) == 8, [(r.number, r.state) for r in results]
    values = [tuple(sorted(r.params.items())) for r in complete]
    assert len(set(values)) == len(values)
    runs = runs_of(client_for(project), "toy")
    parents = [r for r in runs if r.data.tags.get("orch.role") == "sweep"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    children = [r for r in runs if r.data.tags.get("orch.role") != "sweep"]
    assert len(children) == len(results)
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    assert {r.data.tags["orch.worker_host"] for r in children} == {socket.gethostname()}
