"""``orch plugins --check``: every installed plugin against the contract, one line per problem.

Without running anything: a plugin that did not load (a misspelled hook, arguments the hookspec
lacks, an import error, an API version outside its range), a task that breaks the stage contract
(a param its model lacks, an input that is no earlier stage), and, as a warning, a params model
that accepts unknown keys (a typo in params.yaml would pass unseen). With ``smoke`` (a params
file of tiny settings), each task with a section there is also run once in a throwaway folder,
and every artifact it declares must match a file of its stage.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from orchestrator.manager import OrchPluginManager
from orchestrator.registry import RegisteredTask, load_tasks


@dataclass(frozen=True)
class Problem:
    plugin: str
    where: str  # "" for the plugin itself, else "task NAME" / "task NAME, artifact GLOB"
    what: str
    warning: bool = False

    def line(self) -> str:
        place = f"plugin {self.plugin!r}" + (f", {self.where}" if self.where else "")
        return f"{'warning' if self.warning else 'problem'}: {place}: {self.what}"


def check(pm: OrchPluginManager, smoke: Path | None = None) -> list[Problem]:
    """The problems found; with ``smoke``, the tasks that have a section in it are also run."""
    from orchestrator.params import read_yaml

    tasks = load_tasks(pm)
    sections = set(read_yaml(smoke)) if smoke is not None else set()  # a task hook that raises or returns a broken task turns into an error status
    problems = [Problem(s.name, "", s.status.removeprefix("error: "))
                for s in pm.statuses.values() if s.status.startswith(("error", "skipped"))]
    for name, reg in tasks.items():
        extra = reg.task.params_model.model_config.get("extra")
        if extra != "forbid":
            problems.append(Problem(reg.plugin, f"task {name!r}", f"{reg.task.params_model.__name__} accepts unknown "
                                    f"keys (extra={extra!r}): derive it from orchestrator.Params", warning=True))
        if name in sections:  # a task without tiny settings there would train on its defaults
            problems += _unproduced_artifacts(pm, reg, smoke)
    return problems


def _unproduced_artifacts(pm: OrchPluginManager, reg: RegisteredTask, smoke: Path) -> list[Problem]:
    """Run the task on the smoke params in a temporary project; the declared artifacts it left out."""
    from orchestrator.errors import RunFailed, UserError
    from orchestrator.params import load_task_params
    from orchestrator.runner import Project, run_task
    from orchestrator.task import OrchConfig

    where = f"task {reg.task.name!r}"
    try:
        params, _ = load_task_params(reg.task, smoke, [], tasks=load_tasks(pm))
    except UserError as exc:
        return [Problem(reg.plugin, where, f"{smoke}: {exc}")]
    with tempfile.TemporaryDirectory(prefix="orch-check-") as tmp:
        root, here = Path(tmp), Path.cwd()
        pm.hook.orch_configure(config=OrchConfig(root, f"sqlite:///{root / 'mlflow.db'}"))
        os.chdir(smoke.parent)  # the smoke params name their data relative to their folder
        try:
            run_task(pm, reg, params, Project(root, smoke), root / "work", quiet=True)
        except (UserError, RunFailed, Exception) as exc:  # noqa: BLE001  (what the plugin did, reported)
            return [Problem(reg.plugin, where, f"a run on {smoke} failed: {type(exc).__name__}: {exc}")]
        finally:
            os.chdir(here)
        return [Problem(reg.plugin, f"{where}, artifact {art.name!r}",
                        f"declared for stage {art.stage!r} but its run on {smoke} wrote no such file")
                for art in reg.task.artifacts if not any((root / "work" / art.stage).glob(art.name))]
