"""New SQLite tracking stores, started from a copy of an empty one. MLflow makes a new store by
creating its schema and running every migration since its first release: 0.6-1.3 s of CPU for each
new project, each test's temporary project. The copy is made once per MLflow version, by MLflow
itself, without its Default experiment, which MLflow adds to each copy as it does to a new store
(with this project's artifact location and the time of creation)."""

from __future__ import annotations

import os
import shutil
import sqlite3
import uuid
from pathlib import Path


def template_path() -> Path:
    import mlflow

    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "orch" / f"mlflow-{mlflow.__version__}-empty.db"


def seed_store(path: Path) -> None:
    """Write the empty store at ``path`` (absent) from the template, making the template first.
    Best effort: on any failure nothing is written and MLflow creates the store as usual."""
    part = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        template = template_path()
        if not template.exists():
            _make_template(template)
        shutil.copyfile(template, part)
        os.replace(part, path)  # whole or not at all
    except Exception:  # a cache folder we cannot write, a template MLflow refuses: as without one
        part.unlink(missing_ok=True)


def _make_template(template: Path) -> None:
    from mlflow.tracking import MlflowClient

    template.parent.mkdir(parents=True, exist_ok=True)
    part = template.with_name(f".{template.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        MlflowClient(tracking_uri=f"sqlite:///{part}").search_experiments(max_results=1)  # schema, migrations
        with sqlite3.connect(part) as db:
            db.execute("DELETE FROM experiments WHERE experiment_id = 0")  # MLflow adds it to each copy
        os.replace(part, template)  # another process making it at once: either copy is whole
    finally:
        part.unlink(missing_ok=True)
