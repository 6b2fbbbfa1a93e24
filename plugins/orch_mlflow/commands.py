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
