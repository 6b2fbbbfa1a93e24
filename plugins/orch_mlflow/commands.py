"""``orch ui``: the MLflow UI on the project's tracking store, added through ``orch_register_commands``."""

from __future__ import annotations

import os
import subprocess
import sys

import click


@click.command("ui")
@click.option("--port", type=click.IntRange(1, 65535), default=5000, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="address to bind (local only by default).")
@click.pass_context
def ui_command(ctx: click.Context, port: int, host: str) -> None:
    """Open the MLflow UI on the project's tracking store."""
    from orchestrator import Project

    project = Project.find()
    root_obj = ctx.find_root().obj or {}
    uri = root_obj.get("tracking_uri") or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{project.root / 'mlflow.db'}"
    click.echo(f"MLflow UI on http://{host}:{port} (store: {uri}); Ctrl-C stops it", err=True)
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", host, "--port", str(port)]
    if uri.startswith("sqlite:"):
        cmd += ["--default-artifact-root", (project.root / "mlartifacts").as_uri()]
    env = {"MLFLOW_DISABLE_TELEMETRY": "true", **os.environ}
    sys.exit(subprocess.call(cmd, cwd=project.root, env=env))


@click.command("sync")
@click.pass_context
def sync_command(ctx: click.Context) -> None:
    """Send the tracking writes kept while the tracking server was away (.orch/journal)."""
    from orchestrator.cli.common import setup

    from orchestrator import UserError

    pm, _ = setup(ctx.find_root())
    tracker = pm.get_plugin("mlflow")
    before = {run_id: tracker.journal.count(run_id) for run_id in tracker.journal.runs()}
    if not before:
        click.echo("nothing to send: no writes wait in the journal", err=True)
        return
    try:
        left = tracker.replay_all(force=True)
    except UserError as exc:  # the server does not answer at all
        click.echo(f"orch: error: {exc}; {sum(before.values())} write(s) of {len(before)} run(s) wait", err=True)
        sys.exit(1)
    sent = sum(before.values()) - sum(left.values())
    click.echo(f"sent {sent} kept write(s) of {len(before) - len(left)} run(s)", err=True)
    if left:
        click.echo(f"orch: error: the tracking server {tracker.tracking_uri} still does not answer: "
                   f"{sum(left.values())} write(s) of {len(left)} run(s) wait; run `orch sync` again", err=True)
        sys.exit(1)
