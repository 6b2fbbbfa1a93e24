"""Sweeps that reuse cached stages: an 8-trial ULMFiT sweep over ``classifier.*`` and an 8-trial
Rossmann sweep over ``gbm.*``, with the stage cache, against the same sweeps without it.

    python benchmarks/sweep_cache.py [--tasks ulmfit rossmann] [--trials 8] [--uncached-trials 2]

Each sweep runs in a fresh project (the default params; ULMFiT without the ablation classifiers,
which train again in every trial whatever the cache). The sweep without the cache runs fewer
trials (``--uncached-trials``, every trial costing the same stages) and is scaled to ``--trials``;
the stages each sweep ran, and those its trials reused, are read from the trials' MLflow tags.
Writes benchmarks/results/sweep_cache.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
SWEEPS = {
    "ulmfit": {"params": {"ablation": []},
               "space": {"classifier.lr": {"low": 0.05, "high": 0.5, "scale": "log"},
                         "classifier.drop_mult": {"low": 0.2, "high": 0.8}}},
    "rossmann": {"params": {},
                 "space": {"gbm.learning_rate": {"low": 0.01, "high": 0.3, "scale": "log"},
                           "gbm.reg_lambda": {"low": 1e-3, "high": 10.0, "scale": "log"}}},
}


def sweep(task: str, trials: int, cached: bool) -> dict:
    """One sweep in a fresh project: its wall time, and per stage how many trials ran it or reused it."""
    from mlflow.tracking import MlflowClient

    with tempfile.TemporaryDirectory(prefix=f"orch-bench-{task}-") as tmp:
        project = Path(tmp)
        spec = SWEEPS[task]
        (project / "params.yaml").write_text(yaml.safe_dump({task: {**spec["params"], "sweep": {"space": spec["space"]}}}))
        env = {**os.environ, "ORCH_CACHE": "1" if cached else "0", "MLFLOW_TRACKING_URI": ""}
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "orchestrator", "-q", "sweep", task, "--trials", str(trials)],
                              cwd=project, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(f"the {task} sweep failed:\n{done.stderr[-3000:]}")
        client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
        runs = client.search_runs([client.get_experiment_by_name(task).experiment_id], max_results=1000)
        trial_runs = [r for r in runs if "orch.trial" in r.data.tags]
        reused = Counter(s for r in trial_runs for s in r.data.tags.get("orch.cached_stages", "").split(",") if s)
    return {"trials": len(trial_runs), "seconds": round(seconds, 1), "reused": dict(reused)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", choices=list(SWEEPS), default=list(SWEEPS))
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--uncached-trials", type=int, default=2)
    args = parser.parse_args()
    from orchestrator.manager import get_plugin_manager
    from orchestrator.registry import load_tasks

    tasks = load_tasks(get_plugin_manager())
    results = {}
    for task in args.tasks:
        trial_stages = [s.name for s in tasks[task].task.stages if s.name not in ("prepare", "corpus")]
        with_cache = sweep(task, args.trials, cached=True)
        without = sweep(task, args.uncached_trials, cached=False)
        scaled = without["seconds"] / args.uncached_trials * args.trials
        ran = {s: args.trials - with_cache["reused"].get(s, 0) for s in trial_stages}
        results[task] = {"with_cache": with_cache, "without_cache": without,
                         "without_cache_scaled_seconds": round(scaled, 1), "speedup": round(scaled / with_cache["seconds"], 2),
                         "stages_run_with_cache": ran}
        print(f"{task}: {args.trials} trials {with_cache['seconds']:.0f} s with the cache, about {scaled:.0f} s without "
              f"({scaled / with_cache['seconds']:.2f}x); stages run: {ran}")
    result = {"command": "python benchmarks/sweep_cache.py " + " ".join(sys.argv[1:]), "date": time.strftime("%Y-%m-%d"),
              "machine": f"{platform.machine()}, {os.cpu_count()} cores", "results": results}
    out = HERE / "results" / "sweep_cache"
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    lines = ["# Sweeps that reuse cached stages", "", f"`{result['command']}` on {result['machine']}, {result['date']}.", "",
             "| task | trials | with the cache | without (scaled from its trials) | speed-up | stages run with the cache |",
             "|---|---:|---:|---:|---:|---|"]
    for task, r in results.items():
        stages = ", ".join(f"{s} {n}x" for s, n in r["stages_run_with_cache"].items())
        lines.append(f"| {task} | {r['with_cache']['trials']} | {r['with_cache']['seconds']:.0f} s | "
                     f"{r['without_cache_scaled_seconds']:.0f} s ({r['without_cache']['trials']} trials: "
                     f"{r['without_cache']['seconds']:.0f} s) | **{r['speedup']:.2f}x** | {stages} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
