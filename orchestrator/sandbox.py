"""A throwaway project: a folder with its own params file, MLflow store (SQLite) and Optuna
storage, where a task runs and sweeps in this process with every installed plugin, and where the
real ``orch`` and ``dvc`` commands run too. The pytest kit (``orchestrator.testing``) hands one to
each test; ``orch plugins --check --smoke`` runs each task in one.

    box = Sandbox(tmp_path)
    result = box.run("collab", epochs=1, data="ml-tiny")    # params as in params.yaml's section
    result.metrics["val_rmse"], result.artifacts["train/model.pt"], result.mlflow_run.info.status
    box.check("collab", epochs=1, data="ml-tiny").errors   # the contract: one Problem per line
    box.sweep("collab", trials=3, epochs=1)                # a SweepResult: trials, best, parent run
    box.orch("tasks"); box.init_dvc(); box.orch("dvc"); box.dvc("repro")
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

from orchestrator.contract import Problem, declaration_problems, run_problems
from orchestrator.hookspecs import hookimpl
from orchestrator.task import RunInfo, TrialResult


@dataclass
class RunResult:
    """One ``Sandbox.run``: its metrics, the folder of its stages' outputs, what the trackers were
    handed (``artifacts``: path under ``outputs`` -> kind; ``epochs``: (epoch, metrics) in order),
    the bias/variance report, and the MLflow run."""

    task: str
    run: RunInfo
    metrics: dict[str, float]
    outputs: Path
    tracking_uri: str
    artifacts: dict[str, str] = field(default_factory=dict)
    epochs: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    report: Any = None  # the BiasVarianceReport, when a stage built one

    @property
    def mlflow_run(self) -> Any:
        """The run in the sandbox's MLflow store (an ``mlflow.entities.Run``), or None without MLflow."""
        run_id = self.run.tracking.get("mlflow")
        return None if run_id is None else _client(self.tracking_uri).get_run(run_id)

    def files(self, stage: str) -> list[str]:
        """The files a stage wrote, relative to its folder."""
        folder = self.outputs / stage
        return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


@dataclass
class SweepResult:
    study: str
    trials: list[TrialResult]
    best: TrialResult | None
    out_dir: Path
    tracking: dict[str, str]  # tracker -> the parent run's id

    def states(self) -> list[str]:
        return [t.state for t in self.trials]


@dataclass
class Checked:
    """What ``Sandbox.check`` found, and the run it made (None when the run failed or never began)."""

    problems: list[Problem]
    result: RunResult | None = None

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if not p.warning]


class _Recorder:
    """Sees a run through the lifecycle hooks, as a tracker does."""

    def __init__(self) -> None:
        self.artifacts: list[tuple[Path, str]] = []
        self.epochs: list[tuple[int, dict[str, float]]] = []
        self.report: Any = None

    @hookimpl
    def orch_epoch_end(self, run, epoch, metrics):
        self.epochs.append((epoch, dict(metrics)))

    @hookimpl
    def orch_artifact(self, run, path, kind):
        self.artifacts.append((Path(path), kind))

    @hookimpl
    def orch_report_built(self, run, report, files):
        self.report = report
        self.artifacts += [(Path(f), "report") for f in files]


class Sandbox:
    """A throwaway project in ``root``. ``plugins``: objects with hook implementations registered
    in this process beside the installed ones (a tracker or task under test that is not installed;
    the ``orch`` commands in a subprocess do not see them). ``workdir``: the working folder of runs
    in this process, where relative paths in params resolve (default: ``root``)."""

    def __init__(self, root: Path, plugins: Mapping[str, object] | None = None, workdir: Path | None = None) -> None:
        self.root = Path(root).resolve()
        self.workdir = Path(workdir).resolve() if workdir else self.root
        self.root.mkdir(parents=True, exist_ok=True)
        self.params_file = self.root / "params.yaml"
        self.tracking_uri = f"sqlite:///{self.root / 'mlflow.db'}"
        self.storage = f"sqlite:///{self.root / 'optuna.db'}"
        self.plugins = dict(plugins or {})
        self._runs = 0

    # -- params -----------------------------------------------------------------------------------

    def write_params(self, task: str, **params: Any) -> Path:
        """Set these keys of ``task``'s section of the sandbox's params.yaml (its ``sweep`` key
        included); the keys set before stay, as ``--set`` would leave them."""
        import yaml

        from orchestrator.params import read_yaml

        raw = read_yaml(self.params_file) if self.params_file.exists() else {}
        raw[task] = {**(raw.get(task) or {}), **params}
        self.params_file.write_text(yaml.safe_dump(raw, sort_keys=False))
        return self.params_file

    # -- in this process --------------------------------------------------------------------------

    def plugin_manager(self, *extra: object):
        """The installed plugins, ``self.plugins`` and ``extra``, configured for this sandbox."""
        from orchestrator.manager import get_plugin_manager
        from orchestrator.task import OrchConfig

        pm = get_plugin_manager()
        for name, plugin in self.plugins.items():
            pm.add_plugin(plugin, name)  # isolated as an installed plugin is
        for plugin in extra:
            pm.register(plugin)
        pm.hook.orch_configure(config=OrchConfig(self.root, self.tracking_uri))
        return pm

    def _task(self, pm, name: str, params: Mapping[str, Any]):
        from orchestrator.params import load_task_params
        from orchestrator.registry import get_task, load_tasks

        reg = get_task(pm, name)
        if params:
            self.write_params(name, **params)
        file = self.params_file if self.params_file.exists() else None
        values, sweep = load_task_params(reg.task, file, [], tasks=load_tasks(pm))
        return reg, values, sweep

    def run(self, task: str, **params: Any) -> RunResult:
        """``orch run TASK`` in this process, ``params`` set in its params.yaml section; the stages'
        outputs stay in ``result.outputs``. As ``orch run`` does, it reuses stages from the
        sandbox's stage cache (a second run with the same params trains nothing; ``ORCH_CACHE=0``
        turns that off). Errors propagate (UserError, RunFailed, the stage's own)."""
        from orchestrator.runner import Project, run_task

        recorder = _Recorder()
        with self.inside():
            pm = self.plugin_manager(recorder)
            reg, values, _ = self._task(pm, task, params)
            self._runs += 1
            outputs = self.root / "runs" / f"{task}-{self._runs}"
            info, metrics = run_task(pm, reg, values, Project(self.root, self.params_file), outputs, quiet=True)
        artifacts = {_relative(p, outputs): kind for p, kind in recorder.artifacts}
        return RunResult(task, info, metrics, outputs, self.tracking_uri, artifacts, recorder.epochs, recorder.report)

    def sweep(self, task: str, trials: int = 3, jobs: int = 1, **params: Any) -> SweepResult:
        """``orch sweep TASK --trials N --jobs J`` in this process (workers in processes when
        ``jobs`` > 1), with ``params`` (and its ``sweep`` key) as the task's section."""
        from orchestrator.params import validate
        from orchestrator.runner import Project
        from orchestrator.space import SweepConfig
        from orchestrator.sweep import plan_sweep, run_sweep
        from orchestrator.sweep.study import Study

        with self.inside():
            pm = self.plugin_manager()
            reg, values, raw_sweep = self._task(pm, task, params)
            project = Project(self.root, self.params_file)
            config = validate(SweepConfig, raw_sweep, f"{task}.sweep", str(self.params_file))
            config = config.model_copy(update={"trials": trials, "jobs": jobs})
            plan = plan_sweep(reg, project, values, config, storage=self.storage)
            out = self.root / "sweeps" / plan.study
            best = run_sweep(pm, reg, project, plan, jobs=jobs, out_dir=out, tracking_uri=self.tracking_uri)
            results = Study.existing(plan.study, plan.storage).results()
        return SweepResult(plan.study, results, best, out, dict(plan.tracking))

    def check(self, task: str, **params: Any) -> Checked:
        """The task against the contract: its declarations, then one run on ``params`` (tiny
        settings) and what it logged, wrote and reported. No errors: it meets the contract."""
        return self._check(task, params, declarations=True, where="its run")

    def check_run(self, task: str, params: Mapping[str, Any] | None = None, *, where: str = "its run") -> Checked:
        """Only what one run on ``params`` shows (``check`` without the declarations); ``where``
        names the run in the problems."""
        return self._check(task, params or {}, declarations=False, where=where)

    def _check(self, task: str, params: Mapping[str, Any], declarations: bool, where: str) -> Checked:
        from orchestrator.registry import load_tasks

        pm = self.plugin_manager()
        tasks = load_tasks(pm)
        if task not in tasks:  # the plugins that did not load may say why
            return Checked([Problem(s.name, "", s.status) for s in pm.statuses.values() if s.status.startswith("error")]
                           + [Problem("?", f"task {task!r}", f"no loaded plugin registers it (tasks: "
                                                            f"{', '.join(tasks) or 'none'})")])
        reg = tasks[task]
        problems = declaration_problems(reg.task, reg.plugin) if declarations else []
        try:
            result = self.run(task, **params)
        except Exception as exc:  # noqa: BLE001  (what the plugin did, reported)
            return Checked([*problems, Problem(reg.plugin, f"task {task!r}", f"{where} failed: {type(exc).__name__}: {exc}")])
        problems += run_problems(reg.task, reg.plugin, result.metrics, result.outputs, result.report is not None, where)
        status = getattr(result.mlflow_run, "info", None)
        if status is not None and status.status != "FINISHED":
            problems.append(Problem(reg.plugin, f"task {task!r}", f"{where} is {status.status} in MLflow, not FINISHED"))
        return Checked(problems, result)

    @contextlib.contextmanager
    def inside(self) -> Iterator[Path]:
        """The sandbox's working folder as this process's (relative data paths in params resolve there)."""
        here = Path.cwd()
        os.chdir(self.workdir)
        try:
            yield self.workdir
        finally:
            os.chdir(here)

    @property
    def client(self) -> Any:
        """An MlflowClient of the sandbox's store."""
        return _client(self.tracking_uri)

    # -- the real commands ------------------------------------------------------------------------

    def orch(self, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
        """The ``orch`` command in a subprocess, in this sandbox (``check``: raise on a non-zero exit,
        with its stderr)."""
        return self._command([sys.executable, "-m", "orchestrator", *args], timeout, check)

    def init_dvc(self) -> None:
        """Make the sandbox a git and DVC repository (no analytics, no remote)."""
        for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"], ["dvc", "config", "core.analytics", "false"]):
            self._command(cmd, 120, True)

    def dvc(self, *args: str, timeout: float = 900, check: bool = True) -> subprocess.CompletedProcess:
        return self._command(["dvc", *args], timeout, check)

    def _command(self, cmd: list[str], timeout: float, check: bool) -> subprocess.CompletedProcess:
        env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
               "MLFLOW_TRACKING_URI": self.tracking_uri, "GIT_AUTHOR_NAME": "orch", "GIT_AUTHOR_EMAIL": "orch@localhost",
               "GIT_COMMITTER_NAME": "orch", "GIT_COMMITTER_EMAIL": "orch@localhost",
               "DVC_NO_ANALYTICS": "1"}  # `dvc init` starts a daemon to report it, before its config can say no
        done = subprocess.run(cmd, cwd=self.root, env=env, capture_output=True, text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} exited {done.returncode}:\n{done.stderr[-4000:]}")
        return done


def _relative(path: Path, folder: Path) -> str:
    try:
        return str(path.resolve().relative_to(folder.resolve()))
    except ValueError:
        return str(path)


def _client(uri: str) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)
