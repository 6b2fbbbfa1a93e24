"""The shape of the house (issue 12's "done when"): no import cycle in the host, small modules, one
plugin layout, training stages that read "build, fit, return metrics", no host chore repeated."""

from __future__ import annotations

import ast
import statistics
from pathlib import Path

import pytest

from conftest import ROOT

HOST = ROOT / "orchestrator"
TASK_PLUGINS = sorted(p for p in (ROOT / "plugins").iterdir() if (p / "stages.py").exists())
LAYOUT = ("__init__.py", "params.py", "data.py", "model.py", "train.py", "stages.py", "report.py", "plots.py",
          "commands.py")


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_imports(path: Path, modules: set[str], root: Path = ROOT) -> set[str]:
    """The host modules ``path`` imports when it is imported (top level, not under TYPE_CHECKING);
    ``from pkg import sub`` counts as importing ``pkg.sub``."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            found |= {f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names}
    return {m for m in found if m in modules and m != name}


def import_cycle(folder: Path, root: Path = ROOT) -> str | None:
    """The first import cycle among the modules under ``folder``, as ``a -> b -> a``, or None."""
    paths = {module_name(p, root): p for p in folder.rglob("*.py")}
    graph = {m: module_imports(p, set(paths), root) for m, p in paths.items()}
    done: set[str] = set()

    def visit(module: str, trail: list[str]) -> str | None:
        if module in trail:
            return " -> ".join([*trail[trail.index(module):], module])
        if module not in done:
            for imported in sorted(graph[module]):
                if cycle := visit(imported, [*trail, module]):
                    return cycle
            done.add(module)
        return None

    return next(filter(None, (visit(m, []) for m in sorted(graph))), None)


def test_the_host_has_no_import_cycle():
    assert import_cycle(HOST) is None


def test_the_cycle_finder_finds_one(tmp_path):
    """The test above can fail: ``from pkg import sub`` and ``from pkg.mod import name`` are edges."""
    host = tmp_path / "orchestrator"
    host.mkdir()
    (host / "__init__.py").write_text("")
    (host / "a.py").write_text("import json\nfrom orchestrator import b\n")
    (host / "b.py").write_text("from orchestrator.c import x\n")
    (host / "c.py").write_text("if True:\n    pass\nfrom orchestrator.a import y\n")
    assert import_cycle(host, tmp_path) == "orchestrator.a -> orchestrator.b -> orchestrator.c -> orchestrator.a"
    (host / "c.py").write_text("x = 1\n")
    assert import_cycle(host, tmp_path) is None


def test_host_modules_are_small():
    sizes = {p.relative_to(ROOT): len(p.read_text().splitlines()) for p in HOST.rglob("*.py")}
    assert statistics.median(sizes.values()) < 150
    assert not {p: n for p, n in sizes.items() if n > 300}


@pytest.mark.parametrize("plugin", TASK_PLUGINS, ids=lambda p: p.name)
def test_every_task_plugin_has_the_one_layout(plugin):
    assert [f for f in LAYOUT if not (plugin / f).exists()] == []


def function_lines(path: Path, name: str) -> int:
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return node.end_lineno - node.lineno + 1
    raise AssertionError(f"{path} has no function {name}")


@pytest.mark.parametrize("plugin", [p for p in TASK_PLUGINS if p.name != "orch_ulmfit"], ids=lambda p: p.name)
def test_each_train_stage_reads_build_fit_return(plugin):
    assert function_lines(plugin / "stages.py", "train") < 30


def test_ulmfits_training_stages_are_short_too():
    stages = ROOT / "plugins" / "orch_ulmfit" / "stages.py"
    for name in ("pretrain", "finetune", "classify", "train_classifier"):
        assert function_lines(stages, name) < 30, name


# what the host does, written again in a plugin (the counts issue 12 measured on main, now zero)
CHORES = {
    "SPLITS = ": "orchestrator.SPLITS",
    "seed_everything(": "the host seeds before each stage",
    "history.csv": "ctx.log_epoch: the host writes the history",
    "torch.load(": "ctx.load_model / orchestrator.load_state: weights only, in one place",
    "log_artifact(": "Task.artifacts: the host logs declared files with their kind",
}


@pytest.mark.parametrize("plugin", TASK_PLUGINS, ids=lambda p: p.name)
def test_no_task_plugin_repeats_a_host_chore(plugin):
    found = [f"{path.name}:{n}: {text!r} ({why})"
             for path in sorted(plugin.rglob("*.py"))
             for n, line in enumerate(path.read_text().splitlines(), 1)
             for text, why in CHORES.items() if text in line]
    assert found == []
