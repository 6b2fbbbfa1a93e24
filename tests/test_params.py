"""params.yaml validation: one line naming the file and key path; --set typed the same way."""

from __future__ import annotations

import pytest

from orch_collab import build_task
from orchestrator.errors import UserError
from orchestrator.params import flatten, load_task_params, params_hash, parse_override, read_yaml

TASK = build_task()


def load(tmp_path, text: str, overrides=()):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    return load_task_params(TASK, path, list(overrides), tasks=("charrnn", "collab", "rossmann"))


def error_of(tmp_path, text: str, overrides=()) -> str:
    with pytest.raises(UserError) as info:
        load(tmp_path, text, overrides)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_defaults_when_the_task_has_no_section(tmp_path):
    params, sweep = load(tmp_path, "other: {a: 1}\n")
    assert params.lr == 5e-3 and params.n_factors == 50 and sweep == {}


def test_values_and_sweep_section_are_split(tmp_path):
    params, sweep = load(tmp_path, "collab:\n  lr: 0.01\n  sweep:\n    trials: 3\n")
    assert params.lr == 0.01 and sweep == {"trials": 3}


def test_out_of_range_names_the_key_path(tmp_path):
    assert error_of(tmp_path, "collab:\n  lr: -1\n").endswith("params.yaml: collab.lr: must be > 0, got -1")


def test_wrong_type(tmp_path):
    assert error_of(tmp_path, "collab:\n  epochs: many\n").endswith("collab.epochs: must be an integer, got 'many'")


def test_float_for_an_int(tmp_path):
    assert "collab.epochs: must be an integer, got 2.5" in error_of(tmp_path, "collab:\n  epochs: 2.5\n")


def test_unknown_key_lists_the_expected_ones(tmp_path):
    message = error_of(tmp_path, "collab:\n  learning_rate: 0.1\n")
    assert "collab.learning_rate: unknown key (expected one of: bs, data, epochs" in message


def test_cross_field_rule_names_the_keys_without_dumping_the_params(tmp_path):
    message = error_of(tmp_path, "collab:\n  y_range: [5, 1]\n")
    assert message.endswith("params.yaml: collab: y_range must be [low, high] with low < high, got [5.0, 1.0]")
    assert "'lr'" not in message and "value error" not in message.lower()


def test_a_misspelled_task_section_is_an_error_with_the_likely_name(tmp_path):
    message = error_of(tmp_path, "collabb:\n  epochs: 1\n")
    assert message.endswith("params.yaml: collabb: no installed task of that name; did you mean collab?")
    params, _ = load(tmp_path, "dvc_other_tool:\n  x: 1\ncharrnn:\n  epochs: 1\n")  # not like a task: left alone
    assert params.epochs == 5


def test_set_for_another_task_is_refused_and_set_sweep_reaches_the_sweep_section(tmp_path):
    message = error_of(tmp_path, "charrnn: {epochs: 2}\n", ["charrnn.epochs=1"])
    assert message.startswith("--set charrnn.epochs: charrnn is another task's section; `collab` takes its own keys")
    params, sweep = load(tmp_path, "collab:\n  sweep: {trials: 3, space: {lr: {low: 0.1, high: 1}}}\n",
                         ["collab.sweep.trials=5", "sweep.space.lr.high=2", "epochs=2"])
    assert sweep == {"trials": 5, "space": {"lr": {"low": 0.1, "high": 2}}} and params.epochs == 2


def test_section_must_be_a_mapping(tmp_path):
    assert error_of(tmp_path, "collab: 3\n").endswith("collab: expected a mapping of params, got int")


def test_yaml_syntax_error_names_the_line(tmp_path):
    assert "params.yaml: not valid YAML (line 3)" in error_of(tmp_path, "collab:\n  lr: 1\n  bs: : 2\n")


def test_missing_file():
    with pytest.raises(UserError, match="nope.yaml: file not found"):
        read_yaml(__import__("pathlib").Path("nope.yaml"))


def test_set_overrides_are_typed_and_validated(tmp_path):
    params, _ = load(tmp_path, "collab:\n  lr: 0.01\n", ["lr=0.02", "collab.epochs=3", "y_range=[1, 5]"])
    assert params.lr == 0.02 and params.epochs == 3 and params.y_range == (1.0, 5.0)
    message = error_of(tmp_path, "", ["epochs=0"])
    assert message.endswith("with --set: collab.epochs: must be > 0, got 0")
    assert "collab.nope: unknown key" in error_of(tmp_path, "", ["nope=1"])


def test_set_needs_key_equals_value():
    with pytest.raises(UserError, match="expected key=value"):
        parse_override("lr", "collab")
    assert parse_override("collab.data.path=x", "collab") == ("data.path", "x")
    assert parse_override("lr=1e-3", "collab") == ("lr", "1e-3")  # YAML 1.1: pydantic then parses it


def test_yaml_style_float_string_is_accepted(tmp_path):
    params, _ = load(tmp_path, "collab:\n  lr: 1e-3\n")
    assert params.lr == 1e-3


def test_flatten_and_hash():
    assert flatten({"a": {"b": 1, "c": {"d": 2}}, "e": 3}) == {"a.b": 1, "a.c.d": 2, "e": 3}
    assert params_hash({"a": 1, "b": 2}) == params_hash({"b": 2, "a": 1}) != params_hash({"a": 2, "b": 2})
