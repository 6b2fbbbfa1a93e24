"""Sweep throughput with 1 and 2 workers, and the host's bookkeeping per trial, per study storage.

    python benchmarks/scale_out.py [--trials 12] [--real-trials 6]

Two kinds of trials, each swept with `orch sweep TASK --jobs 1` and then `--jobs 2`, in a fresh
project and a fresh study each time:
  tiny   the test suite's toy task (no torch, 2 epochs of nothing): a trial's time is the host's
         bookkeeping alone (sampling, the child run, params and per-epoch metrics to MLflow, the
         artifact, the report stage, Optuna's tell). Run on SQLite and, when Debian's PostgreSQL
         binaries are here, on a PostgreSQL server this benchmark starts (127.0.0.1, temp folder), and
         in Optuna's journal storage (a file, as on a shared file system).
  real   collab on the embedded MovieLens ratings, 2 epochs per trial (CPU-bound training), on SQLite.
Throughput is trials per minute from the first trial's start to the last trial's end (Optuna's
timestamps), so the command's start-up and the parent run's set-up are not in it; the wall time
of the whole command is reported beside it. A worker's first trial also pays its imports (torch,
MLflow's store), so the 2-worker speedup and the bookkeeping per trial use the steady rate: the
time from the moment every worker has ended one trial to the last trial's end, per trial. MLflow tracks to a SQLite store in each project.

Writes benchmarks/results/scale_out.json and prints a table.
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

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TOY_SITE = ROOT / "tests" / "fixtures" / "site"  # the toy plugin, installed as a dist-info folder
SWEEPS = {
    "toy": {"toy": {"epochs": 2, "sweep": {"space": {"lr": {"low": 0.01, "high": 0.2, "scale": "log"}},
                                           "pruner": "none"}}},
    # lr and wd only: every trial costs the same (n_factors would change a trial's cost)
    "collab": {"collab": {"epochs": 2, "sweep": {"pruner": "none", "constraints": {}, "space": {
        "lr": {"low": 1e-3, "high": 1e-2, "scale": "log"}, "wd": {"low": 1e-3, "high": 1.0, "scale": "log"}}}}},
}


def sweep(task: str, trials: int, jobs: int, storage: str | None, work: Path) -> dict:
    project = work / f"{task}-{jobs}-{(storage or 'sqlite').split(':')[0]}"
    project.mkdir()
    (project / "params.yaml").write_text(yaml.safe_dump(SWEEPS[task]))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(TOY_SITE), os.environ.get("PYTHONPATH")]))}
    env.pop("MLFLOW_TRACKING_URI", None)
    cmd = [sys.executable, "-m", "orchestrator", "-q", "sweep", task, "--trials", str(trials), "--jobs", str(jobs),
           "--study", "bench", *(["--storage", storage] if storage else [])]
    start = time.perf_counter()
    out = subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd[2:])} failed in {project}:\n{out.stderr[-2000:]}")
    return {"wall_seconds": wall, **_timings(storage or f"sqlite:///{project / 'optuna.db'}", trials, jobs)}


def _timings(storage: str, trials: int, jobs: int) -> dict:
    import optuna

    from orchestrator.sweep.study import storage as open_storage  # journal:// too

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.load_study(study_name="bench", storage=open_storage(storage, create=False))
    done = [t for t in study.trials if t.datetime_complete]
    assert len(done) == trials, f"{len(done)} trials ended, expected {trials}"
    first = min(t.datetime_start for t in done)
    last = max(t.datetime_complete for t in done)
    span = (last - first).total_seconds()
    per_trial = [(t.datetime_complete - t.datetime_start).total_seconds() for t in done]
    # a worker's first trial also pays its imports (torch, MLflow's store): after the first `jobs`
    # trials have ended every worker is warm, and the rest of the span is the steady rate
    ends = sorted(t.datetime_complete for t in done)
    warm = (ends[-1] - ends[jobs - 1]).total_seconds() / (trials - jobs)
    return {"span_seconds": span, "trials_per_minute": 60 * trials / span, "steady_seconds_per_trial": warm,
            "worker_seconds_per_trial": warm * jobs, "median_trial_seconds": statistics.median(per_trial),
            "first_trial_seconds": max(per_trial[:jobs]), "trials": trials}


def postgres(work: Path):
    """A PostgreSQL server from tests/servers.py, or None (with the reason) when it cannot be had."""
    sys.path.insert(0, str(ROOT / "tests"))
    from servers import Postgres

    (work / "pg").mkdir()
    work.chmod(0o755)  # the server runs as the postgres user when this is root: it must reach its folder
    try:
        return Postgres(work / "pg"), None
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # pytest.skip and .fail raise BaseExceptions: their message is the reason
        return None, str(exc) or type(exc).__name__


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=12, help="tiny trials per sweep")
    parser.add_argument("--real-trials", type=int, default=6, help="collab trials per sweep")
    args = parser.parse_args()
    rows, skipped = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        server, reason = postgres(work)
        if server is None:
            skipped["postgresql"] = reason
        try:
            for jobs in (1, 2):  # one heavy sweep at a time: each has the machine to itself
                rows[f"tiny/sqlite/{jobs}"] = sweep("toy", args.trials, jobs, None, work)
                if server is not None:
                    rows[f"tiny/postgresql/{jobs}"] = sweep("toy", args.trials, jobs, server.url(), work)
                journal = work / f"journal-{jobs}"
                journal.mkdir()
                rows[f"tiny/journal/{jobs}"] = sweep("toy", args.trials, jobs, f"journal://{journal / 'optuna.log'}", work)
                rows[f"real/sqlite/{jobs}"] = sweep("collab", args.real_trials, jobs, None, work)
        finally:
            if server is not None:
                server.stop()
    speedup = {kind: rows[f"{kind}/1"]["steady_seconds_per_trial"] / rows[f"{kind}/2"]["steady_seconds_per_trial"]
               for kind in {k.rsplit("/", 1)[0] for k in rows}}
    result = {
        "command": f"python benchmarks/scale_out.py --trials {args.trials} --real-trials {args.real_trials}",
        "date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "rows": rows, "speedup_2_workers": speedup, "skipped": skipped,
        # a tiny trial does no work: a worker's time per trial is the host's bookkeeping
        "bookkeeping_seconds_per_trial": {k: v["worker_seconds_per_trial"] for k, v in rows.items()
                                          if k.startswith("tiny/")},
    }
    (HERE / "results" / "scale_out.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'trials/storage/workers':<24} {'trials/min':>10} {'steady s/trial':>15} {'first trial s':>14} "
          f"{'wall s':>7}")
    for key, r in rows.items():
        print(f"{key:<24} {r['trials_per_minute']:>10.1f} {r['steady_seconds_per_trial']:>15.2f} "
              f"{r['first_trial_seconds']:>14.2f} {r['wall_seconds']:>7.1f}")
    for kind, x in sorted(speedup.items()):
        print(f"2 workers over 1 (steady rate), {kind}: {x:.2f}x")
    for what, why in skipped.items():
        print(f"skipped {what}: {why}")


if __name__ == "__main__":
    main()
