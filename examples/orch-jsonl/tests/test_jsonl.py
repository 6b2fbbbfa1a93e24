"""orch-jsonl with orch's pytest kit: a run and a sweep of the kit's demo task, line by line."""

import json


def events(sandbox) -> list[dict]:
    return [json.loads(line) for line in (sandbox.root / "orch-events.jsonl").read_text().splitlines()]


def test_a_run_is_one_line_per_event(orch_sandbox, demo_task):
    result = orch_sandbox.run(demo_task, epochs=2)
    lines = events(orch_sandbox)
    assert [e["event"] for e in lines] == ["run_start", "epoch_end", "epoch_end", "artifact", "artifact",
                                           "report_built", "run_end"]
    assert lines[0]["params"]["epochs"] == 2 and lines[0]["tags"]["orch.task"] == "demo"
    assert lines[2]["metrics"]["val_rmse"] == result.epochs[1][1]["val_rmse"]
    assert {(e["file"], e["kind"]) for e in lines if e["event"] == "artifact"} == {("history.csv", "table"),
                                                                                   ("w.json", "model")}
    assert lines[-2]["report"]["diagnosis"] == result.report.diagnosis
    assert lines[-1]["metrics"]["val_rmse"] == result.metrics["val_rmse"]


def test_a_sweep_and_its_trials(orch_sandbox, demo_task):
    sweep = orch_sandbox.sweep(demo_task, trials=2, epochs=1)
    lines = events(orch_sandbox)
    kinds = [e["event"] for e in lines]
    assert kinds[0] == "sweep_start" and kinds[-1] == "sweep_end"
    assert kinds.count("trial_start") == kinds.count("trial_end") == 2
    assert [e["result"]["state"] for e in lines if e["event"] == "trial_end"] == ["COMPLETE", "COMPLETE"]
    assert lines[-1]["best"]["number"] == sweep.best.number
