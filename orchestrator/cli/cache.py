"""``orch cache``: what the stage cache holds, and emptying it."""

from __future__ import annotations

import time

import click

from orchestrator.cli.common import handled, table
from orchestrator.cli.group import main


def _cache():
    from orchestrator.runner import Project
    from orchestrator.stage_cache import StageCache

    return StageCache(Project.find().scratch)


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


@main.group("cache")
def cache_group() -> None:
    """The stage cache: outputs of stages kept under the key of their params, code, data and inputs,
    reused by `orch run` and sweep trials (ORCH_CACHE=0 or --no-cache: off; ORCH_CACHE_LIMIT: its size)."""


@cache_group.command("list")
@click.argument("task", required=False)
@handled
def list_command(task: str | None) -> None:
    """List the entries (of TASK): stage, key, size, when made, by which run."""
    from orchestrator.stage_cache import META, limit

    cache = _cache()
    entries = cache.entries(task)
    rows = [(e.meta.get("task"), e.meta.get("stage"), e.meta.get("key"), _size(e.meta.get("bytes", 0)),
             time.strftime("%Y-%m-%d %H:%M", time.localtime((e.folder / META).stat().st_mtime)), e.made_by or "-")
            for e in entries]
    table(("task", "stage", "key", "size", "last used", "made by"), rows)
    total = sum(e.meta.get("bytes", 0) for e in entries)
    click.echo(f"{len(entries)} entries, {_size(total)} in {cache.root} (limit {_size(limit())})")


@cache_group.command("clear")
@click.argument("task", required=False)
@handled
def clear_command(task: str | None) -> None:
    """Remove every entry (of TASK); the next runs compute their stages again."""
    cache = _cache()
    count, size = cache.clear(task)
    click.echo(f"removed {count} entries ({_size(size)}) from {cache.root}")
