"""The task contract, checked: what ``orch plugins --check`` reports and the pytest kit's
``check_task`` asserts, one ``Problem`` per line.

``declaration_problems`` reads a registered task without running it (params model, human baseline,
search space, constraints, stages); ``run_problems`` reads what a run of it left (its metrics, the
files its stages wrote, the report).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from orchestrator.task import SPLITS, Task


@dataclass(frozen=True)
class Problem:
    plugin: str
    where: str  # "" for the plugin itself, else "task NAME" / "task NAME, artifact GLOB"
    what: str
    warning: bool = False

    def line(self) -> str:
        place = f"plugin {self.plugin!r}" + (f", {self.where}" if self.where else "")
        return f"{'warning' if self.warning else 'problem'}: {place}: {self.what}"


def declaration_problems(task: Task, plugin: str) -> list[Problem]:
    """What is wrong with a task's declarations, read without running it."""
    from pydantic import ValidationError

    from orchestrator.params import flatten, format_error
    from orchestrator.space import ParamSpace

    where = f"task {task.name!r}"
    problems = []

    def problem(what: str, warning: bool = False) -> None:
        problems.append(Problem(plugin, where, what, warning))

    model = task.params_model
    extra = model.model_config.get("extra")
    if extra != "forbid":
        problem(f"{model.__name__} accepts unknown keys (extra={extra!r}): derive it from orchestrator.Params",
                warning=True)
    try:
        defaults = flatten(model().model_dump(mode="json"))
    except ValidationError as exc:
        problem(f"{model.__name__}() fails with its defaults ({format_error(exc, task.name, model)}): "
                "`orch run` without params would fail")
        defaults = {}
    if not (isinstance(task.human.error, (int, float)) and math.isfinite(task.human.error) and task.human.error >= 0):
        problem(f"human baseline error {task.human.error!r} must be a finite number >= 0")
    if not task.human.source.strip():
        problem("human baseline has no source: say where the human-level error comes from")
    if not any(stage.tracked for stage in task.stages):
        problem("no stage is tracked=True: `orch run` would track nothing and a sweep trial would have no run")
    for key, spec in task.space.items():
        if defaults and key not in defaults:
            problem(f"search space key {key!r} is not a param of {model.__name__}")
        try:
            ParamSpace.model_validate(dict(spec))
        except ValidationError as exc:
            problem(f"search space key {key!r}: {' '.join(str(exc.errors()[0]['msg']).split())}")
    for name in task.constraints:
        if task.logs(name) is False:
            problem(f"constraint {name!r} names a metric the task does not declare in Task.metrics")
    return problems


def run_problems(task: Task, plugin: str, metrics: Mapping[str, float], outputs: Path,
                 reported: bool, where_run: str = "its run") -> list[Problem]:
    """What a finished run of ``task`` shows to be wrong: ``metrics`` its final metrics,
    ``outputs`` the folder holding each stage's folder, ``reported`` whether a bias/variance report
    was built."""
    where = f"task {task.name!r}"
    problems = []
    for split in SPLITS:
        name = f"{split}_{task.metric}"
        if name not in metrics:
            problems.append(Problem(plugin, where, f"{where_run} logged no {name}: the report and sweeps read "
                                                   f"{', '.join(f'{s}_{task.metric}' for s in SPLITS)}"))
        elif not math.isfinite(metrics[name]):
            problems.append(Problem(plugin, where, f"{where_run} logged {name} = {metrics[name]}"))
    undeclared = sorted(k for k in metrics if task.logs(k) is False)
    if undeclared:
        problems.append(Problem(plugin, where, f"{where_run} logged metrics that Task.metrics does not declare: "
                                               f"{', '.join(undeclared)}"))
    if not reported:
        problems.append(Problem(plugin, where, f"{where_run} built no bias/variance report "
                                               "(call ctx.bias_variance_report() in a stage after training)"))
    for art in task.artifacts:
        if not any((outputs / art.stage).glob(art.name)):
            problems.append(Problem(plugin, f"{where}, artifact {art.name!r}",
                                    f"declared for stage {art.stage!r} but {where_run} wrote no such file"))
    return problems
