"""The ``orch`` command. Heavy libraries (torch, MLflow, Optuna, pandas) load only inside the
commands that need them, so ``orch --help`` starts fast.

Exit codes: 0 done; 2 usage or config error (one line, no traceback); 1 the run failed.

``group`` holds the command group (built-ins, plugin commands, task verbs); ``runs`` the commands
that run a task; ``info`` those that list, report and write dvc.yaml; ``doctor`` the check-up;
``new`` the plugin scaffold; ``cache`` the stage cache; ``common`` what they share.
"""

from orchestrator.cli import cache, doctor, info, new, runs  # noqa: F401  (they register their commands on main)
from orchestrator.cli.group import main

__all__ = ["main"]
