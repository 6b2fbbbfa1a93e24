"""Warm starts against cold ones: the smoke pipeline (`dvc repro pipelines/smoke/dvc.yaml`, 24
stages, each its own `orch stage` process) in a fresh clone of HEAD, cold (ORCH_WARM=0) and warm
(no server at the start: the first command starts it), then single commands on its outputs, and a
2-trial collab sweep with 2 worker processes (a new study each time, the stage cache off: every
trial trains).

    python benchmarks/warm_start.py [--repeats 5]

Writes benchmarks/results/warm_start.json. Needs the project installed (`orch`, `dvc` on PATH).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SMOKE = "pipelines/smoke/dvc.yaml"
COMMANDS = {"orch tasks": ["orch", "tasks"], "orch stage collab report": ["orch", "stage", "collab", "report"],
            "orch report collab": ["orch", "report", "collab"],
            "orch sweep collab --trials 2 --jobs 2": ["orch", "-q", "sweep", "collab", "--trials", "2", "--jobs", "2",
                                                      "--study", "bench-{run}"]}


def timed(cmd: list[str], cwd: Path, env: dict) -> float:
    start = time.perf_counter()
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    return time.perf_counter() - start


def stop_servers(runtime: Path) -> None:
    for lock in (runtime / "warm").glob("*.lock"):
        pid = lock.read_text().strip()
        if pid.isdigit():
            try:
                os.kill(int(pid), 9)
            except ProcessLookupError:
                pass


def fresh_clone(tmp: Path, name: str) -> Path:
    clone = tmp / name
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    subprocess.run(["dvc", "config", "core.analytics", "false"], cwd=clone, check=True, capture_output=True)
    return clone


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ow", dir="/tmp") as tmp:
        tmp = Path(tmp)
        runtime = tmp / "rt"  # this benchmark's own servers, none up at the start
        base = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]),
                "ORCH_RUNTIME_DIR": str(runtime)}
        base.pop("MLFLOW_TRACKING_URI", None)
        cold_env, warm_env = {**base, "ORCH_WARM": "0"}, {**base, "ORCH_WARM": "1"}
        pipeline = {"cold": timed(["dvc", "repro", SMOKE], fresh_clone(tmp, "cold"), cold_env)}
        clone = fresh_clone(tmp, "warm")
        pipeline["warm"] = timed(["dvc", "repro", SMOKE], clone, warm_env)
        smoke = clone / "pipelines" / "smoke"
        commands = {}
        for label, cmd in COMMANDS.items():
            runs = {"cold": [], "warm": []}
            for i in range(args.repeats):  # interleaved: drifts in load hit both alike
                for mode, env in (("cold", cold_env), ("warm", warm_env)):
                    argv = [a.format(run=f"{mode}{i}") for a in cmd]
                    runs[mode].append(timed(argv, smoke, {**env, "ORCH_CACHE": "0"}))
            commands[label] = {k: round(statistics.median(v), 3) for k, v in runs.items()}
            commands[label]["ratio"] = round(commands[label]["warm"] / commands[label]["cold"], 3)
        stop_servers(runtime)
    result = {
        "command": f"python benchmarks/warm_start.py --repeats {args.repeats}",
        "date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "smoke_pipeline_seconds": {k: round(v, 1) for k, v in pipeline.items()},
        "smoke_pipeline_ratio": round(pipeline["warm"] / pipeline["cold"], 3),
        "command_seconds_median": commands,
    }
    out = HERE / "results" / "warm_start.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
