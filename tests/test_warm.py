"""Warm start: a command runs in a worker forked from a server that preloaded the heavy libraries,
and looks to its caller exactly like a cold ``orch`` process (output, exit code, signals, kill -9)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import psutil
import pytest
import yaml
from conftest import TOY_SITE
from test_integration import StderrLines, client_for, epoch_of, runs_of

from orchestrator import warm
from orchestrator.sweep.study import Study
from orchestrator.warm import client

pytestmark = pytest.mark.integration

# the client, with a word on stderr when a server ran the command (None: it ran cold)
CLIENT = ("import sys; from orchestrator.warm import client; sys.argv = ['orch', *sys.argv[1:]]; "
          "code = client.relay(client.socket_path()); print(f'relayed {code}', file=sys.stderr); "
          "sys.exit(0 if code is None else (code if code >= 0 else 128 - code))")


@pytest.fixture
def warm_env(project, tmp_path, monkeypatch):
    """A runtime folder of this test's own (short: it holds a socket), a copy of the toy plugin
    that the test may edit, and a server up for them; the server is stopped at the end."""
    runtime = Path(tempfile.mkdtemp(prefix="ow", dir="/tmp"))
    site = tmp_path / "site"
    shutil.copytree(TOY_SITE, site)
    env = {**os.environ, "ORCH_RUNTIME_DIR": str(runtime), "ORCH_WARM": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}
    env.pop("MLFLOW_TRACKING_URI", None)
    cold = subprocess.run([sys.executable, "-m", "orchestrator", "tasks"], cwd=project, env=env,
                          capture_output=True, text=True, timeout=120)  # runs cold, starts the server
    assert cold.returncode == 0, cold.stderr
    sock = _wait_for_server(runtime / "warm")
    yield env, site, runtime
    for lock in (runtime / "warm").glob("*.lock"):
        text = lock.read_text().strip()
        if text.isdigit():
            _kill(int(text))
    shutil.rmtree(runtime, ignore_errors=True)
    assert sock


def _wait_for_server(folder: Path, timeout: float = 120.0) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in folder.glob("*.sock"):
            with socket.socket(socket.AF_UNIX) as probe:
                try:
                    probe.connect(str(path))  # accepted: the preload is done
                    return path
                except OSError:
                    pass
        time.sleep(0.05)
    raise AssertionError(f"no warm server listened in {folder} within {timeout:g} s")


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def relayed(*args: str, env, cwd, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", CLIENT, *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=300, **kwargs)


def test_a_command_runs_warm_with_the_callers_folder_streams_and_exit_code(warm_env, project):
    env, _site, _ = warm_env
    out = relayed("toy-hello", "warm", env=env, cwd=project)
    assert out.returncode == 0 and "relayed 0" in out.stderr, out.stderr
    assert out.stdout == "hello warm\n"  # written by the worker straight to the caller's stdout

    (project / "params.yaml").write_text(yaml.safe_dump({"toy": {"epochs": 2}}))
    out = relayed("-q", "run", "toy", env=env, cwd=project)
    assert "relayed 0" in out.stderr, out.stderr
    assert (project / "mlflow.db").exists()  # the caller's folder, not the server's
    assert [r.info.status for r in runs_of(client_for(project), "toy")] == ["FINISHED"]

    bad = relayed("run", "nope", env=env, cwd=project)
    cold = subprocess.run([sys.executable, "-m", "orchestrator", "run", "nope"], env={**env, "ORCH_WARM": "0"},
                          cwd=project, capture_output=True, text=True, timeout=120)
    assert bad.returncode == cold.returncode == 2 and "relayed 2" in bad.stderr
    assert bad.stderr.splitlines()[0] == cold.stderr.strip()  # the same one-line error


def test_an_edited_plugin_is_imported_afresh_by_each_command(warm_env, project):
    env, site, _ = warm_env
    assert relayed("toy-hello", "a", env=env, cwd=project).stdout == "hello a\n"
    module = site / "orch_toy.py"
    module.write_text(module.read_text().replace('click.echo(f"hello {name}")', 'click.echo(f"hi {name}")'))
    again = relayed("toy-hello", "a", env=env, cwd=project)
    assert "relayed 0" in again.stderr and again.stdout == "hi a\n"


def _toy_run_waiting(project: Path, env: dict, runtime: Path) -> tuple[subprocess.Popen, StderrLines, int]:
    """A warm ``orch run toy`` held before its last epoch; the client, its lines, the worker's pid."""
    (project / "params.yaml").write_text(yaml.safe_dump({"toy": {"epochs": 3, "hold": str(project / "go")}}))
    proc = subprocess.Popen([sys.executable, "-c", CLIENT, "run", "toy"], cwd=project, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    lines = StderrLines(proc)
    lines.wait_for(lambda line: line.startswith("[toy.train] epoch 1 "))
    trainings = [int(p.name) for p in (runtime / "trainings").glob("[0-9]*")]
    assert len(trainings) == 1 and trainings[0] != proc.pid  # the worker trains, not the client
    return proc, lines, trainings[0]


def test_a_client_killed_with_sigkill_takes_its_worker_and_the_next_command_closes_the_run(warm_env, project):
    env, _site, runtime = warm_env
    proc, lines, worker = _toy_run_waiting(project, env, runtime)
    proc.kill()
    proc.wait(timeout=60)
    lines.rest()
    psutil.Process(worker).wait(timeout=30) if psutil.pid_exists(worker) else None
    assert not psutil.pid_exists(worker) or psutil.Process(worker).status() == psutil.STATUS_ZOMBIE
    (project / "go").touch()
    again = relayed("-q", "run", "toy", env=env, cwd=project)
    assert again.returncode == 0, again.stderr
    statuses = sorted(r.info.status for r in runs_of(client_for(project), "toy"))
    assert statuses == ["FINISHED", "KILLED"], again.stderr  # the lease named the client: found lost


def test_ctrl_c_on_the_client_stops_the_run_as_it_stops_a_cold_one(warm_env, project):
    env, _site, runtime = warm_env
    proc, lines, worker = _toy_run_waiting(project, env, runtime)
    proc.send_signal(signal.SIGINT)  # forwarded to the worker's process group
    proc.wait(timeout=120)
    err = lines.rest()
    assert proc.returncode == 130 and "relayed 130" in err, err
    assert err.strip().splitlines()[-2] == "orch: interrupted", err
    assert [r.info.status for r in runs_of(client_for(project), "toy")] == ["KILLED"]
    assert not psutil.pid_exists(worker) or psutil.Process(worker).status() == psutil.STATUS_ZOMBIE


@pytest.mark.parametrize("args,wanted", [
    (["run", "collab"], True), (["-q", "--tracking-uri", "sqlite:///x.db", "stage", "collab", "train"], True),
    (["--tracking-uri", "run", "doctor"], False),  # "run" is the option's value: the command is doctor
    (["sweep", "collab"], True), (["worker", "collab"], True), (["doctor"], False), (["server"], False),
    (["ui"], False), (["--help"], False), ([], False)])
def test_commands_run_warm_but_those_that_serve_and_doctor(args, wanted, monkeypatch):
    monkeypatch.delenv("ORCH_WARM", raising=False)
    assert client.wanted(args) is wanted
    monkeypatch.setenv("ORCH_WARM", "0")
    assert client.wanted(args) is False


def test_the_holder_pid_is_the_clients_only_in_the_worker_itself(monkeypatch):
    monkeypatch.setenv(warm.CLIENT_PID_ENV, f"12345:{os.getpid()}")
    assert warm.holder_pid() == 12345
    monkeypatch.setenv(warm.CLIENT_PID_ENV, "12345:1")  # inherited by a process the command started
    assert warm.holder_pid() == os.getpid()


def test_a_server_is_shared_by_clients_that_find_the_same_libraries(tmp_path, monkeypatch):
    """Folders of plugins on the path share a server (each command imports them afresh), and so do
    variables that libraries write into their own process; a folder that shadows a preloaded
    library, an import-time setting or a start-up module does not."""
    def key(*folders: str) -> str:
        monkeypatch.setattr(sys, "path", [str(tmp_path), *folders, *base])
        monkeypatch.setenv("PYTHONPATH", os.pathsep.join(folders))
        return client._key()

    base = list(sys.path[1:])
    plugins, shadow, startup = (tmp_path / name for name in ("plugins", "shadow", "startup"))
    (plugins / "orch_mine").mkdir(parents=True)
    (plugins / "orch_mine" / "__init__.py").write_text("")
    (shadow / "yaml").mkdir(parents=True)
    (shadow / "yaml" / "__init__.py").write_text("")
    startup.mkdir()
    (startup / "sitecustomize.py").write_text("")

    plain = key()
    assert key(str(plugins)) == plain
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))  # torch writes it into its own process
    monkeypatch.setenv(warm.CLIENT_PID_ENV, "12:34")  # a warm command's, inherited by the workers it starts
    monkeypatch.setenv("PYTHONBREAKPOINT", "ray.util.rpdb.set_trace")  # what Ray's driver passes on
    for name, value in client.LIBRARY_WRITTEN.items():  # what sklearn writes, inherited from its importer
        monkeypatch.setenv(name, value)
    assert key() == plain
    monkeypatch.setenv("KMP_DUPLICATE_LIB_OK", "FALSE")  # the user's own value: a setting
    assert key() != plain
    monkeypatch.setenv("KMP_DUPLICATE_LIB_OK", client.LIBRARY_WRITTEN["KMP_DUPLICATE_LIB_OK"])
    assert key(str(shadow)) != plain
    assert key(str(startup)) != plain
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    assert key() != plain
    monkeypatch.setenv(warm.CHOSEN_ENV, "7")  # a share a command chose, inherited by what it starts
    monkeypatch.delenv("OMP_NUM_THREADS")
    plain = key()
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    assert key() == plain


def test_a_killed_worker_costs_only_its_trial_a_new_worker_retries_it_and_the_sweep_finishes(warm_env, project):
    """Kill -9 one of a sweep's worker processes, forked by the warm server (as they are whenever a
    server is up): its client ends as killed, the sweep retries the trial in a new worker."""
    env, _site, runtime = warm_env
    params = {"toy": {"epochs": 4, "epoch_seconds": 0.3,
                      "sweep": {"space": {"lr": {"low": 0.01, "high": 0.2, "scale": "log"}}, "pruner": "none"}}}
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    # the driver and its workers all run in this test's own server: theirs to find and kill
    args = [sys.executable, "-m", "orchestrator", "sweep", "toy", "--trials", "6", "--study", "k", "--jobs", "2"]
    proc = subprocess.Popen(args, cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    client = client_for(project)
    lines, started = StderrLines(proc), set()

    def both_workers_are_in_a_trial(line: str) -> bool:
        trial, epoch = epoch_of(line)
        if epoch == 1:
            started.add(trial)
        return len(started) == 2

    lines.wait_for(both_workers_are_in_a_trial)
    [server] = [int(lock.read_text()) for lock in (runtime / "warm").glob("*.lock")]  # one: workers share it
    forked = [w for session in psutil.Process(server).children() for w in session.children()]
    [driver] = [p for p in forked if any("_sweep-worker" in c.cmdline() for c in p.children())]
    workers = [p for p in forked if p != driver]
    assert len(workers) == 2, forked
    workers[0].kill()  # SIGKILL, what the OOM killer does
    proc.wait(timeout=180)
    err = lines.rest()
    assert proc.returncode == 0, err
    assert re.search(r"\[sweep\] worker \d was killed \(SIGKILL\): its trial is queued again; worker 3 takes its "
                     r"place", err) and "Traceback" not in err
    storage = f"sqlite:///{project / 'optuna.db'}"
    results = Study.existing("k", storage).results()
    states = [(r.number, r.state, r.retried_as) for r in results]
    assert sum(r.state == "COMPLETE" for r in results) == sum(r.counted for r in results) == 6, states  # exact
    lost = [r for r in results if r.state == "LOST"]  # failed in Optuna, not left RUNNING
    assert len(lost) == 1, states
    [lost] = lost
    assert lost.reason == "worker lost"
    study = optuna.load_study(study_name="k", storage=storage)
    retries = [t for t in study.trials if t.user_attrs.get("retry_of") == lost.number]
    assert len(retries) == 1, states
    [retry] = retries
    assert retry.state.name == "COMPLETE" and retry.params == study.trials[lost.number].params, states
    runs = runs_of(client, "toy")
    [parent] = [r for r in runs if r.data.tags.get("orch.role") == "sweep"]
    assert parent.info.status == "FINISHED"
    killed = [r for r in runs if r.data.tags.get("orch.trial") == str(lost.number)]
    assert [r.info.status for r in killed] in ([], ["KILLED"]), states  # killed before or after its run opened
    assert all(r.data.tags["orch.error"].startswith("lost: its process ") for r in killed)
    assert "RUNNING" not in {r.info.status for r in runs}
    assert list((project / ".orch" / "sweeps" / "k").glob("trial-*")) == []  # its folder removed too
    assert list((project / ".orch" / "leases").iterdir()) == []
    table = (project / "sweeps" / "k" / "trials.md").read_text()
    assert f"| {lost.number} | LOST (retried as {retry.number}) |" in table
