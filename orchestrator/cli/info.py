"""Commands that look: ``orch plugins``, ``orch tasks``, ``orch report``, ``orch dvc``."""

from __future__ import annotations

from pathlib import Path

import click

from orchestrator.cli.common import EXIT_FAILED, fail, fetch_run, handled, setup, table
from orchestrator.cli.group import main
from orchestrator.errors import UserError


@main.command()
@click.option("--check", is_flag=True, help="check every plugin against the contract: one line per problem, "
                                           "exit 1 when there is any.")
@click.option("--smoke", type=click.Path(dir_okay=False, exists=True, path_type=Path), metavar="PARAMS",
              help="with --check: also run each task once on these tiny params and check its declared artifacts.")
@handled
def plugins(check: bool, smoke: Path | None) -> None:
    """List installed plugins: name, distribution, version, status or load error."""
    from orchestrator.manager import get_plugin_manager
    from orchestrator.registry import load_tasks

    pm = get_plugin_manager()
    load_tasks(pm)  # a plugin whose task hook raises shows up as an error too
    if smoke and not check:
        raise UserError("--smoke goes with --check")
    if check:
        from orchestrator.plugin_check import check as check_plugins

        problems = check_plugins(pm, smoke.resolve() if smoke else None)
        for problem in problems:
            click.echo(problem.line())
        errors = sum(not p.warning for p in problems)
        click.echo(f"{len(pm.statuses)} plugin(s) checked: {errors} problem(s), {len(problems) - errors} warning(s)")
        if errors:
            raise SystemExit(EXIT_FAILED)
        return
    rows = [(s.name, s.dist, s.version, s.status) for s in pm.statuses.values()]
    table(("plugin", "distribution", "version", "status"), rows)


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
        table(("task", "plugin", "metric", "human", "description"),
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
        space, source = _sweep_space(reg)
        if space:
            click.echo(f"  search space ({source}): " + ", ".join(f"{k} {v}" for k, v in space.items()))
        if task.metrics:
            click.echo("  other metrics: " + ", ".join(task.metrics))
        for art in task.artifacts:
            click.echo(f"  artifact {art.name} ({art.kind}): {art.description}")
        if task.commands:
            click.echo("  commands: " + ", ".join(f"orch {c} {name}" for c in task.commands))


def _sweep_space(reg) -> tuple[dict, str]:
    """The space ``orch sweep`` would use here: params.yaml's ``<task>.sweep.space``, else the task's."""
    from orchestrator.params import load_task_params, validate
    from orchestrator.runner import Project
    from orchestrator.space import SweepConfig

    default = {k: dict(v) for k, v in reg.task.space.items()}
    project = Project.find()
    if project.params_file is None:
        return default, "the task's default"
    try:
        _, sweep = load_task_params(reg.task, project.params_file, [])
        config = validate(SweepConfig, sweep, f"{reg.task.name}.sweep", str(project.params_file))
    except UserError as exc:
        return default, f"the task's default; {exc}"
    if config.space:
        return {k: v.model_dump(exclude_none=True) for k, v in config.space.items()}, str(project.params_file)
    return default, "the task's default"


@main.command("dvc")
@click.argument("folder", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--check", is_flag=True, help="fail (with the diff) when dvc.yaml differs from what would be written.")
@click.option("--task", "only", multiple=True, metavar="NAME", help="only this task's stages (repeatable; default: "
              "every installed task).")
@handled
def dvc_command(folder: Path | None, check: bool, only: tuple[str, ...]) -> None:
    """Write FOLDER/dvc.yaml (default: the project's) from every installed task's stages."""
    import difflib

    from orchestrator import dvcgen
    from orchestrator.manager import get_plugin_manager
    from orchestrator.params import read_yaml, task_section
    from orchestrator.registry import get_task, load_tasks
    from orchestrator.runner import PARAMS_FILE, Project

    wdir = Path(folder) if folder else Project.find().root
    if not wdir.is_dir():
        raise UserError(f"{wdir}: no such folder")
    params_file = wdir / PARAMS_FILE
    pm = get_plugin_manager()
    tasks = [get_task(pm, name) for name in dict.fromkeys(only)] if only else list(load_tasks(pm).values())
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
            fail(f"{target} is out of date; run `orch dvc{' ' + str(folder) if folder else ''}`", EXIT_FAILED)
        click.echo(f"{target}: up to date ({len(tasks)} tasks)")
        return
    target.write_text(text, encoding="utf-8")
    click.echo(f"wrote {target} ({len(tasks)} tasks, {text.count('cmd: ')} stages)")


@main.command()
@click.argument("task")
@click.option("--run", "run_id", help="a tracked run id (default: the DVC pipeline's outputs).")
@click.option("--study", help="an Optuna study: print the table of every trial instead.")
@click.option("--storage", metavar="URL", help="Optuna storage of --study.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False), help="also write report.md/.html/.png here.")
@click.pass_context
@handled
def report(ctx, task, run_id, study, storage, out_dir) -> None:
    """Print TASK's bias/variance report (human, train, train-dev, dev errors; diagnosis)."""
    from orchestrator import report as rep
    from orchestrator.registry import get_task

    pm, project = setup(ctx)
    reg = get_task(pm, task)
    if study:
        click.echo(_studytable(project, study, storage), nl=False)
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
    from orchestrator.cli import last_run

    base = project.outputs(reg.task.name)
    names = [s.name for s in reg.task.stages]
    files = [base / name / "metrics.json" for name in names if (base / name / "metrics.json").exists()]
    pipeline = max((f.stat().st_mtime for f in files), default=None)
    last = last_run.recall(project.scratch, reg.task.name)
    if last is not None and (pipeline is None or last[1] > pipeline):  # the newer of the two
        click.echo(f"orch: the last `orch run {reg.task.name}`: {last[0]['name']} (--run ID for another)", err=True)
        return last[0]["metrics"]
    metrics = read_metrics({name: base / name for name in names}, names)
    if not metrics:
        raise UserError(f"{base}: no metrics yet; run `orch run {reg.task.name}` or `dvc repro`, or pass --run ID")
    return metrics


def _studytable(project, study: str, storage: str | None) -> str:
    from orchestrator.report import trial_table
    from orchestrator.sweep import default_storage
    from orchestrator.sweep.study import Study

    return trial_table(Study.existing(study, storage or default_storage(project)).results())
