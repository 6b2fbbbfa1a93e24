"""Meta-tests: docs/hooks.md and the tests keep up with the hookspecs; dvc.yaml with the tasks."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys

import pytest

import yaml

from conftest import ROOT
from orchestrator import hookspecs

HOOKS = {name: fn for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("orch_")}
DOC = (ROOT / "docs" / "hooks.md").read_text()  # the contract: records, rules, failures
GUIDE = (ROOT / "docs" / "writing-plugins.md").read_text()  # the guide, with the generated hook reference


def signature(fn) -> str:
    return f"{fn.__name__}{inspect.signature(fn)}".replace("'", "")


def test_every_hook_is_documented_with_its_signature():
    for name, fn in HOOKS.items():
        assert f"`{signature(fn)}`" in GUIDE, f"docs/writing-plugins.md lacks `{signature(fn)}`"


def test_docs_name_no_hook_that_does_not_exist():
    documented = set(re.findall(r"^#### `(orch_\w+)\(", GUIDE, flags=re.M))
    assert documented == set(HOOKS)
    named = set(re.findall(r"\b(orch_[a-z_]+)\(", DOC + GUIDE))
    assert named <= set(HOOKS), named - set(HOOKS)


def test_the_hook_reference_is_what_the_hookspecs_generate():
    from orchestrator import hookdoc

    assert hookdoc.updated(GUIDE) == GUIDE, "docs/writing-plugins.md: run `python -m orchestrator.hookdoc`"
    assert "#### `orch_fetch_run(run_id: str) -> FetchedRun | None` (firstresult" in GUIDE


def test_every_hook_says_the_api_version_that_added_it():
    for name, fn in HOOKS.items():
        assert re.search(r"Since API \d+\.", inspect.getdoc(fn)), name


def test_the_readme_links_the_plugin_guide():
    assert "docs/writing-plugins.md" in (ROOT / "README.md").read_text()


@pytest.mark.parametrize("name", ["OrchConfig", "RunInfo", "SweepInfo", "TrialResult", "FetchedRun",
                                  "BiasVarianceReport"])
def test_every_record_a_hook_passes_is_documented_field_by_field(name):
    import dataclasses

    import orchestrator

    entry = re.search(rf"^- `{name}`: (.*?)(?=^- |^#|\Z)", DOC, flags=re.M | re.S)
    assert entry, f"docs/hooks.md does not describe {name}"
    missing = [f.name for f in dataclasses.fields(getattr(orchestrator, name)) if f"`{f.name}`" not in entry.group(1)]
    assert not missing, f"docs/hooks.md: {name} lacks {missing}"


def test_every_hook_has_a_docstring_saying_when_and_what():
    for name, fn in HOOKS.items():
        doc = inspect.getdoc(fn) or ""
        assert len(doc) > 80 and ("Called" in doc or "Return" in doc or "Receives" in doc), name


def test_every_hook_is_exercised_by_a_test():
    sources = "\n".join(p.read_text() for p in (ROOT / "tests").glob("test_*.py") if p.name != "test_docs.py")
    sources += (ROOT / "tests" / "conftest.py").read_text()
    for name in HOOKS:
        assert name in sources, f"no test mentions {name}"


@pytest.mark.parametrize("folder", [".", "pipelines/smoke"])
def test_committed_dvc_yaml_is_what_orch_dvc_writes(folder):
    out = subprocess.run([sys.executable, "-m", "orchestrator", "dvc", "--check", folder], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, f"{folder}/dvc.yaml differs from `orch dvc {folder}`:\n{out.stdout}{out.stderr}"


def test_every_stage_param_is_in_dvc_yaml_and_nothing_else():
    from orchestrator.manager import get_plugin_manager
    from orchestrator.registry import load_tasks

    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for name, reg in load_tasks(get_plugin_manager()).items():
        for stage in reg.task.stages:
            listed = stages[f"{name}_{stage.name}"]
            assert set(listed["params"]) == {f"{name}.{k}" for k in (*stage.params, "seed")}
            assert listed["outs"] == [f"outputs/{name}/{stage.name}"]
            assert {f"outputs/{name}/{i}" for i in stage.inputs} <= set(listed["deps"])


@pytest.mark.parametrize("folder", [".", "pipelines/smoke"])
def test_every_dvc_dependency_exists_or_is_a_stage_output(folder):
    wdir = ROOT / folder
    stages = yaml.safe_load((wdir / "dvc.yaml").read_text())["stages"]
    outs = {out for stage in stages.values() for out in stage["outs"]}
    missing = {dep for stage in stages.values() for dep in stage["deps"]
               if dep not in outs and not (wdir / dep).exists()}
    assert not missing, f"{folder}/dvc.yaml depends on files that do not exist: {sorted(missing)}"


def test_params_yaml_validates_for_every_task():
    from orchestrator.manager import get_plugin_manager
    from orchestrator.params import load_task_params, validate
    from orchestrator.registry import load_tasks
    from orchestrator.space import SweepConfig

    for name, reg in load_tasks(get_plugin_manager()).items():
        params, sweep = load_task_params(reg.task, ROOT / "params.yaml")
        config = validate(SweepConfig, sweep, f"{name}.sweep", "params.yaml")
        assert config.space, f"params.yaml declares no search space for {name}"
