"""The ``orch`` command. Heavy libraries (torch, MLflow, Optuna, pandas) load only inside the
commands that need them, so ``orch --help`` starts fast.

Exit codes: 0 done; 2 usage or config error (one line, no traceback); 1 the run failed.
"""

from __future__ import annotations

import functools
import json
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import click

from orchestrator import __version__
from orchestrator.errors import RunFailed, UserError

EXIT_FAILED, EXIT_USAGE = 1, 2


@dataclass
class CommandEnv:
    """What task commands (``orch predict``, ``orch generate``) receive as click's ``obj``."""

    pm: object
    project: object
    task: object

    def run_artifacts(self, run_id: str):
        """``download(kind) -> folder`` for a tracked run of this task (``--run ID``)."""
        return fetch_run(self.pm, self.task.name, run_id).download

    def pipeline_output(self, stage: str, required: str | None = None) -> Path:
        """The DVC pipeline's output folder of ``stage``, checked to hold ``required``."""
        folder = self.project.outputs(self.task.name) / stage
        if required and not (folder / required).exists():
            raise UserError(f"{folder / required}: not found; run `dvc repro` or pass --run ID")
        return folder


def fetch_run(pm, task: str, run_id: str):
    """What the trackers know of ``--run ID``, checked to be a run of ``task``."""
    found = pm.hook.orch_fetch_run(run_id=run_id)
    if not found:
        raise UserError(f"--run {run_id}: no tracked run with that id")
    if found.task != task:
        raise UserError(f"--run {run_id}: a {found.task!r} run, not {task}")
    return found


def _fail(message: str, code: int) -> None:
    click.echo(f"orch: error: {message}", err=True)
    sys.exit(code)


def handled(fn):
    """Turn the host's errors into one line and an exit code."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as exc:
            _fail(str(exc), EXIT_USAGE)
        except RunFailed as exc:
            _fail(f"run failed: {exc}", EXIT_FAILED)
        except KeyboardInterrupt:
            click.echo("orch: interrupted", err=True)
            sys.exit(130)

    return wrapper


def _setup(ctx: click.Context, params_file: Path | None = None):
    """PluginManager (configured) and project for a command."""
    from orchestrator.manager import get_plugin_manager
    from orchestrator.runner import Project
    from orchestrator.task import OrchConfig

    project = Project.find(params_file)
    pm = get_plugin_manager()
    pm.hook.orch_configure(config=OrchConfig(project.root, ctx.obj["tracking_uri"]))
    return pm, project


def _task_and_params(ctx, task_name: str, params_file: Path | None, overrides: tuple[str, ...]):
    from orchestrator.params import load_task_params
    from orchestrator.registry import get_task

    pm, project = _setup(ctx, params_file)
    reg = get_task(pm, task_name)
    params, sweep = load_task_params(reg.task, project.params_file, list(overrides))
    return pm, project, reg, params, sweep


params_option = click.option("--params", "params_file", type=click.Path(path_type=Path),
                             help="params file (default: params.yaml of the project, if any).")
set_option = click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                          help="override a param, e.g. --set lr=0.01 (repeatable).")


class OrchGroup(click.Group):
    """The built-in commands, plus those plugins add (``orch_register_commands``) and one per verb
    that tasks declare in ``Task.commands`` (``orch predict collab``). Plugins load only when a name
    is not built in, or for the command list of ``orch --help``."""

    def _registered(self) -> dict[str, click.Command]:
        """Commands from ``orch_register_commands`` (cheap: task plugins stay unimported)."""
        if not hasattr(self, "_added"):
            from orchestrator.manager import get_plugin_manager

            self._pm = get_plugin_manager()
            added = click.Group("plugins")
            self._pm.hook.orch_register_commands(cli=added)
            self._added = {n: c for n, c in added.commands.items() if n not in self.commands}
        return self._added

    def _task_verb(self, name: str) -> click.Command | None:
        """``orch VERB TASK`` for a verb some task declares in ``Task.commands``."""
        from orchestrator.registry import load_tasks

        self._registered()
        verbs = {verb for reg in load_tasks(self._pm).values() for verb in reg.task.commands}
        return _task_command(name) if name in verbs else None

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self._registered()})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return self.commands.get(name) or self._registered().get(name) or self._task_verb(name)


@click.group(cls=OrchGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="orch")
@click.option("--tracking-uri", envvar="ORCH_TRACKING_URI", metavar="URI",
              help="tracking store (default: MLFLOW_TRACKING_URI, else sqlite:///<project>/mlflow.db).")
@click.option("-q", "--quiet", is_flag=True, help="no per-epoch lines or progress bars.")
@click.pass_context
def main(ctx: click.Context, tracking_uri: str | None, quiet: bool) -> None:
    """Run deep-learning task plugins as DVC stages, sweep them with Optuna, track them in MLflow.

    Tasks add their own verbs: `orch predict collab`, `orch generate charrnn` (`orch tasks -v`
    lists each task's commands)."""
    ctx.ensure_object(dict)
    ctx.obj.update(tracking_uri=tracking_uri, quiet=quiet)


@main.command()
@handled
def plugins() -> None:
    """List installed plugins: name, distribution, version, status or load error."""
    from orchestrator.manager import get_plugin_manager
    from orchestrator.registry import load_tasks

    pm = get_plugin_manager()
    load_tasks(pm)  # a plugin whose task hook raises shows up as an error too
    rows = [(s.name, s.dist, s.version, s.status) for s in pm.statuses.values()]
    _table(("plugin", "distribution", "version", "status"), rows)


@main.command()
@click.option("-v", "--verbose", is_flag=True, help="also show stages, params, space and artifacts.")
@click.argument("pattern", required=False)
@handled
def tasks(verbose: bool, pattern: str | None) -> None:
    """List registered tasks (optionally only those whose name contains PATTERN)."""
    from orchestrator.manager import get_plugin_manager
    from orchestrator.registry import load_tasks

    found = {n: r for n, r in load_tasks(get_plugin_manager()).items() if not pattern or pattern in n}
    if not verbose:
        _table(("task", "plugin", "metric", "human", "description"),
               [(n, r.plugin, r.task.objective, f"{r.task.human.error:g}", r.task.description) for n, r in found.items()])
        return
    for name, reg in found.items():
        task = reg.task
        click.echo(f"{name}  ({reg.plugin} {reg.version})\n  {task.description}")
        click.echo(f"  metric: {task.objective} (lower is better); human error {task.human.error:g}: {task.human.source}")
        click.echo("  stages: " + " -> ".join(s.name + ("*" if s.tracked else "") for s in task.stages) + "  (* tracked)")
        click.echo("  params:")
        for key, field in task.params_model.model_fields.items():
            click.echo(f"    {key} = {field.default!r}  {field.description or ''}")
        if task.space:
            click.echo("  search space: " + ", ".join(f"{k} {dict(v)}" for k, v in task.space.items()))
        for art in task.artifacts:
            click.echo(f"  artifact {art.name} ({art.kind}): {art.description}")
        if task.commands:
            click.echo("  commands: " + ", ".join(f"orch {c} {name}" for c in task.commands))


@main.command()
@click.argument("task")
@params_option
@set_option
@click.option("--out", "out_dir", type=click.Path(path_type=Path),
              help="keep the stages' outputs in this folder (default: a temporary folder).")
@click.pass_context
@handled
def run(ctx, task: str, params_file, overrides, out_dir) -> None:
    """Run every stage of TASK as one tracked run."""
    from orchestrator.runner import run_task

    pm, project, reg, params, _ = _task_and_params(ctx, task, params_file, overrides)
    workdir = Path(out_dir) if out_dir else Path(tempfile.mkdtemp(prefix=f"orch-{task}-", dir=_scratch(project)))
    try:
        info, metrics = run_task(pm, reg, params, project, workdir, quiet=ctx.obj["quiet"])
        _summary(info, metrics, reg.task, workdir)
    except (UserError, RunFailed, KeyboardInterrupt):
        raise
    except Exception as exc:
        raise RunFailed(f"{type(exc).__name__}: {exc}") from exc
    finally:
        if not out_dir:
            shutil.rmtree(workdir, ignore_errors=True)


@main.command()
@click.argument("task")
@click.argument("stage")
@params_option
@set_option
@click.pass_context
@handled
def stage(ctx, task: str, stage: str, params_file, overrides) -> None:
    """Run one STAGE of TASK into outputs/TASK/STAGE (what dvc.yaml calls)."""
    from orchestrator.runner import run_dvc_stage

    pm, project, reg, params, _ = _task_and_params(ctx, task, params_file, overrides)
    try:
        run_dvc_stage(pm, reg, params, project, stage, quiet=ctx.obj["quiet"])
    except (UserError, RunFailed, KeyboardInterrupt):
        raise
    except Exception as exc:
        raise RunFailed(f"{type(exc).__name__}: {exc}") from exc


@main.command()
@click.argument("task")
@params_option
@set_option
@click.option("--trials", type=click.IntRange(min=1), help="trials to reach in the study (default: sweep.trials).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), help="seconds per worker before stopping.")
@click.option("--jobs", type=click.IntRange(min=1), help="worker processes on this machine.")
@click.option("--sampler", type=click.Choice(["random", "tpe"]), help="default: random.")
@click.option("--metric", metavar="NAME", help="metric to optimise (default: sweep.metric, else val_<task metric>).")
@click.option("--direction", type=click.Choice(["minimize", "maximize"]), help="default: sweep.direction.")
@click.option("--seed", type=int, help="sampler seed.")
@click.option("--storage", metavar="URL", help="Optuna storage (default: sqlite:///<project>/optuna.db).")
@click.option("--study", metavar="NAME", help="study name (default: derived from task, params and space).")
@click.option("--refine", is_flag=True, help="narrow the space around the best trials of --study, in a new study.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), help="where best_params.yaml and trials.md go "
              "(default: sweeps/STUDY).")
@click.pass_context
@handled
def sweep(ctx, task, params_file, overrides, trials, timeout, jobs, sampler, metric, direction, seed, storage, study,
          refine, out_dir):
    """Sweep TASK's hyperparameters with Optuna; re-running the same command resumes."""
    from orchestrator.params import validate
    from orchestrator.space import SweepConfig
    from orchestrator.sweep import plan_sweep, run_sweep

    pm, project, reg, params, raw_sweep = _task_and_params(ctx, task, params_file, overrides)
    source = str(project.params_file or "params")
    config = validate(SweepConfig, raw_sweep, f"{task}.sweep", source)
    cli = {"trials": trials, "timeout": timeout, "jobs": jobs, "sampler": sampler, "seed": seed, "metric": metric,
           "direction": direction}
    config = config.model_copy(update={k: v for k, v in cli.items() if v is not None})
    plan = plan_sweep(reg, project, params, config, study=study, storage=storage, refine=refine)
    out = Path(out_dir) if out_dir else project.root / "sweeps" / plan.study
    best = run_sweep(pm, reg, project, plan, jobs=config.jobs, out_dir=out, tracking_uri=ctx.obj["tracking_uri"],
                     quiet=ctx.obj["quiet"])
    click.echo(f"study {plan.study} ({plan.storage})")
    if best is None:
        raise RunFailed("no trial completed within the constraints; see " + str(out / "trials.md"))
    shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in best.params.items())
    click.echo(f"best trial {best.number}: {plan.metric}={best.value:.4f}  {shown}")
    click.echo(f"wrote {out / 'best_params.yaml'} and {out / 'trials.md'}")


@main.command("dvc")
@click.argument("folder", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--check", is_flag=True, help="fail (with the diff) when dvc.yaml differs from what would be written.")
@handled
def dvc_command(folder: Path | None, check: bool) -> None:
    """Write FOLDER/dvc.yaml (default: the project's) from every installed task's stages."""
    import difflib

    from orchestrator import dvcgen
    from orchestrator.manager import get_plugin_manager
    from orchestrator.params import read_yaml, task_section
    from orchestrator.registry import load_tasks
    from orchestrator.runner import PARAMS_FILE, Project

    wdir = Path(folder) if folder else Project.find().root
    if not wdir.is_dir():
        raise UserError(f"{wdir}: no such folder")
    params_file = wdir / PARAMS_FILE
    tasks = list(load_tasks(get_plugin_manager()).values())
    if not check:
        for name in dvcgen.complete_params(tasks, params_file):
            click.echo(f"added {name}'s default params to {params_file}")
    raw = read_yaml(params_file) if params_file.exists() else {}
    sweeps = {r.task.name for r in tasks if task_section(raw, r.task.name, str(params_file))[1].get("in_pipeline")}
    text = dvcgen.generate(tasks, wdir, sweeps)
    target = wdir / "dvc.yaml"
    current = target.read_text(encoding="utf-8") if target.exists() else ""
    if check:
        if current != text:
            diff = difflib.unified_diff(current.splitlines(True), text.splitlines(True), str(target), "orch dvc")
            click.echo("".join(diff), nl=False)
            _fail(f"{target} is out of date; run `orch dvc{' ' + str(folder) if folder else ''}`", EXIT_FAILED)
        click.echo(f"{target}: up to date ({len(tasks)} tasks)")
        return
    target.write_text(text, encoding="utf-8")
    click.echo(f"wrote {target} ({len(tasks)} tasks, {text.count('cmd: ')} stages)")


@main.command()
@click.argument("task")
@click.option("--run", "run_id", help="a tracked run id (default: the DVC pipeline's outputs).")
@click.option("--study", help="an Optuna study: print the table of every trial instead.")
@click.option("--storage", metavar="URL", help="Optuna storage of --study.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), help="also write report.md/.html/.png here.")
@click.pass_context
@handled
def report(ctx, task, run_id, study, storage, out_dir) -> None:
    """Print TASK's bias/variance report (human, train, train-dev, dev errors; diagnosis)."""
    from orchestrator import report as rep
    from orchestrator.registry import get_task

    pm, project = _setup(ctx)
    reg = get_task(pm, task)
    if study:
        click.echo(_study_table(project, study, storage), nl=False)
        return
    metrics = _run_metrics(pm, project, reg, run_id)
    try:
        built = rep.build(task, reg.task.metric, reg.task.human, metrics)
    except KeyError as exc:
        raise UserError(f"{run_id or 'outputs/' + task}: {exc.args[0]}; was the run finished?") from None
    if out_dir:
        rep.write(built, Path(out_dir))
    click.echo(rep.to_markdown(built), nl=False)


def _run_metrics(pm, project, reg, run_id: str | None) -> dict:
    from orchestrator.context import read_metrics

    if run_id:
        return fetch_run(pm, reg.task.name, run_id).metrics
    base = project.outputs(reg.task.name)
    names = [s.name for s in reg.task.stages]
    metrics = read_metrics({name: base / name for name in names}, names)
    if not metrics:
        raise UserError(f"{base}: no metrics yet; run `dvc repro` or pass --run ID")
    return metrics


def _study_table(project, study: str, storage: str | None) -> str:
    from orchestrator.report import trial_table
    from orchestrator.sweep import default_storage
    from orchestrator.sweep.study import Study

    return trial_table(Study.existing(study, storage or default_storage(project)).results())


def _task_command(kind: str) -> click.Command:
    @click.command(kind, context_settings={"ignore_unknown_options": True, "allow_extra_args": True,
                                          "help_option_names": []},
                  help=f"Run TASK's {kind} command (orch {kind} TASK --help lists its options).")
    @click.argument("task")
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    @click.pass_context
    @handled
    def command(ctx, task: str, args: tuple[str, ...]) -> None:
        from orchestrator.registry import get_task, load_tasks

        pm, project = _setup(ctx)
        reg = get_task(pm, task)
        cmd = reg.task.commands.get(kind)
        if cmd is None:
            offering = [n for n, r in load_tasks(pm).items() if kind in r.task.commands]
            raise UserError(f"task {task!r} has no {kind} command (tasks with one: {', '.join(offering) or 'none'})")
        try:
            cmd.main(list(args), prog_name=f"orch {kind} {task}", obj=CommandEnv(pm, project, reg.task),
                     standalone_mode=False)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            raise UserError(exc.format_message()) from None

    return command




def _scratch(project) -> Path:
    path = project.root / ".orch" / "runs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _summary(info, metrics: dict, task, workdir: Path) -> None:
    ids = ", ".join(f"{k} run {v}" for k, v in info.tracking.items()) or "no tracker"
    click.echo(f"run {info.name} finished ({ids})")
    shown = {k: v for k, v in metrics.items() if k.startswith(("train_", "val_")) or k in task.constraints}
    click.echo("  " + "  ".join(f"{k}={v:.4f}" for k, v in shown.items()))
    reports = sorted(workdir.glob("*/report.json"))  # the report may replace the task's baseline
    if reports:
        report = json.loads(reports[-1].read_text())
        click.echo(f"  human-level {task.metric}: {report['human_error']:g}; diagnosis: {report['diagnosis']}")
    else:
        click.echo(f"  human-level {task.metric}: {task.human.error:g}")


def _table(header: tuple[str, ...], rows: list[tuple]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)] if rows else [len(h) for h in header]
    for row in (header, *rows):
        click.echo("  ".join(str(x).ljust(w) for x, w in zip(row, widths)).rstrip())
