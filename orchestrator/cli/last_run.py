"""The last ``orch run`` of each task in this project, so ``orch report TASK`` right after it
reports that run (a task outside the DVC pipeline has no ``outputs/TASK`` to read)."""

from __future__ import annotations

import json
import os
from pathlib import Path

FOLDER = "last_run"  # under the project's scratch folder, .orch/


def remember(scratch: Path, run, metrics: dict[str, float]) -> None:
    folder = scratch / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{run.task}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"name": run.name, "tracking": dict(run.tracking), "metrics": metrics}))
    os.replace(tmp, path)  # a reader never sees half a file


def recall(scratch: Path, task: str) -> tuple[dict, float] | None:
    """(what ``remember`` wrote, when), or None."""
    path = scratch / FOLDER / f"{task}.json"
    try:
        return json.loads(path.read_text()), path.stat().st_mtime
    except (OSError, ValueError):
        return None
