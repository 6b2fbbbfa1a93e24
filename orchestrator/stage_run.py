"""One stage, inside a run: run it (seeded, its folder emptied first and removed if it fails, its
metrics, history and declared artifacts handed over), or reuse its outputs from the stage cache
and tell the trackers everything the run would have told them (its epochs, its report, its files).
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any, Mapping, Sequence

from pydantic import BaseModel

from orchestrator import device
from orchestrator.context import HISTORY_FILE, METRICS_FILE, RUN_FILE, StageContext
from orchestrator.device import seed_everything
from orchestrator.stage_cache import Entry, Plan, StageCache
from orchestrator.stage_params import SEED
from orchestrator.task import Stage


def run_one(stage: Stage, ctx: StageContext, params: BaseModel) -> dict[str, float]:
    out = ctx.out_dir
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    device.join_trainings()  # torch's threads: this process's share of the cores (device.py)
    try:
        if SEED in type(params).model_fields:
            seed_everything(getattr(params, SEED))
        result = {k: float(v) for k, v in (stage.fn(ctx) or {}).items()}
        (out / METRICS_FILE).write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
        write_history(ctx.history, out / HISTORY_FILE)
        _write_run_file(ctx)
        log_declared(ctx, [stage])
        if not stage.checkpoint_ignores:
            # finished: nothing left to resume. A stage that ignores some params (epochs) keeps its
            # checkpoints, so that a longer run continues the finished one.
            for path in ctx.checkpoints:
                path.unlink(missing_ok=True)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)  # nothing half-written
        raise
    finally:
        device.leave_trainings()
    return result


def run_or_reuse(stage: Stage, ctx: StageContext, params: BaseModel, cache: StageCache | None, key: str | None,
                 plan: Plan | None) -> dict[str, float]:
    """The stage's metrics: reused from the entry the run's ``plan`` found, else from running it
    (and storing its outputs, under the lock the plan holds for it)."""
    if cache is None or plan is None or not stage.cache:
        return run_one(stage, ctx, params)
    if stage.name in plan.found:
        return reuse(plan.found[stage.name], stage, ctx, cache)
    try:
        result = run_one(stage, ctx, params)
        made = {"run": ctx.run.name if ctx.run else None, "tracking": dict(ctx.run.tracking) if ctx.run else {}}
        cache.store(ctx.task.name, stage.name, key, ctx.out_dir, made, skip=(RUN_FILE,), replace=ctx.restart)
        return result
    finally:
        plan.release(stage.name)


def reuse(entry: Entry, stage: Stage, ctx: StageContext, cache: StageCache) -> dict[str, float]:
    """The entry's files as the stage's folder, and to the trackers what running it would have
    said: each epoch (from its history), its report, its declared files."""
    cache.restore(entry, ctx.out_dir)
    ctx.echo(f"reused from the stage cache ({entry.folder.name}; made by {entry.made_by or 'an untracked run'})")
    _write_run_file(ctx)
    result = json.loads((ctx.out_dir / METRICS_FILE).read_text()) if (ctx.out_dir / METRICS_FILE).exists() else {}
    if ctx.run is not None:
        for epoch, metrics in read_history(ctx.out_dir / HISTORY_FILE).items():
            ctx.hook.orch_epoch_end(run=ctx.run, epoch=epoch, metrics=metrics)
        report = ctx.out_dir / "report.json"
        if report.exists():
            from orchestrator.report import BiasVarianceReport

            files = [p for p in (ctx.out_dir / f"report.{ext}" for ext in ("md", "html", "png", "json")) if p.exists()]
            ctx.logged.update(files)
            ctx.hook.orch_report_built(run=ctx.run, report=BiasVarianceReport.from_dict(json.loads(report.read_text())),
                                       files=files)
    log_declared(ctx, [stage])
    return result


def _write_run_file(ctx: StageContext) -> None:
    """The tracked stage's run, for the DVC stages after it (``orch stage`` reopens it)."""
    if ctx.run is not None and ctx.spec.tracked:
        (ctx.out_dir / RUN_FILE).write_text(json.dumps({"name": ctx.run.name, "tracking": ctx.run.tracking}))


def write_history(history: Mapping[int, Mapping[str, float]], path: Path) -> None:
    """One row per epoch, columns in the order they first appeared; nothing when no epoch was logged."""
    if not history:
        return
    columns = list(dict.fromkeys(k for row in history.values() for k in row))
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["epoch", *columns])
        for epoch in sorted(history):
            writer.writerow([epoch, *(history[epoch].get(c, "") for c in columns)])


def read_history(path: Path) -> dict[int, dict[str, float]]:
    """``write_history``'s file back: epoch -> the metrics logged for it."""
    if not path.exists():
        return {}
    with open(path, newline="") as f:
        return {int(row.pop("epoch")): {k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)}


def log_declared(ctx: StageContext, stages: Sequence[Stage]) -> None:
    """Hand the trackers every file of ``stages`` that ``Task.artifacts`` declares, with its kind."""
    if ctx.run is None:
        return
    if any(s is ctx.spec for s in stages) and (ctx.out_dir / HISTORY_FILE).exists():
        ctx.log_artifact(ctx.out_dir / HISTORY_FILE, "table")
    for art in ctx.task.artifacts:
        for stage in stages:
            if art.stage == stage.name:
                for path in sorted(ctx.dirs[stage.name].glob(art.name)):
                    ctx.log_artifact(path, art.kind)


def cache_tags(found: Mapping[str, Entry]) -> dict[str, str]:
    """Tags of a run some of whose stages come from the cache: which, and the run that made each."""
    if not found:
        return {}
    tags: dict[str, Any] = {"orch.cached_stages": ",".join(found)}
    tags.update({f"orch.cached_from.{name}": entry.made_by or "untracked" for name, entry in found.items()})
    return tags
