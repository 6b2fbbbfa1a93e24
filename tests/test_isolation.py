"""One broken plugin never stops the others, whatever way it breaks; each message names the plugin,
the hook and the reason in one line. (A plugin that fails to import, a misspelled hook, an API
version outside its range and a tracker that raises in ``orch run``: tests/test_manager.py.)"""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from conftest import add_site
from orchestrator.manager import DISABLE_ENV, get_plugin_manager
from orchestrator.registry import load_tasks
from test_manager import plugin_site

TASK_HEAD = "from orchestrator import HumanBaseline, Params, Stage, Task, hookimpl\n\n"


def installed(tmp_path, monkeypatch, **sources: str):
    """Install each ``name=source`` as plugin ``orch_<name>`` (a dist-info with its entry point)."""
    monkeypatch.delenv(DISABLE_ENV, raising=False)
    site = tmp_path / "site"
    for name, source in sources.items():
        plugin_site(site, name, source)
    add_site(monkeypatch, site)
    return site


def statuses(**sources) -> dict[str, str]:
    pm = get_plugin_manager()
    load_tasks(pm)
    return {name: pm.statuses[name].status for name in sources}


@pytest.fixture
def install(tmp_path, monkeypatch):
    names = []

    def install(**sources: str):
        names.extend(sources)
        return installed(tmp_path, monkeypatch, **sources)

    yield install
    for name in names:  # the next test installs another module under the same name
        sys.modules.pop(f"orch_{name}", None)


def test_a_hook_with_an_argument_the_hookspec_lacks(install):
    install(extra=TASK_HEAD + "@hookimpl\ndef orch_run_start(run, verbose):\n    pass\n")
    assert statuses(extra="") == {"extra": "error: hook orch_run_start(run, verbose): verbose is not an argument "
                                            "of orch_run_start(run)"}


def test_a_task_hook_that_returns_something_that_is_not_a_task(install):
    install(notask=TASK_HEAD + "@hookimpl\ndef orch_register_tasks():\n    return ['collab']\n")
    assert statuses(notask="") == {"notask": "error: orch_register_tasks: TypeError: orch_register_tasks returned "
                                              "str, not Task"}


BAD_FIELDS = TASK_HEAD + '''
class P(Params):
    k: int = 1

def task(**changed):
    fields = dict(name="bad", description="d", params_model=P, metric="error", human=HumanBaseline(0.1, "s"),
                  stages=(Stage("fit", lambda ctx: {}, tracked=True),))
    return Task(**{**fields, **changed})

@hookimpl
def orch_register_tasks():
    return [task({changes})]
'''


@pytest.mark.parametrize("changes, reason", [
    ("name=42", "task name 42 must be an identifier"),
    ("human=0.5", "task 'bad': human must be a HumanBaseline (got 0.5)"),
    ("params_model=dict", "task 'bad': params_model must be a pydantic model class (orchestrator.Params) "
                          "(got <class 'dict'>)"),
    ("stages=[Stage('fit', 'not a function')]", "task 'bad': stage 'fit' fn must be a function of a StageContext"),
])
def test_a_task_with_a_field_of_the_wrong_type(install, changes, reason):
    install(bad=BAD_FIELDS.replace("{changes}", changes))
    pm = get_plugin_manager()
    assert "bad" not in load_tasks(pm) and "collab" in load_tasks(pm)
    assert pm.statuses["bad"].status == f"error: orch_register_tasks: TypeError: {reason}"


@pytest.mark.integration
def test_a_task_of_the_wrong_type_breaks_no_command(install, project, toy_site):
    install(bad=BAD_FIELDS.replace("{changes}", "name=42"))
    (project / "params.yaml").write_text(yaml.safe_dump({"toy": {"epochs": 2}}))

    def orch(*args):
        return subprocess.run([sys.executable, "-m", "orchestrator", *args], cwd=project, capture_output=True,
                              text=True, timeout=300)

    listed = orch("plugins")
    assert listed.returncode == 0, listed.stderr
    assert "error: orch_register_tasks: TypeError: task name 42 must be an identifier" in listed.stdout
    tasks = orch("tasks")
    assert tasks.returncode == 0 and "collab" in tasks.stdout and "toy" in tasks.stdout
    ran = orch("-q", "run", "toy")
    assert ran.returncode == 0 and "Traceback" not in ran.stderr, ran.stderr


COMMANDS = TASK_HEAD + "@hookimpl\ndef orch_register_commands(cli):\n    raise RuntimeError('no click today')\n"
DOCTOR = TASK_HEAD + "@hookimpl\ndef orch_doctor(root):\n    raise OSError('disk gone')\n"
FETCH = TASK_HEAD + "@hookimpl\ndef orch_fetch_run(run_id):\n    raise ValueError('bad id')\n"


def test_hooks_that_raise_outside_a_run_detach_their_plugin_in_one_line(install, capsys):
    import click

    install(commands=COMMANDS, doctor=DOCTOR, fetch=FETCH)
    pm = get_plugin_manager()
    group = click.Group("orch")
    pm.hook.orch_register_commands(cli=group)
    assert "ui" in group.commands  # the MLflow plugin's commands are still added
    pm.hook.orch_doctor(root=".")
    assert pm.hook.orch_fetch_run(run_id="0" * 32) is None  # MLflow's answer: no such run
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("orch: plugin")]
    assert lines == [
        "orch: plugin 'commands' failed in orch_register_commands: RuntimeError: no click today; it is detached for "
        "the rest of this command (the run goes on without it)",
        "orch: plugin 'doctor' failed in orch_doctor: OSError: disk gone; it is detached for the rest of this command "
        "(the run goes on without it)",
        "orch: plugin 'fetch' failed in orch_fetch_run: ValueError: bad id; it is detached for the rest of this "
        "command (the run goes on without it)"]


FLAKY_TRACKER = '''
from pathlib import Path
from orchestrator import hookimpl

LOG = Path(__file__).with_name("events.txt")

def log(line):
    LOG.write_text((LOG.read_text() if LOG.exists() else "") + line + "\\n")

@hookimpl
def orch_sweep_start(sweep):
    log("sweep open")

@hookimpl
def orch_sweep_end(sweep, best, files):
    log(f"sweep closed, best {best}")

@hookimpl
def orch_run_start(run):
    log(f"open {run.name}")

@hookimpl
def orch_epoch_end(run, epoch, metrics):
    if epoch == 1:
        raise ConnectionError("the server went away")

@hookimpl
def orch_run_error(run, error):
    log(f"closed {run.name}: {error}")
'''


@pytest.mark.integration
def test_a_tracker_that_raises_in_a_sweep_closes_its_trial_and_its_parent_and_the_sweep_goes_on(install, project,
                                                                                                 toy_site):
    from test_integration import client_for, runs_of

    site = install(flaky=FLAKY_TRACKER)
    (project / "params.yaml").write_text(yaml.safe_dump({"toy": {"epochs": 3}}))
    out = subprocess.run([sys.executable, "-m", "orchestrator", "-q", "sweep", "toy", "--trials", "2"], cwd=project,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert (site / "events.txt").read_text().splitlines() == [
        "sweep open", "open toy-trial-0", "closed toy-trial-0: the server went away", "sweep closed, best None"]
    runs = runs_of(client_for(project), "toy")
    assert sorted(r.info.status for r in runs) == ["FINISHED"] * 3  # MLflow: the parent and both trials
