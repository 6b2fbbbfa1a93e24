"""Search-space scales, validation, sampling through real Optuna trials, and refining."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pytest
from pydantic import ValidationError

from orchestrator.space import Constraint, ParamSpace, refine_space, sample, values_from_optuna

optuna.logging.set_verbosity(optuna.logging.WARNING)


def draws(spec: ParamSpace, n: int = 2000, seed: int = 0) -> np.ndarray:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    values = []
    for _ in range(n):
        trial = study.ask()
        values.append(spec.suggest(trial, "x"))
        study.tell(trial, 0.0)
    return np.array(values)


def test_log_scale_is_uniform_in_log_space():
    values = draws(ParamSpace(low=1e-4, high=1e-1, scale="log"))
    assert values.min() >= 1e-4 and values.max() <= 1e-1
    # uniform in log10: a third of the draws in each decade
    share_first_decade = np.mean(values < 1e-3)
    assert 0.28 < share_first_decade < 0.39
    assert abs(np.median(np.log10(values)) - (-2.5)) < 0.1


def test_linear_scale_is_uniform():
    values = draws(ParamSpace(low=0, high=10))
    assert abs(np.median(values) - 5) < 0.4 and np.mean(values < 1) < 0.15


def test_reverse_log_spreads_betas_over_decades_of_one_minus_beta():
    values = draws(ParamSpace(low=0.9, high=0.999, scale="reverse_log"))
    assert values.min() >= 0.9 and values.max() <= 0.999
    # half the draws above 0.99 (1 - beta in [1e-3, 1e-2]); a linear scale would put ~9% there
    assert 0.42 < np.mean(values > 0.99) < 0.58


def test_int_log_and_choices():
    ints = draws(ParamSpace(low=8, high=256, scale="log", type="int"), n=500)
    assert ints.dtype.kind == "i" and ints.min() >= 8 and ints.max() <= 256
    assert 0.4 < np.mean(ints <= 45) < 0.6  # geometric middle of 8..256 is ~45
    picks = draws(ParamSpace(choices=[32, 64, 128]), n=300)
    assert set(picks) == {32, 64, 128}


@pytest.mark.parametrize("spec, message", [
    ({"low": 1, "high": 1}, "low must be < high"),
    ({"low": 0, "high": 1, "scale": "log"}, "a log scale needs low > 0"),
    ({"low": 0.9, "high": 1.0, "scale": "reverse_log"}, "reverse_log needs 0 <= low < high < 1"),
    ({"low": 1, "high": 5, "choices": [1]}, "either choices or low/high"),
    ({"low": 1.5, "high": 5, "type": "int"}, "whole-number"),
    ({"high": 5}, "needs low and high"),
    ({"low": 1, "high": 2, "scale": "cubic"}, "linear"),
    ({"low": 1, "high": 2, "step": 1}, "Extra inputs"),
])
def test_invalid_spaces(spec, message):
    with pytest.raises(ValidationError, match=message):
        ParamSpace.model_validate(spec)


def test_reverse_log_params_map_back_to_real_values():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    trial = study.ask()
    values = sample({"beta": ParamSpace(low=0.9, high=0.999, scale="reverse_log")}, trial)
    assert math.isclose(values_from_optuna(trial.params)["beta"], values["beta"])
    assert list(trial.params) == ["1-beta"]


def test_refine_narrows_around_the_best_in_the_sampling_scale():
    space = {"lr": ParamSpace(low=1e-5, high=1e-1, scale="log"),
             "units": ParamSpace(low=8, high=512, type="int", scale="log"),
             "act": ParamSpace(choices=["relu", "gelu", "tanh"])}
    best = [{"lr": 1e-3, "units": 64, "act": "relu"}, {"lr": 2e-3, "units": 100, "act": "gelu"}]
    new = refine_space(space, best)
    assert 1e-5 < new["lr"].low < 1e-3 and 2e-3 < new["lr"].high < 1e-1
    assert new["lr"].high / new["lr"].low < 100  # was 10,000
    assert 8 <= new["units"].low <= 64 and 100 <= new["units"].high <= 512
    assert new["act"].choices == ["relu", "gelu"]


def test_refine_never_leaves_the_original_range():
    space = ParamSpace(low=0.9, high=0.999, scale="reverse_log")
    new = space.refined([0.998, 0.999])
    assert 0.9 <= new.low < 0.998 and new.high == pytest.approx(0.999)


def test_constraint_violation():
    c = Constraint(max=50)
    assert c.violation(10) == 0 and c.violation(60) == 10 and c.violation(None) == math.inf
    assert Constraint(min=1, max=2).violation(0.5) == 0.5
