"""Workers of one study on a real PostgreSQL server (started by the ``postgres`` fixture) or in an
Optuna journal file on a shared folder: the agreements that make one parent run and distinct
sampler seeds, and `orch sweep` with `orch worker` sharing the study as two machines would."""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import threading

import pytest
import yaml
from mlflow.tracking import MlflowClient

import racers
from orchestrator.sweep.study import Study
from orchestrator.sweep.workers import LostRuns
from servers import PASSWORD, free_port
from test_integration import StderrLines, epoch_of, runs_of


pytestmark = pytest.mark.integration


@pytest.fixture(params=["postgresql", "journal"])
def shared_storage(request, tmp_path) -> str:
    """A study storage every machine reaches: a PostgreSQL database, or an Optuna journal file on
    a shared file system (here a local folder: the same locks and files as on NFS)."""
    if request.param == "postgresql":
        return request.getfixturevalue("postgres").url()
    (tmp_path / "shared").mkdir()
    return f"journal://{tmp_path / 'shared' / 'optuna.log'}"


def test_workers_that_race_agree_on_one_value_and_take_distinct_numbers(shared_storage):
    url = shared_storage
    context = multiprocessing.get_context("spawn")
    barrier, out = context.Barrier(4), context.Queue()
    procs = [context.Process(target=racers.agree, args=(url, barrier, f"v{i}", out)) for i in range(4)]
    for p in procs:
        p.start()
    got = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert len({value for value, _ in got}) == 1  # one winner, whoever it was
    assert sorted(number for _, number in got) == [0, 1, 2, 3]


def test_workers_that_open_a_fresh_postgresql_database_at_once_all_get_the_storage(postgres):
    url = postgres.url()  # empty: the first to open it creates Optuna's tables and types
    context = multiprocessing.get_context("spawn")
    barrier, out = context.Barrier(3), context.Queue()
    procs = [context.Process(target=racers.open_storage, args=(url, barrier, out)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert [out.get(timeout=5) for _ in procs] == ["opened"] * 3


def orch(*args, cwd):
    return subprocess.run([sys.executable, "-m", "orchestrator", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture
def tracking_server(tmp_path, postgres, monkeypatch):
    """``orch server`` on a PostgreSQL backend store, as the README's scale-out recipe starts it;
    every command of the test logs to it through MLFLOW_TRACKING_URI. Stopped by SIGTERM."""
    artifacts = tmp_path.parent / f"{tmp_path.name}-artifacts"
    cmd = [sys.executable, "-m", "orchestrator", "server", "--backend-store-uri", postgres.url(),
           "--artifacts-destination", str(artifacts), "--port", str(free_port()), "--workers", "1"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    export = proc.stdout.readline().strip()
    assert export.startswith("export MLFLOW_TRACKING_URI=http://127.0.0.1:"), export + proc.stderr.read()
    uri = export.split("=", 1)[1]
    threading.Thread(target=proc.stdout.read, daemon=True).start()  # its access log: a full pipe would block it
    lines = StderrLines(proc)
    lines.wait_for(lambda line: "Uvicorn running on" in line or "Listening at" in line)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    try:
        yield uri
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            assert proc.wait(timeout=60) == 143, lines.rest()
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)


def test_three_workers_share_a_postgresql_study_a_budget_of_30_and_one_parent_run(project, tmp_path, toy_site, postgres,
                                                                                  tracking_server):
    """The scale-out recipe: `orch server` on PostgreSQL, `orch sweep` to record the study, three
    `orch worker` processes started together (as three machines would)."""
    params = {"toy": {"epochs": 2, "sweep": {"space": {"lr": {"low": 0.01, "high": 0.2, "scale": "log"}},
                                              "pruner": "none"}}}
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    storage = postgres.url()
    first = orch("sweep", "toy", "--trials", "30", "--study", "pg", "--storage", storage, "--timeout", "0.5",
                 cwd=project)  # records the study's settings (budget 30); stops after its first trial
    assert first.returncode == 0, first.stderr
    args = ("-q", "worker", "toy", "--study", "pg", "--storage", storage)
    logs = [(tmp_path / f"worker-{i}.out", tmp_path / f"worker-{i}.err") for i in range(3)]  # files: no pipe fills
    workers = [subprocess.Popen([sys.executable, "-m", "orchestrator", *args], cwd=project, stdout=out.open("w"),
                                stderr=err.open("w")) for out, err in logs]  # started together
    for w, (out, err) in zip(workers, logs):
        try:
            w.wait(timeout=300)
        except subprocess.TimeoutExpired:
            for other in workers:
                other.kill()
            raise AssertionError("a worker hung:\n" + "\n".join(e.read_text()[-3000:] for _, e in logs)) from None
        assert w.returncode == 0, err.read_text()
        assert PASSWORD not in out.read_text() + err.read_text() and "orch:***@" in out.read_text()
    assert PASSWORD not in first.stdout + first.stderr

    results = Study.existing("pg", storage).results()
    complete = [r for r in results if r.state == "COMPLETE"]
    assert len(complete) == len(results) == 30, [(r.number, r.state) for r in results]  # exact (StudyGate)
    assert len({r.number for r in results}) == len(results)
    values = [tuple(sorted(r.params.items())) for r in complete]
    assert len(set(values)) == len(values)  # workers seeded apart: no value set drawn twice
    assert not (project / "mlflow.db").exists()  # all of it went to the server
    runs = runs_of(MlflowClient(tracking_uri=tracking_server), "toy")
    [parent] = [r for r in runs if r.data.tags.get("orch.role") == "sweep"]
    assert parent.info.status == "FINISHED" and PASSWORD not in parent.data.tags["orch.storage"]
    children = [r for r in runs if r.data.tags.get("orch.role") != "sweep"]
    assert len(children) == len(results)
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parent.info.run_id}
    assert {r.data.tags["orch.worker_host"] for r in children} == {socket.gethostname()}
    by_trial = {int(r.data.tags["orch.trial"]): r for r in children}
    for r in complete:
        assert float(by_trial[r.number].data.params["lr"]) == r.params["lr"]


def test_orch_server_refuses_a_wrong_password_and_a_busy_port_in_one_line(project, postgres):
    postgres.url("serverpw")
    out = orch("server", "--backend-store-uri", postgres.base("serverpw", password="nope"), cwd=project)
    assert out.returncode == 2 and out.stdout == "", out.stderr
    [line] = out.stderr.strip().splitlines()
    assert line.startswith("orch: error: --backend-store-uri postgresql://orch:***@127.0.0.1:")
    assert "password authentication failed" in line and "nope" not in line
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = orch("server", "--backend-store-uri", postgres.url(), "--port", str(port), cwd=project)
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip().splitlines() == [f"orch: error: --port {port}: cannot listen on 127.0.0.1:{port} "
                                               "(Address already in use); choose another --port"]
    assert [p for p in project.rglob("*") if p.is_file()] == []


def test_a_wrong_postgresql_password_is_one_line_and_creates_nothing(project, postgres):
    postgres.url("wrongpw")
    out = orch("sweep", "collab", "--storage", postgres.base("wrongpw", password="nope"), cwd=project)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "password authentication failed" in lines[0] and "nope" not in lines[0], out.stderr
    assert [p for p in project.rglob("*") if p.is_file()] == []


def test_a_worker_killed_on_one_machine_is_failed_by_its_heartbeat_and_its_trial_rerun_on_another(
        tmp_path, toy_site, shared_storage):
    """Two machines: two project folders (their own leases and scratch), one PostgreSQL study, one
    tracking store. The worker of machine A is killed in the middle of a trial; nothing on A is left
    to notice. Machine B's worker waits for the trial's heartbeat to stop, fails it, runs it again
    and meets the budget; the dead trial's run is closed, the parent too, nothing stays RUNNING."""
    machines = [tmp_path / "a", tmp_path / "b"]
    params = {"toy": {"epochs": 8, "epoch_seconds": 0.25,
                      "sweep": {"space": {"lr": {"low": 0.01, "high": 0.2, "scale": "log"}}, "pruner": "none",
                                "heartbeat": 1, "grace_period": 3}}}
    for folder in machines:
        folder.mkdir()
        (folder / "params.yaml").write_text(yaml.safe_dump(params))
    storage, tracking = shared_storage, f"sqlite:///{tmp_path / 'mlflow.db'}"
    common = ("--tracking-uri", tracking)
    first = orch(*common, "sweep", "toy", "--trials", "4", "--study", "hb", "--storage", storage, "--timeout", "0.5",
                 cwd=machines[0])  # records the settings; one trial
    assert first.returncode == 0, first.stderr
    worker = [sys.executable, "-m", "orchestrator", *common, "worker", "toy", "--study", "hb", "--storage", storage]
    a, b = (subprocess.Popen(worker, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for folder in machines)
    lines = StderrLines(a)
    lines.wait_for(lambda line: epoch_of(line)[1] == 2)  # A is inside a trial
    a.kill()
    a.wait(timeout=60)
    _, err = b.communicate(timeout=300)
    assert b.returncode == 0, err

    results = Study.existing("hb", storage).results()
    states = [(r.number, r.state, r.retried_as) for r in results]
    assert sum(r.state == "COMPLETE" for r in results) == 4, states  # the budget is met
    [lost] = [r for r in results if r.state == "LOST"]
    retry = next(r for r in results if r.number == lost.retried_as)
    assert retry.state == "COMPLETE" and retry.params == lost.params, states
    assert len({r.number for r in results}) == len(results)

    runs = runs_of(MlflowClient(tracking_uri=tracking), "toy")
    assert "RUNNING" not in {r.info.status for r in runs}, [(r.info.run_name, r.info.status) for r in runs]
    [parent] = [r for r in runs if r.data.tags.get("orch.role") == "sweep"]
    assert parent.info.status == "FINISHED"
    [killed] = [r for r in runs if r.data.tags.get("orch.trial") == str(lost.number)]
    assert killed.info.status == "KILLED" and killed.data.tags["orch.error"] == LostRuns.REASON
