"""The MLflow tracker plugin against a real SQLite store: open, log, close, resume, fail, fetch."""

from __future__ import annotations

import functools

import signal

from orchestrator import FetchedRun

import pytest
from mlflow.tracking import MlflowClient

from orch_mlflow.tracker import MlflowTracker
from orchestrator.errors import Pruned
from orchestrator.interrupt import Interrupted
from orchestrator.task import OrchConfig, RunInfo, SweepInfo, TrialResult


@pytest.fixture
def tracker(project):
    t = MlflowTracker()
    t.orch_configure(config=OrchConfig(project))
    return t


def new_run(**kw) -> RunInfo:
    return RunInfo(task="t", plugin="p", plugin_version="1", name="r", params={"lr": 0.1, "a.b": [1, 2]},
                   tags={"orch.task": "t", "orch.git_commit": "abc"}, **kw)


def test_default_store_is_sqlite_in_the_project(tracker, project):
    assert tracker.tracking_uri == f"sqlite:///{project / 'mlflow.db'}"


def test_run_lifecycle(tracker, project):
    run = new_run()
    tracker.orch_run_start(run=run)
    run_id = run.tracking["mlflow"]
    for epoch in range(3):
        tracker.orch_epoch_end(run=run, epoch=epoch, metrics={"val_loss": 1.0 / (epoch + 1)})
    (project / "m.pt").write_bytes(b"weights")
    tracker.orch_artifact(run=run, path=project / "m.pt", kind="model")
    tracker.orch_run_end(run=run, metrics={"val_rmse": 0.9, "bad": float("nan")})
    client = MlflowClient(tracker.tracking_uri)
    got = client.get_run(run_id)
    assert got.info.status == "FINISHED" and got.info.run_name == "r"
    assert got.data.params == {"lr": "0.1", "a.b": "[1, 2]"}
    assert got.data.tags["mlflow.source.git.commit"] == "abc"
    assert [m.step for m in client.get_metric_history(run_id, "val_loss")] == [0, 1, 2]
    assert client.get_metric_history(run_id, "val_rmse")[0].step == 2 and "bad" not in got.data.metrics
    assert got.info.artifact_uri.startswith((project / "mlartifacts" / "t").as_uri())

    fetched = tracker.orch_fetch_run(run_id=run_id)
    assert isinstance(fetched, FetchedRun)  # the record the hookspec documents
    assert fetched.task == "t" and fetched.metrics["val_rmse"] == 0.9 and fetched.params["lr"] == "0.1"
    assert (fetched.download("model") / "m.pt").read_bytes() == b"weights"
    assert tracker.orch_fetch_run(run_id="0" * 32) is None

    later = new_run(resume={"mlflow": run_id})
    tracker.orch_run_start(run=later)
    assert later.tracking["mlflow"] == run_id
    assert client.get_run(run_id).info.status == "RUNNING"
    tracker.orch_run_end(run=later, metrics={})
    assert client.get_run(run_id).info.status == "FINISHED"


@pytest.mark.parametrize("error, status, reason", [
    (RuntimeError("boom"), "FAILED", "RuntimeError: boom"),
    (Pruned("p"), "KILLED", "pruned"),
    (KeyboardInterrupt(), "KILLED", "interrupted"),
    (Interrupted(signal.SIGTERM), "KILLED", "interrupted (SIGTERM)"),
])
def test_run_error_closes_the_run(tracker, error, status, reason):
    run = new_run()
    tracker.orch_run_start(run=run)
    tracker.orch_run_error(run=run, error=error)
    got = MlflowClient(tracker.tracking_uri).get_run(run.tracking["mlflow"])
    assert got.info.status == status and got.data.tags["orch.error"] == reason


def test_a_lost_run_is_closed_only_if_still_running(tracker):
    open_run, finished = new_run(), new_run()
    for run in (open_run, finished):
        tracker.orch_run_start(run=run)
    tracker.orch_run_end(run=finished, metrics={})
    for run in (open_run, finished):
        tracker.orch_run_lost(task="t", name="r", tracking=run.tracking, reason="lost: process 1 died")
    tracker.orch_run_lost(task="t", name="r", tracking={"mlflow": "0" * 32}, reason="no such run")
    tracker.orch_run_lost(task="t", name="r", tracking={}, reason="another tracker's run")
    client = MlflowClient(tracker.tracking_uri)
    got = client.get_run(open_run.tracking["mlflow"])
    assert got.info.status == "KILLED" and got.data.tags["orch.error"] == "lost: process 1 died"
    got = client.get_run(finished.tracking["mlflow"])
    assert got.info.status == "FINISHED" and "orch.error" not in got.data.tags


def test_sweep_parent_is_found_again_on_resume(tracker, project):
    def sweep():
        return SweepInfo(task="t", study="s", storage=f"sqlite:///{project}/optuna.db", metric="val_rmse", n_trials=2,
                         params={"lr": 1, "data": {"path": "p"}}, space={"lr": {"low": 0.1, "high": 1.0}})

    first = sweep()
    tracker.orch_sweep_start(sweep=first)
    child = new_run(sweep=first, trial=0)
    tracker.orch_run_start(run=child)
    tracker.orch_trial_end(sweep=first, result=TrialResult(number=0, state="COMPLETE", params={"lr": 0.2}, value=0.5),
                           run=child)
    (project / "best_params.yaml").write_text("t: {}\n")
    tracker.orch_sweep_end(sweep=first, best=TrialResult(number=0, state="COMPLETE", params={"lr": 0.2}, value=0.5),
                           files=[project / "best_params.yaml"])
    again = sweep()
    tracker.orch_sweep_start(sweep=again)
    assert again.tracking == first.tracking
    client = MlflowClient(tracker.tracking_uri)
    got = client.get_run(child.tracking["mlflow"])
    assert got.data.tags["mlflow.parentRunId"] == first.tracking["mlflow"]
    assert got.data.tags["orch.trial_state"] == "COMPLETE"
    parent = client.get_run(first.tracking["mlflow"])
    assert parent.data.tags["best.lr"] == "0.2" and parent.data.metrics["best_val_rmse"] == 0.5
    assert parent.data.params["data.path"] == "p" and parent.data.params["sweep.trials"] == "2"
    assert parent.data.params["space.lr"] == '{"high": 1.0, "low": 0.1}'
    assert [a.path for a in client.list_artifacts(parent.info.run_id)] == ["best_params.yaml"]
    assert parent.data.tags["orch.storage"] == f"sqlite:///{project}/optuna.db"


def test_workers_that_race_to_create_the_parent_run_keep_the_one_agreed_first(project, monkeypatch):
    """Two workers both found no parent and both created one: the study's agreement keeps the
    first, the other worker deletes its own and nests under the first."""
    sweep = functools.partial(SweepInfo, task="t", study="s", storage=f"sqlite:///{project}/optuna.db",
                              metric="val_rmse")
    first, second = MlflowTracker(), MlflowTracker()
    for t in (first, second):
        t.orch_configure(config=OrchConfig(project))
    a = sweep()
    first.orch_sweep_start(sweep=a)
    b = sweep()
    monkeypatch.setattr(SweepInfo, "agreed", lambda self, key: None)  # as if it had looked before the first agreed
    monkeypatch.setattr(MlflowTracker, "_parent_by_tag", lambda self, s: None)
    second.orch_sweep_start(sweep=b)
    assert b.tracking == a.tracking
    client = MlflowClient(first.tracking_uri)
    runs = client.search_runs([first.experiment_id("t")], filter_string="tags.`orch.role` = 'sweep'", run_view_type=3)
    assert sorted(r.info.lifecycle_stage for r in runs) == ["active", "deleted"]
    assert [r.info.run_id for r in runs if r.info.lifecycle_stage == "active"] == [a.tracking["mlflow"]]


def test_the_journal_keeps_writes_a_server_did_not_take_in_order_and_sends_them_later(tracker, project, monkeypatch):
    from orch_mlflow.journal import Journal

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    run = new_run()
    tracker.orch_run_start(run=run)
    run_id = run.tracking["mlflow"]
    with __import__("socket").socket() as s:  # a port nobody listens on: a server that is away
        s.bind(("127.0.0.1", 0))
        away = MlflowClient(tracking_uri=f"http://127.0.0.1:{s.getsockname()[1]}")
    journal, outages = Journal(project / ".orch" / "journal"), []
    (project / "w.json").write_text("{}")
    journal.send(away, run_id, "log_batch", outages.append, metrics=[["loss", 0.5, 1000, 0]])
    journal.send(away, run_id, "log_artifact", outages.append, local=str(project / "w.json"), artifact_path="model")
    (project / "w.json").unlink()  # the run's folder is gone by the time the server answers: a copy was kept
    journal.send(tracker.client, run_id, "log_batch", outages.append, metrics=[["loss", 0.25, 2000, 1]])  # queued behind
    assert len(outages) == 1 and journal.count(run_id) == 3
    with open(journal.file(run_id), "a") as fh:
        fh.write('{"op": "set_tag", "ar')  # a kill while appending: never acknowledged, skipped
    with pytest.raises(Exception, match="no-such-run not found"):  # refused by the store: not an outage
        journal.send(tracker.client, "no-such-run", "set_tag", outages.append, key="a", value="b")
    assert journal.replay(tracker.client, run_id, force=True) == 3 and not journal.pending(run_id)
    history = tracker.client.get_metric_history(run_id, "loss")
    assert [(m.step, m.value, m.timestamp) for m in history] == [(0, 0.5, 1000), (1, 0.25, 2000)]
    assert [a.path for a in tracker.client.list_artifacts(run_id, "model")] == ["model/w.json"]
    assert list(journal.folder.iterdir()) == [journal.folder / ".lock"]


def test_orch_doctor_checks_the_store_and_sends_what_the_journal_kept(tracker, project, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    run = new_run()
    tracker.orch_run_start(run=run)
    run_id = run.tracking["mlflow"]
    with __import__("socket").socket() as s:
        s.bind(("127.0.0.1", 0))
        away = MlflowClient(tracking_uri=f"http://127.0.0.1:{s.getsockname()[1]}")
    tracker.journal.send(away, run_id, "set_tag", lambda exc: None, key="kept", value="yes")
    found = tracker.orch_doctor(root=project)
    assert [(f.level, f.what.split(" ")[0]) for f in found] == [("ok", "tracking"), ("fixed", "1")]
    assert tracker.client.get_run(run_id).data.tags["kept"] == "yes" and tracker.journal.runs() == []


def test_a_new_sqlite_store_starts_from_a_template_and_is_the_store_mlflow_makes(tmp_path, monkeypatch):
    """A new store is a copy of an empty one made once per MLflow version (creating the schema and
    running MLflow's migrations costs about a second per store); it is what MLflow itself makes:
    the same schema, the Default experiment with this project's artifact location, the same ids."""
    import sqlite3

    from mlflow.tracking import MlflowClient

    from orch_mlflow.store import template_path
    from orch_mlflow.tracker import open_client

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    made, seeded, again = (tmp_path / name for name in ("made", "seeded", "again"))
    stores = {}
    for folder in (made, seeded, again):
        folder.mkdir()
        monkeypatch.chdir(folder)
        uri = f"sqlite:///{folder / 'mlflow.db'}"
        client = MlflowClient(tracking_uri=uri) if folder == made else open_client(uri)
        if folder == seeded:
            template = template_path()
            assert template.is_file() and template.parent == tmp_path / "cache" / "orch"
            made_at = template.stat().st_mtime_ns
        [default] = client.search_experiments()
        assert (default.experiment_id, default.name) == ("0", "Default")
        assert default.artifact_location == str(folder / "mlruns" / "0")
        assert client.create_experiment("task") == "1"
        with sqlite3.connect(folder / "mlflow.db") as db:  # the schema (MLflow's own SQL text varies:
            names = db.execute("SELECT type, name FROM sqlite_master ORDER BY name").fetchall()  # set order)
            columns = {t: db.execute(f"PRAGMA table_info('{t}')").fetchall() for kind, t in names if kind == "table"}
            stores[folder] = (names, columns, db.execute("SELECT * FROM alembic_version").fetchall(),
                              db.execute("SELECT * FROM workspaces").fetchall())
    assert stores[seeded] == stores[made] == stores[again]
    assert template_path().stat().st_mtime_ns == made_at  # made once


def test_a_store_is_made_as_usual_when_no_template_can_be_kept(tmp_path, monkeypatch):
    from orch_mlflow.tracker import open_client

    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")  # the cache folder cannot be made under a file
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))
    monkeypatch.chdir(tmp_path)
    client = open_client(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert [e.name for e in client.search_experiments()] == ["Default"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlflow.db", "mlflow.db.lock", "not-a-folder"]
