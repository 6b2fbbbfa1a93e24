"""What a sweep leaves in its output folder: best_params.yaml (the task's params with the best
values: usable as a params file), trials.md (every trial's objective and bias/variance figures)
and trials.json (the same, for programs)."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from pathlib import Path

import yaml

from orchestrator.params import set_dotted
from orchestrator.task import SweepInfo, TrialResult


def write_outputs(sweep: SweepInfo, results: list[TrialResult], best: TrialResult | None, out_dir: Path) -> list[Path]:
    from orchestrator.report import trial_table

    out_dir.mkdir(parents=True, exist_ok=True)
    best_file = out_dir / "best_params.yaml"
    if best is not None:
        doc = {sweep.task: set_dotted(sweep.params, best.params, sweep.task, "best trial")}
        header = f"# best of study {sweep.study}: trial {best.number}, {sweep.metric}={best.value:.6g}\n"
    else:  # still a usable params file: the sweep's own params, said to be no trial's
        doc = {sweep.task: sweep.params}
        header = f"# study {sweep.study}: no completed feasible trial; these are the params the sweep started from\n"
    best_file.write_text(header + yaml.safe_dump(doc, sort_keys=False))
    counts = Counter(r.state for r in results)
    summary = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    table = out_dir / "trials.md"
    table.write_text(f"# Sweep {sweep.study}\n\nObjective: {sweep.direction} `{sweep.metric}`; "
                     f"{len(results)} trials ({summary}).\n\n" + trial_table(results))
    rows = out_dir / "trials.json"
    rows.write_text(json.dumps([{**dataclasses.asdict(r), "feasible": r.feasible} for r in results],
                               indent=1, default=str))
    return [best_file, table, rows]
