"""orch: a pluggy host that runs deep-learning task plugins as DVC stages, sweeps them with Optuna
and tracks them with MLflow.

Plugins import only what they need from here: ``hookimpl`` to mark hook implementations, and the
task types from ``orchestrator.task``.
"""

import pluggy

NAME = "orch"
"""One name for the hook marker, the PluginManager and the entry-point group."""

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker(NAME)

__all__ = ["NAME", "hookimpl", "__version__"]
