"""What every command shares: one-line errors and exit codes, the configured PluginManager and
project, the task's params, the --params/--set options, the environment task commands receive."""

from __future__ import annotations

import functools
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import click

from orchestrator.errors import RunFailed, UserError
from orchestrator.interrupt import Interrupted

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


def fail(message: str, code: int) -> None:
    click.echo(f"orch: error: {message}", err=True)
    sys.exit(code)


def handled(fn):
    """Turn the host's errors into one line and an exit code."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as exc:
            fail(str(exc), EXIT_USAGE)
        except RunFailed as exc:
            fail(f"run failed: {exc}", EXIT_FAILED)
        except KeyboardInterrupt as exc:
            stop = Interrupted.of(exc)
            click.echo("orch: interrupted" if stop.signum == signal.SIGINT else f"orch: stopped by {stop.signal_name}",
                       err=True)
            sys.exit(stop.exit_code)

    return wrapper


def setup(ctx: click.Context, params_file: Path | None = None):
    """PluginManager (configured) and project for a command."""
    from orchestrator.manager import get_plugin_manager
    from orchestrator.runner import Project
    from orchestrator.task import OrchConfig

    project = Project.find(params_file)
    pm = get_plugin_manager()
    pm.hook.orch_configure(config=OrchConfig(project.root, ctx.obj["tracking_uri"]))
    return pm, project


def task_and_params(ctx, task_name: str, params_file: Path | None, overrides: tuple[str, ...]):
    from orchestrator.params import load_task_params
    from orchestrator.registry import get_task, load_tasks

    pm, project = setup(ctx, params_file)
    reg = get_task(pm, task_name)
    params, sweep = load_task_params(reg.task, project.params_file, list(overrides), tasks=load_tasks(pm))
    check_environment()
    return pm, project, reg, params, sweep


def check_environment() -> None:
    """Settings read from the environment by commands that train, refused before anything starts."""
    from orchestrator.checkpoint import checkpoint_every

    checkpoint_every()


params_option = click.option("--params", "params_file", type=click.Path(path_type=Path),
                             help="params file (default: params.yaml of the project, if any).")
set_option = click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                          help="override a param, e.g. --set lr=0.01 (repeatable).")


def table(header: tuple[str, ...], rows: list[tuple]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)] if rows else [len(h) for h in header]
    for row in (header, *rows):
        click.echo("  ".join(str(x).ljust(w) for x, w in zip(row, widths)).rstrip())
