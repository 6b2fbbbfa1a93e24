"""orch-bow with orch's pytest kit."""

import pytest

from orch_bow import data
from orchestrator import UserError

TINY = {"epochs": 2, "max_vocab": 500}


def test_meets_the_contract(check_task):
    result = check_task("bow", **TINY)
    assert result.artifacts["report/words.md"] == "report"


def test_beats_the_majority_class(run_task):
    result = run_task("bow")
    majority = 1 - 0.803  # share of the reviews that recommend
    assert result.metrics["val_error"] < majority - 0.03


@pytest.mark.parametrize("text, message", [
    ("yes great dress\n", "line 1: expected '__label__NAME text'"),
    ("__label__yes great\n__label__yes fine\n", "needs at least two labels"),
])
def test_bad_files_are_one_line(tmp_path, text, message):
    path = tmp_path / "reviews.txt"
    path.write_text(text)
    with pytest.raises(UserError, match=message):
        data.load(path)
