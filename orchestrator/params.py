"""params.yaml: per task, the training params and (under ``sweep``) their search space.

    collab:
      lr: 5.0e-3            # validated by the task's pydantic model
      ...
      sweep:                # validated by SweepConfig (orchestrator.space)
        space:
          lr: {low: 1.0e-4, high: 3.0e-2, scale: log}

Every error is one line naming the file and the key path: ``params.yaml: collab.lr: must be > 0,
got -1``.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from pathlib import Path
from typing import Any, Collection, Mapping

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from orchestrator.errors import UserError
from orchestrator.task import Task

SWEEP_KEY = "sweep"


class Params(BaseModel):
    """Base of a task's params model: an unknown or misspelled key is an error, not ignored."""

    model_config = ConfigDict(extra="forbid")


def read_yaml(path: Path) -> dict[str, Any]:
    """A YAML mapping, or a UserError that names the file."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or " ".join(str(exc).split())  # ReaderError: no problem
        raise UserError(f"{path}: not valid YAML{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of task names to params, got {type(data).__name__}")
    return data


def task_section(raw: Mapping[str, Any], task: str, source: str) -> tuple[dict, dict]:
    """(training params, sweep section) of one task in a params file; both may be empty."""
    section = raw.get(task) or {}
    if not isinstance(section, dict):
        raise UserError(f"{source}: {task}: expected a mapping of params, got {type(section).__name__}")
    section = dict(section)
    sweep = section.pop(SWEEP_KEY, None) or {}
    if not isinstance(sweep, dict):
        raise UserError(f"{source}: {task}.{SWEEP_KEY}: expected a mapping, got {type(sweep).__name__}")
    return section, sweep


def parse_override(text: str, task: str) -> tuple[str, Any]:
    """``key=value`` from ``--set``: the dotted key (relative to the task) and a YAML-typed value."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise UserError(f"--set {text!r}: expected key=value, e.g. --set lr=0.01")
    if key.startswith(f"{task}.") and key != f"{task}.":
        key = key[len(task) + 1:]
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError:
        parsed = value
    return key, parsed


def set_dotted(data: Mapping[str, Any], values: Mapping[str, Any], task: str, source: str) -> dict:
    """A deep copy of ``data`` with every dotted key of ``values`` set (``gbm.learning_rate``):
    what ``--set`` does and what a sweep does with a trial's sampled values."""
    out = json.loads(json.dumps(data))  # deep copy of plain data
    for key, value in values.items():
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise UserError(f"{source} {key}: {task}.{part} is not a group of params")
            node = child
        node[leaf] = value
    return out


def validate(model: type[BaseModel], data: Mapping[str, Any], prefix: str, source: str) -> BaseModel:
    """Validate with pydantic; the first error becomes one line with the full key path."""
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        raise UserError(f"{source}: {format_error(exc, prefix, model)}") from None


def format_error(exc: ValidationError, prefix: str, model: type[BaseModel] | None = None) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in (prefix, *err["loc"]) if p != "")
    ctx = err.get("ctx", {})
    kind = err["type"]
    got = err.get("input")
    messages = {
        "greater_than": lambda: f"must be > {_num(ctx.get('gt'))}",
        "greater_than_equal": lambda: f"must be >= {_num(ctx.get('ge'))}",
        "less_than": lambda: f"must be < {_num(ctx.get('lt'))}",
        "less_than_equal": lambda: f"must be <= {_num(ctx.get('le'))}",
        "int_parsing": lambda: "must be an integer",
        "int_from_float": lambda: "must be an integer",
        "int_type": lambda: "must be an integer",
        "float_parsing": lambda: "must be a number",
        "float_type": lambda: "must be a number",
        "bool_parsing": lambda: "must be true or false",
        "bool_type": lambda: "must be true or false",
        "string_type": lambda: "must be a string",
        "literal_error": lambda: f"must be one of {ctx.get('expected')}",
        "missing": lambda: "is required",
    }
    if kind == "extra_forbidden":
        fields = _fields_at(model, err["loc"][:-1]) if model else []
        expected = f" (expected one of: {', '.join(fields)})" if fields else ""
        return f"{loc}: unknown key{expected}"
    if kind == "value_error":  # a validator's own message; a cross-field check's input is the whole model
        message = str(ctx.get("error", err["msg"]))
        return f"{loc}: {message}" + ("" if isinstance(got, Mapping) else f", got {got!r}")
    message = messages.get(kind, lambda: err["msg"][0].lower() + err["msg"][1:])()
    return f"{loc}: {message}" + ("" if kind == "missing" else f", got {got!r}")


def _num(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _fields_at(model: type[BaseModel], loc: tuple) -> list[str]:
    for part in loc:
        field = model.model_fields.get(str(part))
        sub = getattr(field, "annotation", None) if field else None
        if not (isinstance(sub, type) and issubclass(sub, BaseModel)):
            return []
        model = sub
    return sorted(model.model_fields)


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"data": {"path": x}}`` -> ``{"data.path": x}`` (MLflow params, dvc.yaml keys)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def params_hash(params: Mapping[str, Any]) -> str:
    blob = json.dumps(params, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def load_task_params(
    task: Task, params_file: Path | None, overrides: list[str] = (), tasks: Collection[str] = ()
) -> tuple[BaseModel, dict]:
    """The task's validated params (defaults < params file < --set) and its sweep section (which
    ``--set sweep.KEY=VALUE`` overrides too). ``tasks``, the installed task names, catch a
    misspelled section and a ``--set`` meant for another task."""
    raw: dict = {}
    source = "params"
    if params_file is not None:
        source = str(params_file)
        raw = read_yaml(params_file)
        check_sections(raw, task.name, tasks, source)
    raw_params, sweep = task_section(raw, task.name, source)
    values = dict(parse_override(text, task.name) for text in overrides)
    others = (set(raw) | set(tasks)) - {task.name} - set(task.params_model.model_fields)
    for key in values:
        if key.split(".")[0] in others:
            raise UserError(f"--set {key}: {key.split('.')[0]} is another task's section; `{task.name}` takes "
                            f"its own keys (--set {task.name}.KEY=VALUE or --set KEY=VALUE)")
    prefix = f"{SWEEP_KEY}."
    sweep = set_dotted(sweep, {k[len(prefix):]: v for k, v in values.items() if k.startswith(prefix)},
                       task.name, "--set")
    raw_params = set_dotted(raw_params, {k: v for k, v in values.items() if not k.startswith(prefix)},
                            task.name, "--set")
    if overrides:
        source = f"{source} with --set"
    return validate(task.params_model, raw_params, task.name, source), sweep


def check_sections(raw: Mapping[str, Any], task: str, tasks: Collection[str], source: str) -> None:
    """A top-level section that is no installed task but looks like one is a typo, not data for some
    other tool: ``collabb:`` would otherwise leave collab on its defaults without a word."""
    known = set(tasks) | {task}
    for key in raw:
        if key not in known and (close := difflib.get_close_matches(str(key), known, n=1, cutoff=0.75)):
            raise UserError(f"{source}: {key}: no installed task of that name; did you mean {close[0]}?")
