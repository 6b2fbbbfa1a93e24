"""orch: a pluggy host that runs deep-learning task plugins as DVC stages, sweeps them with Optuna
and tracks them with MLflow.

This module is the whole public API: a plugin imports everything it needs from ``orchestrator``
(like ``pytest.*``), never from its submodules. Names load on first use, so ``orch --help`` and
``import orchestrator`` stay fast.

Marking hooks
    ``hookimpl``            marks a hook implementation (``@hookimpl def orch_register_tasks()``)
    ``NAME``                "orch": the marker's, the PluginManager's and the entry-point group's name
    ``API_VERSION``         this contract's version; a plugin module may set ``ORCH_API = ">=1,<2"``
                            (a PEP 440 specifier) and is skipped by a host outside that range

Declaring a task (returned by ``orch_register_tasks``)
    ``Task``                name, params model, metric, human baseline, stages, artifacts, space
    ``Stage``               one step and one DVC stage: fn, params it reads, inputs, tracked
    ``Artifact``            a file a stage writes that trackers keep (glob, kind, stage)
    ``HumanBaseline``       human-level error on the task's metric, with its source
    ``Plot``                a curve of a stage's history for ``dvc plots``
    ``Params``              base class for a params model: unknown keys are errors
    ``SPLITS``              ("train", "train_dev", "val"): the metric prefixes every task logs
    ``split_metrics``       ("acc") -> train_acc, train_dev_acc, val_acc: for ``Task.metrics``

Inside a stage
    ``StageContext``        what ``Stage.fn`` receives: params, folders, device, log_epoch,
                            save_model/load_model, checkpoint/restore, progress, echo, the report
    ``Resumable``, ``not_resumable``
                            a training loop's state after a kill (``ctx.resumable(...)``), and
                            the one a loop gets outside a stage
    ``minimize``, ``shuffled_epoch``
                            one optimizer step; an epoch of shuffled minibatches that resumes
                            inside itself from ``Resumable``'s in-epoch checkpoints
    ``load_model``, ``load_state``, ``read_config``
                            read a saved model outside a stage (a command, a notebook)
    ``UserError``           bad input from the user: one line, exit code 2
    ``RunFailed``           a run that failed: exit code 1
    ``pyplot``, ``save_figure``, ``loss_curves``
                            headless matplotlib and the shared figure helpers

For trackers (lifecycle hooks)
    ``RunInfo``, ``SweepInfo``, ``OrchConfig``, ``FetchedRun``, ``TrialResult``, ``BiasVarianceReport``
    ``Pruned``              raised inside a trial that the pruner stopped
    ``masked``              a URL with its password as *** (for tags and printed lines)
    ``Finding``             one line of ``orch doctor`` (``orch_doctor``): ok, fixed or problem

For commands (``orch_register_commands``, ``Task.commands``)
    ``Project``             the project folder: ``Project.find()``, its params file and outputs
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from orchestrator.hookspecs import API_VERSION, NAME, hookimpl

__version__ = "0.1.0"

_EXPORTS = {
    "Task": "task", "Stage": "task", "Artifact": "task", "HumanBaseline": "task", "Plot": "task",
    "SPLITS": "task", "split_metrics": "task", "RunInfo": "task", "SweepInfo": "task", "OrchConfig": "task", "FetchedRun": "task",
    "TrialResult": "task", "masked": "task", "Finding": "task",
    "Params": "params",
    "StageContext": "context",
    "load_model": "checkpoint", "load_state": "checkpoint", "read_config": "checkpoint",
    "Resumable": "checkpoint", "not_resumable": "checkpoint", "minimize": "training", "shuffled_epoch": "training",
    "UserError": "errors", "RunFailed": "errors", "Pruned": "errors",
    "pyplot": "plots", "save_figure": "plots", "loss_curves": "plots",
    "BiasVarianceReport": "report",
    "Project": "runner",
}

__all__ = ["API_VERSION", "NAME", "hookimpl", "__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'orchestrator' has no attribute {name!r}")
    value = getattr(import_module(f"orchestrator.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
