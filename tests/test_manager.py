"""The PluginManager factory: entry points, broken plugins, blocking, tracing, name checks."""

from __future__ import annotations

import pluggy
import pytest

from conftest import BROKEN_SITE, add_site
from orchestrator import NAME, hookimpl
from orchestrator.errors import UserError
from orchestrator.manager import DISABLE_ENV, get_plugin_manager
from orchestrator.registry import get_task, load_tasks


def test_one_name_for_marker_manager_and_group():
    from orchestrator import hookimpl as marker

    pm = get_plugin_manager(load_entrypoints=False)
    assert NAME == "orch" == pm.project_name == marker.project_name


def test_builtins_load_through_the_entry_point_group(monkeypatch):
    monkeypatch.delenv(DISABLE_ENV, raising=False)
    pm = get_plugin_manager()
    assert pm.statuses["collab"].status == "loaded"
    assert pm.statuses["mlflow"].status == "loaded"
    assert pm.statuses["collab"].dist == "orch"
    assert "collab" in load_tasks(pm)


def test_third_party_plugin_registers_like_a_builtin(toy_site, monkeypatch):
    monkeypatch.delenv(DISABLE_ENV, raising=False)
    pm = get_plugin_manager()
    assert pm.statuses["toy"].dist == "orch-toy" and pm.statuses["toy"].version == "0.1.0"
    assert get_task(pm, "toy").plugin == "toy"


def test_broken_plugin_is_reported_by_name_and_others_work(monkeypatch):
    monkeypatch.delenv(DISABLE_ENV, raising=False)
    add_site(monkeypatch, BROKEN_SITE)
    pm = get_plugin_manager()
    assert pm.statuses["broken"].status.startswith("error: ImportError: orch_broken needs a library")
    assert pm.get_plugin("broken") is None
    assert "collab" in load_tasks(pm)


def test_disable_env_blocks_plugins(monkeypatch):
    monkeypatch.setenv(DISABLE_ENV, "collab")
    pm = get_plugin_manager()
    assert pm.statuses["collab"].status.startswith("blocked")
    assert "collab" not in load_tasks(pm)
    assert pm.statuses["mlflow"].status == "loaded"


def test_trace_env_prints_hook_calls(monkeypatch, capsys):
    monkeypatch.setenv("ORCH_TRACE_PLUGINS", "1")
    monkeypatch.setenv(DISABLE_ENV, "*")
    pm = get_plugin_manager()
    pm.hook.orch_register_tasks()
    err = capsys.readouterr().err
    assert "[orch trace] orch_register_tasks" in err and "returned []" in err


def test_unprefixed_hookimpl_is_rejected(pm):
    class Plugin:
        @hookimpl
        def run_start(self, run):
            pass

    with pytest.raises(pluggy.PluginValidationError, match="must start with 'orch_'"):
        pm.register(Plugin())
    assert pm.get_plugins() == set()


def test_unknown_hook_fails_check_pending_and_is_unregistered(pm):
    class Typo:
        @hookimpl
        def orch_run_strat(self, run):
            pass

    pm.register(Typo(), name="typo")
    pm.check_pending_plugins()
    assert pm.get_plugin("typo") is None
    assert "orch_run_strat" in pm.statuses["typo"].status


def test_task_hook_that_raises_is_reported(pm):
    class Bad:
        @hookimpl
        def orch_register_tasks(self):
            raise ValueError("no config")

    pm.register(Bad(), name="bad")
    assert load_tasks(pm) == {}
    assert pm.statuses["bad"].status == "error: orch_register_tasks: ValueError: no config"


def test_duplicate_task_names_name_both_plugins(pm, toy_site):
    import orch_toy

    class Copy:
        @hookimpl
        def orch_register_tasks(self):
            return [orch_toy.TASK]

    pm.register(orch_toy, name="toy")
    pm.register(Copy(), name="copy")
    with pytest.raises(UserError, match="'toy' is registered by two plugins"):
        load_tasks(pm)


def test_unknown_task_lists_the_known_ones(pm, toy_site):
    import orch_toy

    pm.register(orch_toy, name="toy")
    with pytest.raises(UserError, match=r"unknown task 'nope' \(available: toy\)"):
        get_task(pm, "nope")


def plugin_site(folder, name: str, source: str):
    """A folder holding one installed plugin module ``orch_<name>`` (a dist-info and its entry point)."""
    info = folder / f"orch_{name}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: orch-{name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[orch]\n{name} = orch_{name}\n")
    (folder / f"orch_{name}.py").write_text(source)
    return folder


def test_a_plugin_for_another_api_version_is_skipped_and_named_with_both(tmp_path, monkeypatch):
    monkeypatch.delenv(DISABLE_ENV, raising=False)
    add_site(monkeypatch, plugin_site(tmp_path, "future", 'ORCH_API = ">=2"\n'))
    pm = get_plugin_manager()
    assert pm.statuses["future"].status == "skipped: supports orch API >=2, this orch has API 1"
    assert pm.get_plugin("future") is None and "collab" in load_tasks(pm)


def test_a_misspelled_hook_is_named_with_the_hook_it_resembles(tmp_path, monkeypatch):
    monkeypatch.delenv(DISABLE_ENV, raising=False)
    source = 'from orchestrator import hookimpl\nORCH_API = ">=1,<2"\n\n@hookimpl\ndef orch_regster_tasks():\n    return []\n'
    add_site(monkeypatch, plugin_site(tmp_path, "typo", source))
    pm = get_plugin_manager()
    assert pm.statuses["typo"].status == "error: unknown hook 'orch_regster_tasks' (did you mean orch_register_tasks?)"


TRACKER = '''
from pathlib import Path
from orchestrator import hookimpl

LOG = Path(__file__).with_name("events.txt")

@hookimpl
def orch_run_start(run):
    LOG.write_text(LOG.read_text() + "start\\n" if LOG.exists() else "start\\n")

@hookimpl
def orch_epoch_end(run, epoch, metrics):
    raise RuntimeError("the tracker's server broke")

@hookimpl
def orch_run_error(run, error):
    LOG.write_text(LOG.read_text() + f"closed: {error}\\n")

@hookimpl
def orch_run_end(run, metrics):
    LOG.write_text(LOG.read_text() + "end\\n")
'''


@pytest.mark.integration
def test_a_tracker_that_raises_is_detached_and_the_run_goes_on_with_the_others(project, toy_site, tmp_path, monkeypatch):
    import subprocess
    import sys

    import yaml
    from test_integration import client_for, runs_of

    site = plugin_site(tmp_path / "site", "flaky", TRACKER)
    add_site(monkeypatch, site)
    (project / "params.yaml").write_text(yaml.safe_dump({"toy": {"epochs": 3}}))
    out = subprocess.run([sys.executable, "-m", "orchestrator", "run", "toy"], cwd=project, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    failed = [line for line in out.stderr.splitlines() if line.startswith("orch: plugin")]
    assert failed == ["orch: plugin 'flaky' failed in orch_epoch_end: RuntimeError: the tracker's server broke; "
                      "it is detached for the rest of this command (the run goes on without it)"]
    assert "[toy.train] epoch 3 " in out.stderr  # training went on
    assert (site / "events.txt").read_text() == "start\nclosed: the tracker's server broke\n"  # closed once, no end
    runs = runs_of(client_for(project), "toy")
    assert [r.info.status for r in runs] == ["FINISHED"] and "val_rmse" in runs[0].data.metrics  # MLflow went on


LAX_TASK = '''
from pydantic import BaseModel
from orchestrator import Artifact, HumanBaseline, Stage, Task, hookimpl

class LaxParams(BaseModel):  # not orchestrator.Params: unknown keys slip through
    seed: int = 0
    k: int = 3

def fit(ctx):
    (ctx.out_dir / "weights.txt").write_text(str(ctx.params.k))
    return {"train_error": 0.2, "train_dev_error": 0.25, "val_error": 0.3}

@hookimpl
def orch_register_tasks():
    return [Task(name="lax", description="a task with loose ends", params_model=LaxParams, metric="error",
                 human=HumanBaseline(0.1, "made up"), stages=(Stage("fit", fit, ("k",), tracked=True),),
                 artifacts=(Artifact("weights.txt", "model", "fit"), Artifact("curve.png", "plot", "fit")))]
'''


@pytest.mark.integration
def test_plugins_check_names_every_problem_in_one_line_and_fails(project, tmp_path, monkeypatch):
    import subprocess
    import sys

    site = plugin_site(tmp_path / "site", "lax", LAX_TASK)
    plugin_site(site, "typo", 'from orchestrator import hookimpl\n\n@hookimpl\ndef orch_regster_tasks():\n    return []\n')
    add_site(monkeypatch, site)
    (project / "smoke.yaml").write_text("lax:\n  k: 5\n")

    def check(*args):
        return subprocess.run([sys.executable, "-m", "orchestrator", "plugins", "--check", *args], cwd=project,
                              capture_output=True, text=True, timeout=300)

    out = check("--smoke", str(project / "smoke.yaml"))
    assert out.returncode == 1, out.stderr
    assert out.stdout.splitlines() == [
        "problem: plugin 'typo': unknown hook 'orch_regster_tasks' (did you mean orch_register_tasks?)",
        "warning: plugin 'lax', task 'lax': LaxParams accepts unknown keys (extra=None): derive it from orchestrator.Params",
        f"problem: plugin 'lax', task 'lax': its run on {project / 'smoke.yaml'} built no bias/variance report "
        "(call ctx.bias_variance_report() in a stage after training)",
        f"problem: plugin 'lax', task 'lax', artifact 'curve.png': declared for stage 'fit' but its run on "
        f"{project / 'smoke.yaml'} wrote no such file",
        "8 plugin(s) checked: 3 problem(s), 1 warning(s)"]  # the six built-ins, lax and typo
    assert not (project / "mlflow.db").exists()  # the check's run went to a throwaway store

    monkeypatch.setenv(DISABLE_ENV, "typo")
    assert check().returncode == 0  # a warning alone does not fail
