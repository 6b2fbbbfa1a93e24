"""What a task plugin declares (Task, Stage, HumanBaseline) and what trackers are told (RunInfo,
SweepInfo). Plain dataclasses: cheap to import, picklable across sweep worker processes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal, Mapping

if TYPE_CHECKING:
    from pydantic import BaseModel

    from orchestrator.context import StageContext

SPLITS = ("train", "train_dev", "val")
"""Metric prefixes shared by every task: ``train_loss``, ``train_dev_rmse``, ``val_rmse``...
The report calls the ``val`` split "dev", as Ng's bias/variance analysis does."""



def split_metrics(*names: str, prefix: str = "") -> tuple[str, ...]:
    """``{prefix}{split}_{name}`` for every split: ``split_metrics("acc")`` is train_acc,
    train_dev_acc, val_acc; ``prefix="*."`` matches them under any name (``lstm.val_acc``)."""
    return tuple(f"{prefix}{split}_{name}" for name in names for split in SPLITS)


ArtifactKind = Literal["model", "plot", "table", "text", "image", "report", "data"]


@dataclass(frozen=True)
class HumanBaseline:
    """Human-level error on the task's metric: the proxy for Bayes error in the report."""

    error: float
    source: str
    tolerance: float | None = None  # gaps below this count as negligible; default 2% of error


@dataclass(frozen=True)
class Plot:
    """A curve of a stage's ``history.csv`` for ``dvc plots show`` (columns of ``log_epoch``)."""

    y: tuple[str, ...]
    x: str = "epoch"
    title: str = ""
    y_label: str = ""


@dataclass(frozen=True)
class Stage:
    """One step of a task and one DVC stage: ``orch stage TASK NAME`` runs it.

    ``fn`` receives a StageContext and returns metrics (or None). ``params`` lists the param keys
    the stage reads, relative to the task (``lr``, ``gbm``, ``gbm.learning_rate``): they are the
    stage's ``params:`` in dvc.yaml and all that ``ctx.params`` shows it. ``inputs`` names the
    earlier stages whose outputs it reads (``ctx.input_dir``). A ``tracked`` stage opens a tracked
    run; later stages of the same pipeline log into that run. ``plot`` draws its history in DVC.
    ``cache``: ``orch run`` and sweep trials reuse the stage's outputs made before under the same
    params, code, data and inputs (``orchestrator.stage_cache``); False for a stage whose outputs
    depend on anything else (the time, a service it calls).
    """

    name: str
    fn: Callable[["StageContext"], Mapping[str, float] | None]
    params: tuple[str, ...] = ()
    inputs: tuple[str, ...] = ()
    tracked: bool = False
    description: str = ""
    plot: Plot | None = None
    checkpoint_ignores: tuple[str, ...] = ()  # params that may change without voiding a checkpoint (epochs)
    cache: bool = True


@dataclass(frozen=True)
class Artifact:
    """A file the task promises: ``name`` is a glob in ``stage``'s folder (``model.pt``,
    ``samples/epoch_*.txt``). The host logs every match with its kind when the stage ends (files
    of untracked stages when the tracked run starts); ``orch tasks -v`` lists them."""

    name: str
    kind: ArtifactKind
    stage: str
    description: str = ""


@dataclass(frozen=True)
class Task:
    """A task a plugin registers through ``orch_register_tasks``.

    ``metric`` names the error metric (lower is better) that every tracked run logs for each
    split as ``{split}_{metric}``; the report and sweeps read it. ``metrics`` names the other
    metrics its tracked run logs (names or globs, ``*.val_rmspe``): a sweep may optimise or
    constrain those and the split metrics, and a misspelled one is refused before the first trial
    (left empty, sweep metrics are not checked). ``space`` is the default search
    space, overridden by ``<task>.sweep.space`` in params.yaml. ``commands`` are extra actions
    (``predict``, ``generate``) reached through ``orch predict TASK`` / ``orch generate TASK``.
    """

    name: str
    description: str
    params_model: type["BaseModel"]
    metric: str
    human: HumanBaseline
    stages: tuple[Stage, ...]
    artifacts: tuple[Artifact, ...] = ()
    space: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    constraints: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    metrics: tuple[str, ...] = ()
    commands: Mapping[str, Callable[..., Any]] = field(default_factory=dict)

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        from orchestrator.errors import UserError

        names = ", ".join(s.name for s in self.stages)
        raise UserError(f"task {self.name!r} has no stage {name!r} (stages: {names})")

    @property
    def objective(self) -> str:
        return f"val_{self.metric}"

    def logs(self, metric: str) -> bool | None:
        """Whether the tracked run logs ``metric``; None when the task does not say."""
        import fnmatch

        if not self.metrics:
            return None
        known = (*split_metrics(self.metric), *self.metrics)
        return any(fnmatch.fnmatchcase(metric, pattern) for pattern in known)


@dataclass(frozen=True)
class OrchConfig:
    """What ``orch_configure`` hands to plugins."""

    root: Path
    tracking_uri: str | None = None


@dataclass(frozen=True)
class Finding:
    """One line of ``orch doctor``: ``level`` ok, fixed (a repair made) or problem (``hint``: what to do)."""

    level: Literal["ok", "fixed", "problem"]
    what: str
    hint: str = ""


def masked(url: str) -> str:
    """A storage or tracking URL as it may be printed or stored in a tag: its password as ***."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
        if not parts.password:
            return url
        netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    except ValueError:  # not a URL (an invalid port): shown as given, it carries no password field
        return url
    return urlunsplit(parts._replace(netloc=netloc))


@dataclass
class SweepInfo:
    """A sweep's settings, resolved once (task defaults < params.yaml < the CLI) and handed to the
    trackers and to every worker. ``tracking`` is filled by trackers (tracker -> parent run id)."""

    task: str
    study: str
    storage: str
    metric: str
    direction: Literal["minimize", "maximize"] = "minimize"
    n_trials: int = 20
    sampler: Literal["random", "tpe"] = "random"
    seed: int | None = 0
    pruner: Literal["median", "none"] = "median"
    timeout: float | None = None  # seconds per worker
    heartbeat: int = 30  # seconds between a running trial's heartbeats
    grace_period: int = 120  # seconds without one before the trial is lost
    max_retries: int = 2  # reruns of a lost trial
    params: dict[str, Any] = field(default_factory=dict)  # the task's params, nested, before sampling
    space: dict[str, dict] = field(default_factory=dict)  # dotted key -> ParamSpace fields
    constraints: dict[str, dict] = field(default_factory=dict)  # metric -> {"min", "max"}
    tracking: dict[str, str] = field(default_factory=dict)

    def agree(self, key: str, value: str) -> str:
        """The one value every worker of this study uses for ``key``: ``value`` if this call
        stores it first, else the value another worker (on any machine) stored before. A
        tracker creates its parent run, then keeps the agreed one (deleting its own if it lost)."""
        from orchestrator.sweep.agree import agree

        return agree(self.storage, self.study, key, value)

    def agreed(self, key: str) -> str | None:
        """The value agreed for ``key`` so far, or None."""
        from orchestrator.sweep.agree import agreed

        return agreed(self.storage, self.study, key)

    def as_params(self) -> dict[str, Any]:
        """The settings as flat key/value pairs, for a tracker's parent run."""
        from orchestrator.params import flatten

        space = {f"space.{k}": json.dumps(v, sort_keys=True) for k, v in self.space.items()}
        return {**flatten(self.params), **space, "sweep.metric": self.metric, "sweep.direction": self.direction,
                "sweep.trials": self.n_trials, "sweep.sampler": self.sampler}


@dataclass
class RunInfo:
    """One tracked run as trackers see it.

    ``params`` are flattened (``data.path``); ``tags`` carry git commit, plugin, params hash and
    DVC stage. Trackers write their run ids into ``tracking`` (e.g. ``{"mlflow": "3fa..."}``) and
    read ``resume`` to continue a run begun by an earlier stage of the same pipeline.
    """

    task: str
    plugin: str
    plugin_version: str
    name: str
    params: dict[str, Any]
    tags: dict[str, str] = field(default_factory=dict)
    sweep: SweepInfo | None = None
    trial: int | None = None
    resume: dict[str, str] = field(default_factory=dict)
    tracking: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class FetchedRun:
    """A tracked run as ``orch_fetch_run`` returns it. ``download(kind)`` brings the run's
    artifacts of one kind (``model``, ``data``...) into a local folder and returns that folder."""

    task: str | None
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]
    download: Callable[[str], Path]


TrialState = Literal["COMPLETE", "PRUNED", "FAIL", "INTERRUPTED", "LOST", "WAITING", "RUNNING"]


@dataclass(frozen=True)
class TrialResult:
    """One sweep trial, as ``orch_trial_end`` receives it and ``orch_sweep_end`` its best one.

    ``state``: COMPLETE, PRUNED, FAIL (raised, or a non-finite objective; ``reason`` says why),
    INTERRUPTED (Ctrl-C, SIGTERM) or LOST (its worker died: reason "worker lost"), both queued
    again with the same values so that they resume from their checkpoints (``retried_as`` is the
    new trial's number), WAITING (queued) or RUNNING.
    ``violations`` has one entry per constraint, 0 when satisfied."""

    number: int
    state: TrialState
    params: dict[str, Any]
    value: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    violations: list[float] = field(default_factory=list)
    report: dict[str, Any] | None = None
    reason: str | None = None
    tracking: dict[str, str] = field(default_factory=dict)
    retried_as: int | None = None

    @property
    def feasible(self) -> bool:
        return all(v <= 0 for v in self.violations)

    @property
    def counted(self) -> bool:
        """Whether it counts towards the trial budget (an interrupted trial is run again)."""
        return self.state in ("COMPLETE", "PRUNED", "FAIL")
