"""``orch doctor``: check the project and repair what is safe to repair."""

from __future__ import annotations

import sys

import click

from orchestrator.cli.common import handled, setup
from orchestrator.cli.group import main


@main.command()
@click.pass_context
@handled
def doctor(ctx: click.Context) -> None:
    """Check plugins, params, open runs of dead processes, scratch space and the tracking store;
    close lost runs and send writes kept during a tracking outage. Exit 1 if a problem is left."""
    from orchestrator.doctor import checkup

    pm, project = setup(ctx)
    findings = checkup(pm, project)
    width = max(len(f.level) for f in findings)
    for f in findings:
        click.echo(f"{f.level.ljust(width)}  {f.what}" + (f"  ({f.hint})" if f.hint else ""))
    if any(f.level == "problem" for f in findings):
        sys.exit(1)
