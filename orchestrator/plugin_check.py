"""``orch plugins --check``: every installed plugin against the contract, one line per problem.

Without running anything: a plugin that did not load (a misspelled hook, arguments the hookspec
lacks, an import error, an API version outside its range), a task that breaks the stage contract
(a param its model lacks, an input that is no earlier stage) or whose declarations are wrong (see
``contract.declaration_problems``), and, as a warning, a params model that accepts unknown keys.
With ``smoke`` (a params file of tiny settings), each task with a section there is also run once
in a throwaway project (``sandbox``): its split metrics, declared metrics, report and every
declared artifact are checked (``contract.run_problems``).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from orchestrator.contract import Problem, declaration_problems
from orchestrator.manager import OrchPluginManager
from orchestrator.registry import load_tasks

__all__ = ["Problem", "check"]


def check(pm: OrchPluginManager, smoke: Path | None = None) -> list[Problem]:
    """The problems found; with ``smoke``, the tasks that have a section in it are also run."""
    from orchestrator.params import read_yaml

    tasks = load_tasks(pm)  # a task hook that raises or returns a broken task turns into an error status
    sections = read_yaml(smoke) if smoke is not None else {}
    problems = [Problem(s.name, "", s.status.removeprefix("error: "))
                for s in pm.statuses.values() if s.status.startswith(("error", "skipped"))]
    for name, reg in tasks.items():
        problems += declaration_problems(reg.task, reg.plugin)
        if name in sections:  # a task without tiny settings there would train on its defaults
            problems += _smoke_run(name, sections[name] or {}, smoke)
    return problems


def _smoke_run(task: str, params: dict, smoke: Path) -> list[Problem]:
    """Run the task on the smoke params in a throwaway project, from the smoke file's folder (its
    params name their data relative to it); what the run shows to be wrong."""
    from orchestrator.sandbox import Sandbox

    with tempfile.TemporaryDirectory(prefix="orch-check-") as tmp:
        box = Sandbox(tmp, workdir=smoke.parent)
        box.write_params(task, **params)
        return box.check_run(task, where=f"its run on {smoke}").problems
