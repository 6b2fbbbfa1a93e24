"""Wall time of the full default pipeline (`dvc repro` in a fresh clone of HEAD), per stage and per
task, and of a second, no-op `dvc repro`.

    python benchmarks/dvc_repro.py [--keep DIR]

Needs the project installed (`orch` and `dvc` on PATH). Writes benchmarks/results/dvc_repro.json.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
HEADLINE = ["collab.train.val_rmse", "charrnn.train.val_bpc", "rossmann.gbm.gbm_plain.val_mape",
            "rossmann.gbm.gbm_embeddings.val_mape", "rossmann.train.val_mape", "stylegan.evaluate.val_fid",
            "stylegan.evaluate.untrained_val_fid", "stylegan.features.floor_fid", "ulmfit.classify.val_error",
            "ulmfit.ablation.scratch.val_error", "ulmfit.prepare.val_majority_error"]


def timed(cmd: list[str], cwd: Path, env: dict) -> tuple[float, str]:
    start = time.perf_counter()
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{out.stdout}\n{out.stderr}")
    return time.perf_counter() - start, out.stdout


def repro_with_stage_times(cwd: Path, env: dict) -> tuple[float, dict[str, float]]:
    """`dvc repro`, timing each stage from its "Running stage" line to the next one (or the end)."""
    start = time.perf_counter()
    proc = subprocess.Popen(["dvc", "repro"], cwd=cwd, env={**env, "PYTHONUNBUFFERED": "1"}, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines, marks = [], []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("Running stage"):
            marks.append((line.split("'")[1], time.perf_counter()))
    if proc.wait() != 0:
        sys.exit("dvc repro failed:\n" + "".join(lines[-40:]))
    end = time.perf_counter()
    bounds = [t for _, t in marks[1:]] + [end]
    return end - start, {name: round(b - t, 1) for (name, t), b in zip(marks, bounds)}


def main() -> None:
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])}
    with tempfile.TemporaryDirectory() as tmp:
        clone = Path(tmp) / "clone"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        full, stage_seconds = repro_with_stage_times(clone, env)
        noop, noop_log = timed(["dvc", "repro"], clone, env)
        metrics = {}
        for path in sorted((clone / "outputs").glob("*/*/metrics.json")):
            task, stage = path.parent.parent.name, path.parent.name
            metrics.update({f"{task}.{stage}.{k}": v for k, v in json.loads(path.read_text()).items()})
        if len(sys.argv) > 2 and sys.argv[1] == "--keep":  # keep the outputs to look at the reports
            shutil.copytree(clone / "outputs", Path(sys.argv[2]), dirs_exist_ok=True)
    result = {
        "command": "python benchmarks/dvc_repro.py",
        "date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "full_repro_seconds": round(full, 1), "stages_run": list(stage_seconds),
        "task_seconds": {task: round(sum(v for k, v in stage_seconds.items() if k.split("_")[0] == task), 1)
                         for task in dict.fromkeys(k.split("_")[0] for k in stage_seconds)},
        "stage_seconds": stage_seconds,
        "noop_repro_seconds": round(noop, 2), "noop_output": noop_log.strip().splitlines()[-1:],
        "headline": {k: metrics.get(k) for k in HEADLINE},
    }
    out = HERE / "results" / "dvc_repro.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
