"""A tracking server that goes away mid-run loses nothing: a real ``mlflow server`` is stopped
during ``orch run`` and started again, once while the run goes on and once after it ended
(``orch sync``); both runs end in MLflow as a run that never saw an outage does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from orch_mlflow.commands import SERVER_ENV
from servers import free_port
from test_integration import StderrLines, orch

pytestmark = pytest.mark.integration

EPOCHS = 60


class MlflowServer:
    """``mlflow server`` on 127.0.0.1 with its own store and artifact folder, killed and started
    again on the same port like a server that crashed and was restarted."""

    def __init__(self, folder: Path):
        self.folder, self.port, self.proc = folder, free_port(), None
        self.uri = f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{self.folder / 'mlflow.db'}",
               "--artifacts-destination", str(self.folder / "artifacts"), "--host", "127.0.0.1",
               "--port", str(self.port), "--workers", "1"]
        self.proc = subprocess.Popen(cmd, cwd=self.folder, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True, env={**os.environ, **SERVER_ENV},
                                     start_new_session=True)
        StderrLines(self.proc).wait_for(lambda line: "Uvicorn running on" in line or "Listening at" in line,
                                        timeout=120)

    def stop(self) -> None:
        """A crash, not a graceful shutdown (which takes uvicorn about 5 s): the harder outage."""
        os.killpg(self.proc.pid, signal.SIGKILL)  # with the uvicorn workers it started
        self.proc.wait(timeout=60)


def run_with_server_stopped_at_epoch_2(project: Path, server: MlflowServer, epoch_seconds: float, hold: str = ""):
    """``orch run toy`` against the server, which is stopped once the run's second epoch is logged;
    with ``hold``, the run waits before its last epoch until that file exists."""
    params = {"epochs": EPOCHS, "epoch_seconds": epoch_seconds, "hold": hold}
    (project / "params.yaml").write_text(yaml.safe_dump({"toy": params}))
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator", "--tracking-uri", server.uri, "run", "toy"],
                            cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = StderrLines(proc)
    lines.wait_for(lambda line: line.startswith("[toy.train] epoch 2 "))
    server.stop()
    return proc, lines


def history(client: MlflowClient, run_id: str) -> dict:
    """What a user compares in the UI: every metric's (step, value) history, params, tags without
    ids and times, artifact paths."""
    run = client.get_run(run_id)

    def files(path=None):
        for f in client.list_artifacts(run_id, path):
            yield from (files(f.path) if f.is_dir else [f.path])

    params = {k: v for k, v in run.data.params.items() if k not in ("epoch_seconds", "hold")}
    tags = {k for k in run.data.tags if not k.startswith("mlflow.")}
    metrics = {k: [(m.step, round(m.value, 9)) for m in client.get_metric_history(run_id, k)]
               for k in run.data.metrics if not k.endswith("_seconds")}
    return {"status": run.info.status, "params": params, "tags": tags, "metrics": metrics, "files": sorted(files())}


def test_a_tracking_server_outage_mid_run_loses_no_metric_and_no_artifact(tmp_path, project, toy_site):
    server = MlflowServer(tmp_path.parent / f"{tmp_path.name}-server")
    server.folder.mkdir()
    server.start()
    client = MlflowClient(tracking_uri=server.uri)
    try:
        # the run of a server that never went away: the reference
        (project / "params.yaml").write_text(yaml.safe_dump({"toy": {"epochs": EPOCHS, "epoch_seconds": 0.0}}))
        assert orch("--tracking-uri", server.uri, "-q", "run", "toy", cwd=project).returncode == 0
        [reference] = client.search_runs([client.get_experiment_by_name("toy").experiment_id])
        expected = history(client, reference.info.run_id)
        assert len(expected["metrics"]["val_rmse"]) == EPOCHS + 1  # each epoch, then the final value

        # 1. the server goes away at epoch 2 and comes back while the run goes on (the run waits
        # before its last epoch until then: a restart can take longer than the run on a busy machine)
        release = tmp_path / "server-is-back"
        proc, lines = run_with_server_stopped_at_epoch_2(project, server, epoch_seconds=0.02, hold=str(release))
        lines.wait_for(lambda line: "did not answer; training goes on" in line)
        server.start()
        release.touch()
        lines.wait_for(lambda line: "the tracking server is back" in line)
        assert proc.wait(timeout=300) == 0, lines.rest()
        assert "Traceback" not in lines.rest()

        # 2. the server goes away at epoch 2 and is still away when the run ends: `orch sync`
        proc, lines = run_with_server_stopped_at_epoch_2(project, server, epoch_seconds=0.02)
        assert proc.wait(timeout=300) == 0
        err = lines.rest()
        assert "wait in" in err and "`orch sync`" in err and "Traceback" not in err
        assert list((project / ".orch" / "journal").glob("*.jsonl"))
        sync = orch("--tracking-uri", server.uri, "sync", cwd=project)
        assert sync.returncode == 1 and "wait" in sync.stderr.splitlines()[-1], sync.stderr  # still away
        server.start()
        sync = orch("--tracking-uri", server.uri, "sync", cwd=project)
        assert sync.returncode == 0 and "sent " in sync.stderr, sync.stderr

        runs = client.search_runs([client.get_experiment_by_name("toy").experiment_id])
        assert len(runs) == 3
        for run in runs:
            assert history(client, run.info.run_id) == expected, run.info.run_name
        assert list((project / ".orch" / "journal").glob("*.jsonl")) == []
    finally:
        if server.proc.poll() is None:
            server.stop()
