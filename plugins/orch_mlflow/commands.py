"""``orch ui`` (the MLflow UI on the project's tracking store), ``orch server`` (a tracking server
that workers on many machines log to) and ``orch sync``, added through ``orch_register_commands``."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import click

# defaults the user's environment overrides: no telemetry; no GenAI job runners (MLflow 3 starts
# about eight huey consumer processes for scoring and trace jobs, 250 MB each, that experiment
# tracking never uses)
SERVER_ENV = {"MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


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
    env = {**SERVER_ENV, **os.environ}
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


@click.command("server")
@click.option("--backend-store-uri", "store", metavar="URL", help="where runs are kept: "
              "postgresql://USER:PASSWORD@HOST:PORT/DB to scale out (pip install 'orch[server]'); "
              "default: the project's sqlite:///mlflow.db.")
@click.option("--artifacts-destination", "artifacts", metavar="URI", help="where the server keeps artifacts "
              "(a folder, s3://...); default: the project's mlartifacts folder.")
@click.option("--host", default="127.0.0.1", show_default=True, help="address to bind (local only by default; "
              "0.0.0.0 for workers on other machines).")
@click.option("--port", type=click.IntRange(1, 65535), default=5000, show_default=True)
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True, help="server processes.")
@click.pass_context
def server_command(ctx: click.Context, store: str | None, artifacts: str | None, host: str, port: int,
                   workers: int) -> None:
    """Start an MLflow tracking server for runs and sweeps on many machines; prints the
    MLFLOW_TRACKING_URI to export on each of them. Ctrl-C stops it."""
    from orchestrator import Project, UserError
    from orchestrator.task import masked

    project = Project.find()
    store = store or f"sqlite:///{project.root / 'mlflow.db'}"
    artifacts = artifacts or str(project.root / "mlartifacts")
    try:
        check_backend(store)
        check_port(host, port)
    except UserError as exc:
        click.echo(f"orch: error: {exc}", err=True)
        sys.exit(2)
    name = socket.getfqdn() if host in ("0.0.0.0", "::") else host
    click.echo(f"export MLFLOW_TRACKING_URI=http://{name}:{port}")
    click.echo(f"MLflow tracking server on {host}:{port} (store: {masked(store)}, artifacts: {artifacts}); "
               "Ctrl-C stops it", err=True)
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", store, "--artifacts-destination",
           artifacts, "--serve-artifacts", "--host", host, "--port", str(port), "--workers", str(workers)]
    if name != host:  # reached by this machine's name too, not only by localhost and private IPs
        cmd += ["--allowed-hosts", ",".join(allowed_hosts(port))]
    env = {**SERVER_ENV, **os.environ}
    server = subprocess.Popen(cmd, cwd=project.root, env=env)
    try:
        sys.exit(server.wait())
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: the server shuts its workers down too
        from orchestrator.interrupt import Interrupted

        server.terminate()
        server.wait()
        sys.exit(Interrupted.of(exc).exit_code)


def check_backend(store: str) -> None:
    """A backend store the server could not open is one line here, not the server's traceback:
    a missing driver, an unreachable host, a wrong password (always masked)."""
    from orchestrator import UserError
    from orchestrator.errors import database_reason
    from orchestrator.task import masked

    if not store.startswith("postgresql"):
        return
    import sqlalchemy

    try:
        engine = sqlalchemy.create_engine(store, connect_args={"connect_timeout": 10})
    except ImportError:
        raise UserError(f"--backend-store-uri {masked(store)}: its database driver is not installed; "
                        "pip install 'orch[server]' (psycopg)") from None
    try:
        with engine.connect():
            pass
    except sqlalchemy.exc.SQLAlchemyError as exc:
        reason = database_reason(exc)
        raise UserError(f"--backend-store-uri {masked(store)}: cannot connect: {reason}") from None
    finally:
        engine.dispose()


def check_port(host: str, port: int) -> None:
    from orchestrator import UserError

    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise UserError(f"--port {port}: cannot listen on {host}:{port} ({exc.strerror}); "
                            "choose another --port") from None


def allowed_hosts(port: int) -> list[str]:
    """MLflow's default Host headers (localhost, private IPs) and this machine's own names."""
    from mlflow.server.security_utils import get_default_allowed_hosts

    names = {socket.gethostname(), socket.getfqdn()}
    return [*get_default_allowed_hosts(), *sorted(names), *(f"{n}:*" for n in sorted(names))]
