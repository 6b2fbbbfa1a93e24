"""Bias/variance arithmetic, the diagnosis and the files the report writes."""

from __future__ import annotations

import pytest

from orchestrator import report
from orchestrator.task import HumanBaseline, TrialResult

HUMAN = HumanBaseline(0.10, "test")


def build(train, train_dev, dev, human=HUMAN):
    return report.build("t", "err", human, {"train_err": train, "train_dev_err": train_dev, "val_err": dev})


def test_gaps_are_differences_of_adjacent_errors():
    r = build(0.15, 0.20, 0.32)
    assert r.avoidable_bias == pytest.approx(0.05)
    assert r.variance == pytest.approx(0.05)
    assert r.data_mismatch == pytest.approx(0.12)


@pytest.mark.parametrize("errors, diagnosis", [
    ((0.30, 0.31, 0.32), "high avoidable bias"),
    ((0.11, 0.30, 0.31), "high variance"),
    ((0.11, 0.12, 0.30), "data mismatch"),
    ((0.1005, 0.1010, 0.1015), "near human level"),
])
def test_diagnosis_follows_the_largest_gap(errors, diagnosis):
    r = build(*errors)
    assert r.diagnosis == diagnosis
    assert r.next_steps == report.NEXT_STEPS[diagnosis]


def test_tolerance_defaults_to_two_percent_of_human_error_and_can_be_declared():
    assert build(0.1, 0.1, 0.1).tolerance == pytest.approx(0.002)
    declared = HumanBaseline(0.1, "x", tolerance=0.05)
    assert build(0.14, 0.14, 0.14, declared).diagnosis == "near human level"


def test_missing_metrics_are_named():
    with pytest.raises(KeyError, match="train_dev_err"):
        report.build("t", "err", HUMAN, {"train_err": 1, "val_err": 1})


def test_files_and_markdown(tmp_path):
    r = build(0.05, 0.20, 0.21)
    files = report.write(r, tmp_path)
    assert [f.name for f in files] == ["report.md", "report.html", "report.png"]
    md = files[0].read_text()
    assert "| avoidable bias = train - human | -0.0500 |" in md
    assert "**Diagnosis: high variance**" in md and "below human level" in md
    html = files[1].read_text()
    assert "<table>" in html and "high variance" in html and 'src="report.png"' in html
    assert files[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and files[2].stat().st_size > 10_000


def test_trial_table_has_a_row_per_trial():
    r = build(0.15, 0.2, 0.3).as_dict()
    rows = [TrialResult(number=0, state="COMPLETE", value=0.3, params={"lr": 0.01}, report=r, violations=[0.0]),
            TrialResult(number=1, state="FAIL", params={"lr": 5.0}, reason="NonFiniteLoss"),
            TrialResult(number=2, state="COMPLETE", value=0.2, params={"lr": 0.1}, violations=[1.5])]
    table = report.trial_table(rows).splitlines()
    assert len(table) == 5
    assert "| 0 | COMPLETE | 0.3000 | 0.1500 | 0.2000 | 0.3000 | 0.0500 | 0.0500 | 0.1000 | data mismatch | lr=0.01 |" == table[2]
    assert table[3].startswith("| 1 | FAIL |")
    assert table[4].startswith("| 2 | COMPLETE (infeasible) | 0.2000 |")
