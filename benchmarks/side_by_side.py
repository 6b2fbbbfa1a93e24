"""Two trainings at once on this machine, against one after the other: torch's thread count.

    python benchmarks/side_by_side.py [--epochs 2] [--repeats 2]

Each `orch run collab --set epochs=N` runs in its own fresh project. Three ways:
  sequential   one run, then the other (each alone: every core)
  shared       both at once, the host choosing each one's threads (its share of the cores among
               the trainings running on the machine, orchestrator/device.py)
  oversubscribed  both at once, each with every core's worth of threads (ORCH_THREADS=cores):
               what torch's default did before the host chose
Reports the wall time of each way (medians over repeats) and each run's training seconds.
Writes benchmarks/results/side_by_side.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def start(folder: Path, epochs: int, threads: int | None) -> subprocess.Popen:
    folder.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "ORCH_THREADS", "MLFLOW_TRACKING_URI")}
    env["ORCH_CACHE"] = "0"  # every run trains: the stage cache would reuse the first one's outputs
    if threads:
        env["ORCH_THREADS"] = str(threads)
    return subprocess.Popen([sys.executable, "-m", "orchestrator", "-q", "run", "collab", "--set", f"epochs={epochs}"],
                            cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def train_seconds(proc: subprocess.Popen) -> float:
    out, err = proc.communicate()
    if proc.returncode != 0:
        sys.exit(f"orch run collab failed:\n{err[-2000:]}")
    return float(re.search(r"train_seconds=([0-9.]+)", out).group(1))


def way(name: str, work: Path, epochs: int) -> dict:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    begin = time.perf_counter()
    if name == "sequential":
        trains = [train_seconds(start(work / f"{name}-{i}", epochs, None)) for i in range(2)]
    else:
        procs = [start(work / f"{name}-{i}", epochs, cores if name == "oversubscribed" else None) for i in range(2)]
        trains = [train_seconds(p) for p in procs]
    return {"wall_seconds": time.perf_counter() - begin, "train_seconds": trains}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    runs: dict[str, list[dict]] = {"sequential": [], "shared": [], "oversubscribed": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):  # interleaved: drifts in the machine's load hit all three alike
            for name in runs:
                runs[name].append(way(name, Path(tmp) / str(r), args.epochs))
    wall = {name: statistics.median(x["wall_seconds"] for x in rows) for name, rows in runs.items()}
    result = {
        "command": f"python benchmarks/side_by_side.py --epochs {args.epochs} --repeats {args.repeats}",
        "date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "median_wall_seconds": wall, "runs": runs,
        "shared_over_sequential": wall["shared"] / wall["sequential"],
        "oversubscribed_over_sequential": wall["oversubscribed"] / wall["sequential"],
    }
    (HERE / "results" / "side_by_side.json").write_text(json.dumps(result, indent=2) + "\n")
    for name, seconds in wall.items():
        trains = ", ".join(f"{t:.1f}" for x in runs[name] for t in x["train_seconds"])
        print(f"{name:<15} wall {seconds:6.1f} s   train seconds per run: {trains}")
    print(f"two at once, shared threads: {result['shared_over_sequential']:.2f}x the time of one after the other; "
          f"oversubscribed: {result['oversubscribed_over_sequential']:.2f}x")


if __name__ == "__main__":
    main()
