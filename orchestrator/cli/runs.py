"""Commands that run a task: ``orch run``, ``orch stage`` (what dvc.yaml calls), ``orch sweep``,
``orch worker`` (joins a sweep's study from another machine)."""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
from pathlib import Path

import click

from orchestrator.cli import last_run
from orchestrator.cli.common import check_environment, handled, params_option, set_option, setup, task_and_params
from orchestrator.cli.group import main
from orchestrator.errors import RunFailed, UserError


restart_option = click.option("--restart", is_flag=True,
                              help="start training over: ignore and remove the checkpoints of an earlier, stopped run, "
                                   "and run every stage even if the stage cache holds its outputs.")


def _no_cache(ctx, param, value: bool) -> bool:
    import os

    if value:  # for the worker processes too
        os.environ["ORCH_CACHE"] = "0"
    return value


no_cache_option = click.option("--no-cache", is_flag=True, callback=_no_cache, expose_value=False,
                               help="run every stage: do not reuse (or keep) outputs in the stage cache.")


@main.command()
@click.argument("task")
@params_option
@set_option
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False),
              help="keep the stages' outputs in this folder (default: a temporary folder).")
@restart_option
@no_cache_option
@click.pass_context
@handled
def run(ctx, task: str, params_file, overrides, out_dir, restart) -> None:
    """Run every stage of TASK as one tracked run."""
    from orchestrator.runner import run_task

    pm, project, reg, params, _ = task_and_params(ctx, task, params_file, overrides)
    workdir = Path(out_dir) if out_dir else Path(tempfile.mkdtemp(prefix=f"orch-{task}-", dir=_scratch(project)))
    try:
        info, metrics = run_task(pm, reg, params, project, workdir, quiet=ctx.obj["quiet"], restart=restart)
        last_run.remember(project.scratch, info, metrics)
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
@restart_option
@click.pass_context
@handled
def stage(ctx, task: str, stage: str, params_file, overrides, restart) -> None:
    """Run one STAGE of TASK into outputs/TASK/STAGE (what dvc.yaml calls)."""
    from orchestrator.runner import run_dvc_stage

    pm, project, reg, params, _ = task_and_params(ctx, task, params_file, overrides)
    try:
        run_dvc_stage(pm, reg, params, project, stage, quiet=ctx.obj["quiet"], restart=restart)
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
@click.option("--storage", metavar="URL", help="Optuna storage: sqlite:///PATH, postgresql://USER:PW@HOST/DB or journal:///SHARED/PATH.log "
                   "(default: sqlite:///<project>/optuna.db).")
@click.option("--study", metavar="NAME", help="study name (default: derived from task, params and space).")
@click.option("--refine", is_flag=True, help="narrow the space around the best trials of --study, in a new study.")
@click.option("--gpus-per-trial", type=click.IntRange(min=1), help="GPUs each trial gets to itself (each worker "
              "process sees only its own; an error on a machine without enough).")
@click.option("--launcher", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="where the --jobs workers run: processes here, or Ray actors (pip install 'orch[ray]').")
@click.option("--ray-address", metavar="ADDRESS", help="the Ray cluster to join (default: a Ray instance "
              "started here).")
@click.option("--cpus-per-trial", type=click.IntRange(min=1), default=1, show_default=True,
              help="CPUs each Ray worker asks for.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False), help="where best_params.yaml and trials.md go "
              "(default: sweeps/STUDY).")
@no_cache_option
@click.pass_context
@handled
def sweep(ctx, task, params_file, overrides, trials, timeout, jobs, sampler, metric, direction, seed, storage, study,
          refine, gpus_per_trial, launcher, ray_address, cpus_per_trial, out_dir):
    """Sweep TASK's hyperparameters with Optuna; re-running the same command resumes."""
    from orchestrator.params import validate
    from orchestrator.space import SweepConfig
    from orchestrator.sweep import plan_sweep

    pm, project, reg, params, raw_sweep = task_and_params(ctx, task, params_file, overrides)
    source = str(project.params_file or "params")
    config = validate(SweepConfig, raw_sweep, f"{task}.sweep", source)
    cli = {"trials": trials, "timeout": timeout, "jobs": jobs, "sampler": sampler, "seed": seed, "metric": metric,
           "direction": direction}
    config = config.model_copy(update={k: v for k, v in cli.items() if v is not None})
    if ray_address and launcher != "ray":
        raise UserError("--ray-address: only with --launcher ray")
    plan = plan_sweep(reg, project, params, config, study=study, storage=storage, refine=refine)
    ray = {"address": ray_address, "cpus_per_trial": cpus_per_trial} if launcher == "ray" else None
    _sweep_and_summary(ctx, pm, reg, project, plan, config.jobs, gpus_per_trial, out_dir, ray=ray)


@main.command()
@click.argument("task")
@click.option("--storage", metavar="URL", envvar="ORCH_STORAGE", required=True,
              help="the study's Optuna storage, as `orch sweep` was given it (or ORCH_STORAGE).")
@click.option("--study", metavar="NAME", required=True, help="the study to join (`orch sweep` prints its name).")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True, help="worker processes on this machine.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), help="seconds before this worker stops.")
@click.option("--gpus-per-trial", type=click.IntRange(min=1), help="GPUs each trial gets to itself (each worker "
              "process sees only its own; an error on a machine without enough).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False), help="where best_params.yaml and "
              "trials.md go (default: sweeps/STUDY).")
@click.pass_context
@handled
def worker(ctx, task, storage, study, jobs, timeout, gpus_per_trial, out_dir):
    """Join a study that `orch sweep` started (on any machine) and run its trials until its
    budget is met, with the settings recorded on the study (but the timeout: each worker's own)."""
    from orchestrator.registry import get_task
    from orchestrator.sweep.study import Study

    pm, project = setup(ctx)
    reg = get_task(pm, task)
    check_environment()
    plan = dataclasses.replace(Study.existing(study, storage).settings(storage), timeout=timeout)
    if plan.task != task:
        raise UserError(f"--study {study}: that study sweeps task {plan.task}, not {task}")
    _sweep_and_summary(ctx, pm, reg, project, plan, jobs, gpus_per_trial, out_dir)


@main.command("_sweep-worker", hidden=True)
def sweep_worker() -> None:
    """One of the worker processes of ``orch sweep --jobs N`` (the sweep starts them, with their
    arguments pickled on stdin)."""
    import sys

    from orchestrator.sweep.workers import serve_worker

    serve_worker(sys.stdin.buffer)


def _sweep_and_summary(ctx, pm, reg, project, plan, jobs: int, gpus_per_trial: int | None,
                       out_dir: Path | None, ray: dict | None = None) -> None:
    import functools

    from orchestrator.sweep import gpus, run_sweep
    from orchestrator.task import masked

    # checked before the study is touched: too few GPUs, or no Ray cluster, writes nothing
    devices, launcher = None, None
    if ray is not None:
        from orchestrator.sweep import ray_launcher

        ray_launcher.start_ray(ray["address"], gpus_per_trial)
        launcher = functools.partial(ray_launcher.run_ray, cpus_per_trial=ray["cpus_per_trial"],
                                     gpus_per_trial=gpus_per_trial)
    elif gpus_per_trial:
        devices = gpus.assign(gpus.visible_gpus(), jobs, gpus_per_trial)
    out = Path(out_dir) if out_dir else project.root / "sweeps" / plan.study
    best = run_sweep(pm, reg, project, plan, jobs=jobs, out_dir=out, tracking_uri=ctx.obj["tracking_uri"],
                     quiet=ctx.obj["quiet"], devices=devices, launcher=launcher)
    click.echo(f"study {plan.study} ({masked(plan.storage)})")
    if best is None:
        raise RunFailed("no trial completed within the constraints; see " + str(out / "trials.md"))
    shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in best.params.items())
    click.echo(f"best trial {best.number}: {plan.metric}={best.value:.4f}  {shown}")
    click.echo(f"wrote {out / 'best_params.yaml'} and {out / 'trials.md'}")


def _scratch(project) -> Path:
    path = project.scratch / "runs"
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
