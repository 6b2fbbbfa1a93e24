"""The hook implementations of the MLflow tracker."""

from __future__ import annotations

import logging
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping

import click

from orch_mlflow.journal import Journal, is_outage
from orch_mlflow.store import seed_store
from orchestrator import hookimpl
from orchestrator import Pruned, UserError, masked

KEY = "mlflow"
ARTIFACT_DIRS = {"model": "model", "plot": "plots", "table": "tables", "text": "samples",
                 "image": "images", "report": "report", "data": "data"}
PARAM_LIMIT = 6000  # MLflow's longest param value
# MLflow 3's UI opens an experiment in its GenAI view unless told it holds model training runs
EXPERIMENT_KIND, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"


def open_client(uri: str):
    """An MlflowClient whose store is ready. MLflow creates and migrates a new SQLite store on first
    use, and two processes doing that at once break the migration (``No such index``): a sweep's
    workers, or two commands started together. One process at a time, under a file lock."""
    from mlflow.tracking import MlflowClient

    if not uri.startswith("sqlite:///"):
        return MlflowClient(tracking_uri=uri)
    from filelock import FileLock

    path = Path(uri[len("sqlite:///"):].split("?")[0])
    with FileLock(f"{path}.lock"):
        if not path.exists() and path.parent.is_dir():
            seed_store(path)
        client = MlflowClient(tracking_uri=uri)  # creates the store (MLflow 3.17: already here)
        client.search_experiments(max_results=1)  # or at the first call
    return client


JOURNAL = Path(".orch") / "journal"  # under the project root
PARENT_KEY = "mlflow.parent_run"  # the study's agreement that names its parent run
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                 "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}
SCHEMES = ("file", "sqlite", "http", "https", "postgresql", "mysql", "mssql", "databricks")


def check_tracking_uri(uri: str, source: str) -> None:
    """A one-line error for a tracking URI MLflow cannot use, before any run starts."""
    from urllib.parse import urlsplit

    scheme = urlsplit(uri).scheme.split("+")[0]
    if scheme and len(scheme) > 1 and scheme not in SCHEMES:  # one letter: a Windows drive
        raise UserError(f"{source} {uri}: unsupported tracking store {scheme!r} "
                        f"(expected a folder, sqlite:///PATH/mlflow.db or http://HOST:PORT)")
    if scheme == "sqlite":
        path = Path(uri[len("sqlite:///"):].split("?")[0])
        if not path.parent.is_dir():
            raise UserError(f"{source} {uri}: folder {path.parent} does not exist")


def check_server(uri: str, source: str, timeout: float = 10.0) -> None:
    """A tracking server that does not answer is a one-line error at once, where MLflow's client
    would retry for about four minutes and end in a page of urllib3 text."""
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout).close()
    except urllib.error.HTTPError:
        return  # it answers (a proxy in front of it may not route /health)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise UserError(f"{source} {uri}: no tracking server answers ({getattr(reason, 'strerror', None) or reason}); "
                        "start it (mlflow server) or choose another store") from None


def store_exists(uri: str) -> bool:
    """False for a SQLite store not created yet: a lookup must not create one."""
    return not uri.startswith("sqlite:///") or Path(uri[len("sqlite:///"):].split("?")[0]).is_file()


class MlflowTracker:
    def __init__(self) -> None:
        self.root = Path.cwd()
        self.uri: str | None = None
        self.source = "tracking store"  # where the URI came from, for error messages
        self._client = None
        self._experiments: dict[str, str] = {}
        self._last_step: dict[str, int] = {}  # run id -> last epoch logged
        self.journal = Journal(self.root / JOURNAL)
        self._away = False  # the server did not answer the last write

    # -- plumbing ---------------------------------------------------------------------------------

    @property
    def client(self):
        if self._client is None:
            os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # runs stay offline and private
            os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # keep stderr for errors
            # a server that is away costs seconds, not MLflow's default four minutes of retries per
            # write: the journal keeps what it did not take, and training goes on
            for name, value in HTTP_DEFAULTS.items():
                os.environ.setdefault(name, value)
            for name in ("alembic", "mlflow.store.db.utils", "mlflow.store.sql_alchemy_store"):
                logging.getLogger(name).setLevel(logging.WARNING)
            if self.tracking_uri.startswith(("http://", "https://")):
                check_server(self.tracking_uri, self.source)
            self._client = open_client(self.tracking_uri)
        return self._client

    @property
    def tracking_uri(self) -> str:
        return self.uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{self.root / 'mlflow.db'}"

    def experiment_id(self, task: str) -> str:
        if task not in self._experiments:
            found = self.client.get_experiment_by_name(task)
            if found is not None:
                self._experiments[task] = found.experiment_id
            else:
                location = None
                if self.tracking_uri.startswith("sqlite:"):
                    location = (self.root / "mlartifacts" / task).as_uri()
                try:
                    self._experiments[task] = self.client.create_experiment(
                        task, artifact_location=location, tags={EXPERIMENT_KIND: MODEL_TRAINING})
                except Exception:  # another sweep worker created it first
                    found = self.client.get_experiment_by_name(task)
                    if found is None:
                        raise
                    self._experiments[task] = found.experiment_id
        return self._experiments[task]

    def _log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int = 0) -> None:
        now = int(time.time() * 1000)
        batch = [[k, float(v), now, step] for k, v in metrics.items() if v is not None]
        if batch:
            self._send(run_id, "log_batch", metrics=batch)

    def _log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        items = [[k, str(v)[:PARAM_LIMIT]] for k, v in params.items()]
        for i in range(0, len(items), 100):  # MLflow takes at most 100 params a batch
            self._send(run_id, "log_batch", params=items[i:i + 100])

    def _close(self, run_id: str, status: str, reason: str) -> None:
        """End a run that did not finish, with why in the tag ``orch.error``."""
        try:
            self._send(run_id, "set_tag", key="orch.error", value=reason[:5000])
        finally:
            self._end(run_id, status)

    def _end(self, run_id: str, status: str) -> None:
        # the run's last write tries the server at once, not after RETRY_EVERY: it may be back
        self._send(run_id, "set_terminated", now=True, status=status, end_time=int(time.time() * 1000))
        if self.journal.pending(run_id):
            click.echo(f"orch: the tracking server has not answered: {self.journal.count(run_id)} write(s) of run "
                       f"{run_id} wait in {self.journal.folder}; the next orch command sends them, or `orch sync`",
                       err=True)

    def _send(self, run_id: str, op: str, now: bool = False, **args) -> None:
        """One write to the run, through the journal when the server is away (see ``journal``);
        ``now``: try the server even if it failed less than RETRY_EVERY ago."""
        waiting = self.journal.pending(run_id)
        if waiting and now:
            self.journal.replay(self.client, run_id, self._went_away, force=True)
        self.journal.send(self.client, run_id, op, self._went_away, **args)
        if waiting and not self.journal.pending(run_id):
            self._away = False
            click.echo(f"orch: the tracking server is back: the writes kept for run {run_id} are sent", err=True)

    def _went_away(self, exc: BaseException) -> None:
        if not self._away:
            self._away = True
            click.echo(f"orch: the tracking server {self.tracking_uri} did not answer; training goes on and the "
                       f"run's writes are kept in {self.journal.folder} until it does", err=True)

    def replay_all(self, force: bool = False) -> dict[str, int]:
        """Send every run's kept writes (this process's and those of runs that ended or died):
        run id -> writes still waiting."""
        for run_id in self.journal.runs():
            self.journal.replay(self.client, run_id, self._went_away, force=force)
        return {run_id: self.journal.count(run_id) for run_id in self.journal.runs()}

    # -- hooks ------------------------------------------------------------------------------------

    @hookimpl
    def orch_register_commands(self, cli) -> None:
        from orch_mlflow.commands import server_command, sync_command, ui_command

        cli.add_command(ui_command)
        cli.add_command(server_command)
        cli.add_command(sync_command)

    @hookimpl
    def orch_configure(self, config) -> None:
        self.root = Path(config.root)
        self.uri = config.tracking_uri
        self.source = ("--tracking-uri" if self.uri else
                       "MLFLOW_TRACKING_URI" if os.environ.get("MLFLOW_TRACKING_URI") else "tracking store")
        check_tracking_uri(self.tracking_uri, self.source)
        self._client = None
        self._experiments.clear()
        self.journal = Journal(self.root / JOURNAL)

    @hookimpl
    def orch_run_start(self, run) -> None:
        self.replay_all()  # what earlier runs kept while the server was away goes first
        if KEY in run.resume:
            run_id = run.resume[KEY]
            self._send(run_id, "update_run", status="RUNNING")
            self._send(run_id, "set_tag", key="orch.dvc_stage", value=run.tags.get("orch.dvc_stage", ""))
        else:
            tags = dict(run.tags)
            tags["mlflow.source.git.commit"] = run.tags.get("orch.git_commit", "")
            if run.sweep is not None and KEY in run.sweep.tracking:
                tags["mlflow.parentRunId"] = run.sweep.tracking[KEY]
            created = self.client.create_run(self.experiment_id(run.task), tags=tags, run_name=run.name)
            run_id = created.info.run_id
            self._log_params(run_id, run.params)
        run.tracking[KEY] = run_id

    @hookimpl
    def orch_epoch_end(self, run, epoch: int, metrics) -> None:
        if KEY in run.tracking:
            self._last_step[run.tracking[KEY]] = epoch
            self._log_metrics(run.tracking[KEY], metrics, step=epoch)

    @hookimpl
    def orch_artifact(self, run, path: Path, kind: str) -> None:
        if KEY in run.tracking:
            self._send(run.tracking[KEY], "log_artifact", local=str(path), artifact_path=ARTIFACT_DIRS.get(kind, kind))

    @hookimpl
    def orch_report_built(self, run, report, files) -> None:
        if KEY not in run.tracking:
            return
        run_id = run.tracking[KEY]
        self._log_metrics(run_id, {"human_error": report.human_error, **report.gaps},
                          step=self._last_step.get(run_id, 0))
        self._send(run_id, "set_tag", key="orch.diagnosis", value=report.diagnosis)
        for path in files:
            self._send(run_id, "log_artifact", local=str(path), artifact_path="report")

    @hookimpl
    def orch_run_end(self, run, metrics) -> None:
        if KEY in run.tracking:
            run_id = run.tracking[KEY]
            finite = {k: v for k, v in metrics.items() if v is not None and math.isfinite(v)}
            # final figures at the last epoch's step, so "latest value" in the UI is the final one
            self._log_metrics(run_id, finite, step=self._last_step.pop(run_id, 0))
            self._end(run_id, "FINISHED")

    @hookimpl
    def orch_run_error(self, run, error: BaseException) -> None:
        if KEY not in run.tracking:
            return
        if isinstance(error, Pruned):
            self._close(run.tracking[KEY], "KILLED", "pruned")
        elif isinstance(error, KeyboardInterrupt):  # Ctrl-C, SIGTERM: "interrupted (SIGTERM)"
            self._close(run.tracking[KEY], "KILLED", str(error) or "interrupted")
        else:
            self._close(run.tracking[KEY], "FAILED", f"{type(error).__name__}: {error}")

    @hookimpl
    def orch_run_lost(self, task: str, name: str, tracking, reason: str) -> None:
        from mlflow.exceptions import MlflowException

        if KEY not in tracking:
            return
        run_id = tracking[KEY]
        self.journal.replay(self.client, run_id, self._went_away, force=True)  # what it kept, first
        try:
            found = self.client.get_run(run_id)
        except MlflowException as exc:
            if is_outage(exc) and self.journal.pending(run_id):  # closed when the server answers
                self._close(run_id, "KILLED", reason)
            return  # deleted since, or another store
        if found.info.status == "RUNNING":
            self._close(run_id, "KILLED", reason)

    @hookimpl
    def orch_sweep_start(self, sweep) -> None:
        """The study's one parent run: agreed through the study's storage, so that workers that
        start together on several machines all nest their trials under the same run."""
        self.replay_all()
        found = sweep.agreed(PARENT_KEY) or self._parent_by_tag(sweep)
        if found is None:
            tags = {"orch.study": sweep.study, "orch.role": "sweep", "orch.task": sweep.task,
                    "orch.sampler": sweep.sampler, "orch.storage": masked(sweep.storage)}
            mine = self.client.create_run(self.experiment_id(sweep.task), tags=tags,
                                          run_name=f"sweep-{sweep.study}").info.run_id
            found = sweep.agree(PARENT_KEY, mine)
            if found == mine:
                self._log_params(mine, sweep.as_params())
            else:  # another worker's run won the race
                self.client.delete_run(mine)
        else:
            found = sweep.agree(PARENT_KEY, found)  # a study from before agreements records its parent
            self._check_parent(sweep, found)
            self._send(found, "update_run", status="RUNNING")  # a resumed sweep
        sweep.tracking[KEY] = found

    def _check_parent(self, sweep, run_id: str) -> None:
        """A resumed study's parent run must be in this store (not a new or another store)."""
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_run(run_id)
        except MlflowException as exc:
            if getattr(exc, "error_code", "") != "RESOURCE_DOES_NOT_EXIST":
                return  # the store is away: the journal keeps the sweep's writes until it is back
            raise UserError(f"study {sweep.study!r} in {masked(sweep.storage)} nests its trials under MLflow run "
                            f"{run_id}, which {masked(self.tracking_uri)} does not have (a new or another "
                            f"tracking store?): sweep under a new --study, or remove the study's storage") from None

    def _parent_by_tag(self, sweep) -> str | None:
        """The parent run of a study begun before parents were agreed through the study."""
        found = self.client.search_runs(
            [self.experiment_id(sweep.task)],
            filter_string=f"tags.`orch.study` = '{sweep.study}' and tags.`orch.role` = 'sweep'", max_results=1)
        return found[0].info.run_id if found else None

    @hookimpl
    def orch_trial_end(self, sweep, result, run) -> None:
        if run is not None and KEY in run.tracking:
            self._send(run.tracking[KEY], "set_tag", key="orch.trial_state", value=result.state)

    @hookimpl
    def orch_sweep_end(self, sweep, best, files) -> None:
        if KEY not in sweep.tracking:
            return
        run_id = sweep.tracking[KEY]
        if best is not None:
            self._log_metrics(run_id, {f"best_{sweep.metric}": best.value})
            # tags, not params: a resumed sweep may find a better trial, and MLflow params are final
            tags = {"orch.best_trial": str(best.number), **{f"best.{k}": str(v) for k, v in best.params.items()}}
            self._send(run_id, "log_batch", tags=[[k, v] for k, v in tags.items()])
        for path in files:
            self._send(run_id, "log_artifact", local=str(path), artifact_path=None)
        self._end(run_id, "FINISHED")

    @hookimpl
    def orch_doctor(self, root: Path) -> list:
        from orchestrator import Finding

        uri = masked(self.tracking_uri)
        try:
            if not store_exists(self.tracking_uri):
                return [Finding("ok", f"tracking store {uri}: not created yet (the first run creates it)")]
            self.client.search_experiments(max_results=1)
        except UserError as exc:
            waiting = sum(self.journal.count(r) for r in self.journal.runs())
            return [Finding("problem", f"{exc}" + (f"; {waiting} write(s) wait in {self.journal.folder}" if waiting
                                                    else ""), "start the tracking server, then `orch sync`")]
        found = [Finding("ok", f"tracking store {uri} answers")]
        before = sum(self.journal.count(r) for r in self.journal.runs())
        if before:
            left = sum(self.replay_all(force=True).values())
            found.append(Finding("fixed", f"{before - left} write(s) kept during a tracking outage sent")
                         if not left else Finding("problem", f"{left} write(s) still wait in {self.journal.folder}",
                                                  "`orch sync` when the server answers"))
        return found

    @hookimpl
    def orch_fetch_run(self, run_id: str):
        from mlflow.exceptions import MlflowException

        if not store_exists(self.tracking_uri):
            return None
        try:
            found = self.client.get_run(run_id)
        except MlflowException:
            return None
        client = self.client

        def download(artifact_path: str) -> Path:
            dst = tempfile.mkdtemp(prefix="orch-run-")
            return Path(client.download_artifacts(run_id, artifact_path, dst))

        from orchestrator import FetchedRun

        return FetchedRun(task=found.data.tags.get("orch.task"), params=dict(found.data.params),
                          metrics=dict(found.data.metrics), tags=dict(found.data.tags), download=download)
