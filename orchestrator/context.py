"""StageContext: everything a stage function receives, and its only way to talk to trackers."""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from orchestrator.errors import NonFiniteLoss

if TYPE_CHECKING:
    import pluggy
    from pydantic import BaseModel

    from orchestrator.report import BiasVarianceReport
    from orchestrator.task import HumanBaseline, RunInfo, Task

METRICS_FILE = "metrics.json"


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
    """Passed to ``Stage.fn``. ``out_dir`` is this stage's own folder (a DVC output); earlier
    stages' folders come from ``input_dir(name)``. ``run`` is None in untracked stages."""

    task: "Task"
    stage: str
    params: "BaseModel"
    hook: "pluggy.HookRelay"
    dirs: Mapping[str, Path]
    run: "RunInfo | None" = None
    quiet: bool = False
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def out_dir(self) -> Path:
        return self.dirs[self.stage]

    def input_dir(self, stage: str) -> Path:
        """The output folder of an earlier stage of this task."""
        return self.dirs[stage]

    @cached_property
    def device(self) -> Any:
        from orchestrator.device import pick_device

        return pick_device()

    def log_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        """Report one epoch's metrics (step = epoch). Raises NonFiniteLoss on a NaN/inf loss."""
        metrics = {k: float(v) for k, v in metrics.items()}
        if not self.quiet:
            shown = "  ".join(f"{k}={v:.4f}" for k, v in metrics.items())
            trial = f" trial {self.run.trial}" if self.run is not None and self.run.trial is not None else ""
            print(f"[{self.task.name}:{self.stage}{trial}] epoch {epoch + 1}  {shown}", file=sys.stderr, flush=True)
        if self.run is not None:
            self.hook.orch_epoch_end(run=self.run, epoch=epoch, metrics=metrics)
        bad = [k for k, v in metrics.items() if k.endswith("loss") and not math.isfinite(v)]
        if bad:
            raise NonFiniteLoss(f"{bad[0]} is {metrics[bad[0]]} at epoch {epoch + 1}")

    def log_artifact(self, path: Path, kind: str) -> Path:
        """Hand a file to the trackers (model, plot, table, text, image, report, data)."""
        if self.run is not None:
            self.hook.orch_artifact(run=self.run, path=Path(path), kind=kind)
        return Path(path)

    def upstream_metrics(self) -> dict[str, float]:
        """Metrics of every earlier stage of this task, read from their metrics.json."""
        names = [s.name for s in self.task.stages]
        return {**read_metrics(self.dirs, names[: names.index(self.stage)]), **self.metrics}

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
        if self.run is not None:
            self.hook.orch_report_built(run=self.run, report=built, files=files)
        return built
