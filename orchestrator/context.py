"""StageContext: everything a stage function receives, and its only way to talk to the host.

The host does the chores here so that a stage reads "build, fit, return metrics": it seeds before
the stage, keeps the per-epoch history (``log_epoch``; the runner writes ``history.csv``), saves
and loads models, checkpoints and restores training state, prints progress, and logs the files
the task declares as artifacts.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping

from orchestrator import checkpoint, interrupt
from orchestrator.errors import ContractError, NonFiniteLoss
from orchestrator.device import share_threads
from orchestrator.stage_params import SEED

if TYPE_CHECKING:
    import pandas
    import pluggy

    from orchestrator.report import BiasVarianceReport
    from orchestrator.task import HumanBaseline, RunInfo, Stage, Task

METRICS_FILE = "metrics.json"
HISTORY_FILE = "history.csv"
RUN_FILE = "run.json"
# what the host writes beside a stage's outputs: summaries of a run (with its timings), not its data
BOOKKEEPING = (METRICS_FILE, HISTORY_FILE, RUN_FILE)


def read_metrics(dirs: Mapping[str, Path], stages: Iterable[str]) -> dict[str, float]:
    """The metrics.json of each named stage folder that has one, merged in stage order."""
    merged: dict[str, float] = {}
    for stage in stages:
        path = dirs[stage] / METRICS_FILE if stage in dirs else None
        if path is not None and path.exists():
            merged.update(json.loads(path.read_text()))
    return merged


@dataclass
class StageContext:
    """Passed to ``Stage.fn``. ``out_dir`` is this stage's own folder (a DVC output); the folders
    of the stages it declares as inputs come from ``input_dir(name)``; ``params`` shows only the
    params it declares. ``run`` is None in untracked stages."""

    task: "Task"
    spec: "Stage"
    params: Any
    hook: "pluggy.HookRelay"
    dirs: Mapping[str, Path]
    scratch: Path
    run: "RunInfo | None" = None
    quiet: bool = False
    restart: bool = False  # ``--restart``: ignore (and remove) the checkpoints found
    history: dict[int, dict[str, float]] = field(default_factory=dict)
    logged: set[Path] = field(default_factory=set)
    checkpoints: set[Path] = field(default_factory=set)  # written or read; removed when the stage ends well

    @property
    def stage(self) -> str:
        return self.spec.name

    @property
    def where(self) -> str:
        return f"{self.task.name}.{self.stage}"

    @property
    def out_dir(self) -> Path:
        return self.dirs[self.stage]

    def input_dir(self, stage: str) -> Path:
        """The output folder of an earlier stage this one declares in ``inputs``."""
        if stage not in self.spec.inputs:
            raise ContractError(f"stage {self.where} reads the output of {stage!r}, which it does not declare "
                                f"(its inputs: {', '.join(self.spec.inputs) or 'none'})")
        return self.dirs[stage]

    @cached_property
    def device(self) -> Any:
        from orchestrator.device import pick_device

        return pick_device()

    def reseed(self) -> None:
        """Seed every RNG from the task's seed again (the host did it before the stage): for a
        stage that trains several models and wants each to start as if alone."""
        from orchestrator.device import seed_everything

        seed_everything(getattr(self.params, SEED))

    # -- progress ---------------------------------------------------------------------------------

    def echo(self, message: str) -> None:
        """A status line on stderr, prefixed with the task and stage (silent with ``--quiet``)."""
        if not self.quiet:
            print(f"[{self.where}] {message}", file=sys.stderr, flush=True)

    def progress(self, iterable: Iterable, desc: str = "", total: int | None = None) -> Iterable:
        """A progress bar over ``iterable`` on stderr (none with ``--quiet`` or off a terminal);
        each item first checks for a stop request (see ``orchestrator.interrupt``)."""
        if not self.quiet:
            from tqdm.auto import tqdm

            iterable = tqdm(iterable, desc=desc, total=total, leave=False, disable=None, mininterval=1.0)
        return _checked(iterable)

    # -- metrics ----------------------------------------------------------------------------------

    def log_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        """Report one epoch's metrics (step = epoch): trackers get them now, ``history.csv`` at the
        stage's end (one row per epoch, merged when several calls name the same epoch). Raises
        NonFiniteLoss on a NaN/inf loss."""
        metrics = {k: float(v) for k, v in metrics.items()}
        self.history.setdefault(epoch, {}).update(metrics)
        if not self.quiet:
            shown = "  ".join(f"{k}={v:.4f}" for k, v in metrics.items())
            trial = f" trial {self.run.trial}" if self.run is not None and self.run.trial is not None else ""
            print(f"[{self.where}{trial}] epoch {epoch + 1}  {shown}", file=sys.stderr, flush=True)
        if self.run is not None:
            self.hook.orch_epoch_end(run=self.run, epoch=epoch, metrics=metrics)
        share_threads()  # another training started or ended: take this process's new share
        bad = [k for k, v in metrics.items() if k.endswith("loss") and not math.isfinite(v)]
        if bad:
            raise NonFiniteLoss(f"{bad[0]} is {metrics[bad[0]]} at epoch {epoch + 1}")
        interrupt.check()

    def input_history(self, stage: str) -> "pandas.DataFrame | None":
        """The per-epoch history input ``stage`` logged (its ``history.csv``), one row per epoch;
        None when it logged no epoch."""
        import pandas

        path = self.input_dir(stage) / HISTORY_FILE
        return pandas.read_csv(path) if path.exists() else None

    def upstream_metrics(self) -> dict[str, float]:
        """Metrics of the stages this one declares as inputs, read from their metrics.json."""
        order = [s.name for s in self.task.stages if s.name in self.spec.inputs]
        return read_metrics({s: self.input_dir(s) for s in order}, order)

    # -- files ------------------------------------------------------------------------------------

    def log_artifact(self, path: Path, kind: str) -> Path:
        """Hand a file to the trackers now. Files the task declares in ``Task.artifacts`` are logged
        by the host when the stage ends; this is for anything else."""
        path = Path(path)
        if self.run is not None and path not in self.logged:
            self.hook.orch_artifact(run=self.run, path=path, kind=kind)
        self.logged.add(path)
        return path

    def save_model(self, name: str, model: Any, config: dict | None = None) -> None:
        """``out_dir/name.pt`` (state_dict) and ``name.json`` (what rebuilds it), logged as a model."""
        for path in checkpoint.save_model(self.out_dir, name, model, config):
            self.log_artifact(path, "model")

    def load_model(self, stage: str, name: str, build: Callable[[dict], Any]) -> Any:
        """The model ``name`` saved by input ``stage``: ``build(config)`` with its weights, in eval mode."""
        return checkpoint.load_model(self.input_dir(stage), name, build)

    def load_state(self, stage: str, name: str) -> dict:
        """The state dict ``name`` saved by input ``stage`` (weights only, on the CPU)."""
        return checkpoint.load_state(self.input_dir(stage), name)

    # -- resumable training -----------------------------------------------------------------------

    @cached_property
    def _checkpoint_key(self) -> str:
        keep = tuple(k for k in self.params.declared if k not in self.spec.checkpoint_ignores)
        plain = self.params.model_dump(keep, mode="json")
        digest = hashlib.sha256(json.dumps(plain, sort_keys=True).encode())
        from orchestrator.dvcgen import HOST, stage_files

        for path in stage_files(self.spec):  # edited training code does not resume an old checkpoint
            if path.suffix == ".py" and HOST not in path.parents:
                digest.update(path.read_bytes())
        for stage in self.spec.inputs:  # their data, not their bookkeeping: a rerun's timings differ
            folder = self.dirs[stage]
            for path in sorted(p for p in folder.rglob("*") if p.is_file() and not _bookkeeping(p, folder)):
                digest.update(str(path.relative_to(folder)).encode())
                with open(path, "rb") as f:
                    while block := f.read(1 << 20):
                        digest.update(block)
        return digest.hexdigest()[:12]

    def checkpoint_path(self, name: str = "") -> Path:
        """Keyed by the task, the stage, ``name`` (for stages that train several models), its
        declared params (but those in ``checkpoint_ignores``), the plugin code it runs and its
        inputs' contents: the same training started again finds its checkpoint."""
        stem = f"{self.stage}-{name}" if name else self.stage
        return self.scratch / "checkpoints" / self.task.name / f"{stem}-{self._checkpoint_key}.pt"

    def checkpoint(self, state: dict, name: str = "") -> None:
        """Save training state (weights, optimizer, epoch...) with every RNG state, atomically."""
        path = self.checkpoint_path(name)
        checkpoint.write_atomic({"state": state, "rng": checkpoint.rng_states(), "history": self.history}, path)
        self.checkpoints.add(path)

    def restore(self, name: str = "") -> dict | None:
        """The last checkpoint's state, or None to start afresh. The RNG states and the history come
        back too, and the epochs done before are reported to the trackers again (a new run shows
        the whole curve)."""
        path = self.checkpoint_path(name)
        if self.restart:
            path.unlink(missing_ok=True)
            return None
        saved = checkpoint.read_checkpoint(path)
        if saved is None:
            return None
        checkpoint.set_rng_states(saved["rng"])
        history = {int(k): dict(v) for k, v in saved["history"].items()}
        unseen = {e: {k: v for k, v in m.items() if self.history.get(e, {}).get(k) != v} for e, m in history.items()}
        self.history = history
        self.checkpoints.add(path)
        done = saved["state"].get("epoch", len(history))
        within = saved["state"].get("within") or {}
        part = f", {within['batches']} batch(es) into epoch {done + 1}" if "batches" in within else ""
        self.echo(f"resuming from {path} ({done} epoch(s) done{part})")
        if self.run is not None:
            for epoch, metrics in sorted(unseen.items()):
                if metrics:
                    self.hook.orch_epoch_end(run=self.run, epoch=epoch, metrics=metrics)
        return saved["state"]

    def resumable(self, name: str = "", **objects: Any) -> "checkpoint.Resumable":
        """Make a training loop resumable: ``objects`` (model, optimizer, scheduler, generators) come
        back from the last checkpoint if there is one, ``.epoch`` says where to start, and
        ``.save(epochs_done)`` after each epoch checkpoints them; a long epoch saves inside too
        (``due()``, ``save(epoch, within=...)``, ``take_within()``). ``name`` tells apart the models
        of a stage that trains several."""
        return checkpoint.Resumable(objects, self.restore(name), lambda state: self.checkpoint(state, name),
                                    every=checkpoint.checkpoint_every())

    # -- the report -------------------------------------------------------------------------------

    def bias_variance_report(
        self, metrics: Mapping[str, float] | None = None, human: "HumanBaseline | None" = None
    ) -> "BiasVarianceReport":
        """Build, write (md, html, png in out_dir) and announce the report of this run. ``human``
        replaces the task's baseline when the data determine it (e.g. a generator's known noise)."""
        from orchestrator import report

        metrics = self.upstream_metrics() if metrics is None else metrics
        try:
            built = report.build(self.task.name, self.task.metric, human or self.task.human, metrics)
        except KeyError as exc:
            from orchestrator.errors import RunFailed

            raise RunFailed(f"cannot build the report of {self.task.name}: {exc.args[0]}") from None
        files = report.write(built, self.out_dir)
        (self.out_dir / "report.json").write_text(json.dumps(built.as_dict(), indent=2))
        files.append(self.out_dir / "report.json")
        self.logged.update(files)
        if self.run is not None:
            self.hook.orch_report_built(run=self.run, report=built, files=files)
        return built


def _bookkeeping(path: Path, folder: Path) -> bool:
    return path.parent == folder and path.name in BOOKKEEPING


def _checked(iterable: Iterable) -> Iterator:
    for item in iterable:
        interrupt.check()
        share_threads(every=2.0)  # a training that starts or ends elsewhere changes the share
        yield item
