"""``orch new plugin NAME``: start a plugin package from a template."""

from __future__ import annotations

from pathlib import Path

import click

from orchestrator.cli.common import handled
from orchestrator.cli.group import main


@main.group()
def new() -> None:
    """Start something new from a template."""


@new.command()
@click.argument("name")
@click.option("--kind", type=click.Choice(["task", "tracker"]), default="task", show_default=True,
              help="a task (params, stages, a model on data it generates) or a tracker (the lifecycle hooks).")
@click.option("--dir", "folder", type=click.Path(path_type=Path, file_okay=False),
              help="where to write the package (default: ./orch-NAME).")
@handled
def plugin(name: str, kind: str, folder: Path | None) -> None:
    """Write a pip-installable orch plugin package NAME: pyproject.toml with the `orch` entry point,
    the plugin, tests with orch's pytest kit, a README."""
    from orchestrator import scaffold
    from orchestrator.manager import get_plugin_manager
    from orchestrator.registry import load_tasks

    pm = get_plugin_manager()
    scaffold.check_name(name, set(pm.statuses) | set(load_tasks(pm)))
    values = scaffold.values_for(name, kind)
    folder = folder or Path(values["dist"])
    written = scaffold.write_plugin(name, kind, folder)
    click.echo(f"wrote {len(written)} files in {folder}/")
    first = f"orch run {name}" if kind == "task" else "orch run TASK   # any task: its events land in " \
                                                    f".orch/{name}/events.log"
    click.echo(f"next:\n  cd {folder}\n  pip install -e '.[test]'\n  {first}")
    if kind == "task":
        click.echo(f"  orch sweep {name} --trials 3\n  orch dvc && dvc repro   # in a DVC project: its stages join the pipeline")
    click.echo("  pytest")
