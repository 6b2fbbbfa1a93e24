"""MLflow tracking as a plugin on the host's lifecycle hooks: one experiment per task, one run per
``orch run`` / DVC pipeline / sweep trial, a parent run per sweep.

Default store: SQLite (``sqlite:///<project>/mlflow.db``) with artifacts in ``<project>/mlartifacts``;
``--tracking-uri`` or ``MLFLOW_TRACKING_URI`` points it elsewhere (e.g. a tracking server backed by
PostgreSQL). It talks to MLflow through ``MlflowClient`` with explicit run ids, never the fluent
API's global "active run", so sweep workers in several processes cannot cross their runs.
"""

from __future__ import annotations

from orch_mlflow.tracker import MlflowTracker

tracker = MlflowTracker()
"""The plugin object the ``orch`` entry point ``mlflow`` registers."""
