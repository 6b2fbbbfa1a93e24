"""kill -9 at random moments, then the same command again, until the work is done: every task's
`orch run` on the smoke pipeline's tiny data and params, a 2-worker `orch sweep`, and `dvc repro`
of the smoke pipeline. Counts what the issue asks for: kills made, runs resumed, trials lost,
runs left RUNNING, duplicate trials, final weights identical to an uninterrupted run.

    python benchmarks/kill_campaign.py [--kills 4] [--dvc-kills 2] [--seed 0] [--tasks collab,charrnn,...]
                                       [--checkpoint-every 1]

Each command is started in its own process group and the whole group gets SIGKILL (what a
preempted machine or the OOM killer of a container does), at a uniformly random moment of the
uninterrupted command's duration (the tasks train for longer than the smoke params say:
LONGER). Epochs here last a second or less, so in-epoch checkpoints are made every
--checkpoint-every seconds (ORCH_CHECKPOINT_EVERY; 180 by default in real use) to exercise the
resume from the middle of an epoch as a long epoch would. Writes
benchmarks/results/kill_campaign.{json,md}.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SMOKE = ROOT / "pipelines" / "smoke"
TASKS = ["collab", "charrnn", "rossmann", "stylegan", "ulmfit"]
# longer training than the smoke params' one or two epochs, so that most kills land mid-training
LONGER = {"collab": ["epochs=600"], "charrnn": ["epochs=30"], "rossmann": ["epochs=30"], "stylegan": ["epochs=20"],
          "ulmfit": ["pretrain.epochs=60", "finetune.epochs=60", "classifier.final_epochs=10"]}
TIMING = ("_seconds", "_per_s", "seconds", "_ms_per_1k", "resumed_from_epoch")  # differ between runs


CHECKPOINT_EVERY = {"seconds": "1"}  # set from --checkpoint-every


def env() -> dict:
    return {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]),
            "MLFLOW_DISABLE_TELEMETRY": "true", "ORCH_CHECKPOINT_EVERY": CHECKPOINT_EVERY["seconds"],
            # a fixed thread count: results equal bit for bit whatever else runs (the host's share
            # would follow the trainings alive, and float sums differ with the thread count)
            "ORCH_THREADS": os.environ.get("ORCH_THREADS", "1"),
            "ORCH_CACHE": "0"}  # a rerun resumes from its checkpoint: the reference run's cached outputs would hide that


def project(tmp: Path, name: str) -> Path:
    """A copy of the smoke pipeline's folder (params.yaml and its data) as a project."""
    folder = tmp / name
    shutil.copytree(SMOKE, folder, ignore=shutil.ignore_patterns("outputs", ".orch", "mlflow.db*", "optuna.db*",
                                                                 "mlartifacts", "sweeps"))
    return folder


def run_once(cmd: list[str], cwd: Path, kill_after: float | None) -> tuple[int | None, float, str]:
    """(exit code, seconds, stderr); exit code None when it was killed first."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        _, err = proc.communicate(timeout=kill_after)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        _, err = proc.communicate()
        return None, time.perf_counter() - start, err
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} in {cwd} failed ({proc.returncode}):\n{err[-3000:]}")
    return proc.returncode, time.perf_counter() - start, err


def episode(cmd: list[str], cwd: Path, duration: float, rng: random.Random, store: Path | None = None) -> dict:
    """One kill at a random moment of the command's uninterrupted duration, then the same command
    again to the end. Says whether the kill cut a tracked run short (a run RUNNING in MLflow right
    after it) and whether the rerun resumed from a checkpoint ("resuming from" on stderr)."""
    code, _, _ = run_once(cmd, cwd, kill_after=rng.uniform(0.3, 0.95) * duration)
    killed = code is None
    mid_run = killed and mlflow_runs(store or cwd).get("RUNNING", 0) > 0
    _, seconds, err = run_once(cmd, cwd, kill_after=None)
    return {"killed": killed, "mid_run": mid_run, "resumed": "resuming from" in err,
            "resumed_inside_epoch": "into epoch" in err, "rerun_seconds": round(seconds, 1)}


def summary(episodes: list[dict], same_weights: list[bool], same_metrics: list[bool], running: list[int]) -> dict:
    return {"kills": sum(e["killed"] for e in episodes), "kills_mid_run": sum(e["mid_run"] for e in episodes),
            "resumed_from_checkpoint": sum(e["resumed"] for e in episodes),
            "resumed_inside_epoch": sum(e.get("resumed_inside_epoch", False) for e in episodes),
            "identical_weights": f"{sum(same_weights)} of {len(same_weights)}",
            "identical_metrics": f"{sum(same_metrics)} of {len(same_metrics)}", "left_running": sum(running),
            "episodes": episodes}


def weights(folder: Path) -> dict[str, str]:
    """sha256 of every tensor of every .pt file under ``folder`` (not the file bytes: torch's zip
    records carry no timestamps, but a hash of the values says "bit for bit" without doubt)."""
    import torch

    out = {}
    for path in sorted(folder.rglob("*.pt")):
        if ".orch" in path.parts:
            continue
        blob = torch.load(path, map_location="cpu", weights_only=True)  # a pickle could run code
        state = blob.get("state_dict", blob) if isinstance(blob, dict) else blob
        digest = hashlib.sha256()
        for key in sorted(state) if isinstance(state, dict) else []:
            value = state[key]
            if torch.is_tensor(value):
                digest.update(key.encode())
                digest.update(value.detach().cpu().contiguous().numpy().tobytes())
        out[str(path.relative_to(folder))] = digest.hexdigest()
    return out


def metrics(folder: Path) -> dict[str, float]:
    out = {}
    for path in sorted(folder.rglob("metrics.json")):
        if ".orch" in path.parts:
            continue
        for k, v in json.loads(path.read_text()).items():
            if not k.endswith(TIMING) and k not in TIMING:
                out[f"{path.parent.relative_to(folder)}/{k}"] = v
    return out


def mlflow_runs(folder: Path) -> dict[str, int]:
    from mlflow.tracking import MlflowClient

    if not (folder / "mlflow.db").exists():
        return {}
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    client = MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")
    counts: dict[str, int] = {}
    for exp in client.search_experiments():
        for run in client.search_runs([exp.experiment_id], max_results=10000):
            counts[run.info.status] = counts.get(run.info.status, 0) + 1
    return counts


def task_campaign(tmp: Path, task: str, kills: int, rng: random.Random) -> dict:
    ref = project(tmp, f"{task}-ref")
    cmd = [sys.executable, "-m", "orchestrator", "run", task, "--out", "out",
           *(arg for value in LONGER[task] for arg in ("--set", value))]
    _, duration, _ = run_once(cmd, ref, kill_after=None)
    expected_weights, expected_metrics = weights(ref / "out"), metrics(ref / "out")
    episodes, same_w, same_m, running = [], [], [], []
    for n in range(kills):
        folder = project(tmp, f"{task}-killed-{n}")
        episodes.append(episode(cmd, folder, duration, rng))
        same_w.append(weights(folder / "out") == expected_weights)
        same_m.append(metrics(folder / "out") == expected_metrics)
        running.append(mlflow_runs(folder).get("RUNNING", 0))
    return {"task": task, "command": "orch " + " ".join(cmd[3:]), "uninterrupted_seconds": round(duration, 1),
            "weights_files": len(expected_weights), **summary(episodes, same_w, same_m, running)}


def sweep_campaign(tmp: Path, kills: int, rng: random.Random, trials: int = 6) -> dict:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    cmd = [sys.executable, "-m", "orchestrator", "sweep", "collab", "--trials", str(trials), "--jobs", "2",
           "--study", "kills"]
    _, duration, _ = run_once(cmd, project(tmp, "sweep-ref"), kill_after=None)
    episodes, lost, duplicates, running, met, sampling = [], 0, 0, [], 0, 0
    for n in range(kills):
        folder = project(tmp, f"sweep-{n}")
        episodes.append(episode(cmd, folder, duration, rng))
        study = optuna.load_study(study_name="kills", storage=f"sqlite:///{folder / 'optuna.db'}")
        key = lambda t: json.dumps(t.params, sort_keys=True)  # noqa: E731
        complete = [key(t) for t in study.trials if t.state.name == "COMPLETE"]
        # counted in the budget: completed, pruned, or failed in the task's own code
        ended = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")
                 or t.user_attrs.get("result", {}).get("state") == "FAIL"]
        # values drawn in full but never run to an end (a trial killed while it drew its values
        # never trained: nothing of it is lost, and it is not run again)
        space = set(study.user_attrs.get("space") or {})
        drawn = [t for t in study.trials if t.params and space <= set(t.params)]
        missing = {key(t) for t in drawn} - {key(t) for t in ended}
        sampling += sum(1 for t in study.trials if t.params and not space <= set(t.params))
        if missing:  # kept for a post-mortem: the study and the stderr of the rerun
            keep = Path(tempfile.gettempdir()) / f"orch-kill-lost-{n}.db"
            shutil.copy(folder / "optuna.db", keep)
            print(f"sweep episode {n}: {len(missing)} value set(s) never ended; study kept in {keep}", file=sys.stderr)
        lost += len(missing)
        duplicates += len(complete) - len(set(complete))
        met += len(ended) == trials
        running.append(mlflow_runs(folder).get("RUNNING", 0))
    return {"task": "sweep (2 workers)", "command": "orch " + " ".join(cmd[3:]), "uninterrupted_seconds": round(duration, 1),
            "trials_lost": lost, "duplicate_trials": duplicates, "budget_met": f"{met} of {kills}",
            "killed_while_sampling": sampling,
            **summary(episodes, [], [], running)}


def dvc_campaign(tmp: Path, kills: int, rng: random.Random) -> dict:
    def repo(name: str) -> Path:
        folder = tmp / name
        subprocess.run(["git", "clone", "-q", str(ROOT), str(folder)], check=True)
        return folder

    cmd = ["dvc", "repro", "pipelines/smoke/dvc.yaml"]
    ref = repo("dvc-ref")
    _, duration, _ = run_once(cmd, ref, kill_after=None)
    outputs = Path("pipelines/smoke/outputs")
    expected_weights, expected_metrics = weights(ref / outputs), metrics(ref / outputs)
    episodes, same_w, same_m, running, clean = [], [], [], [], 0
    for n in range(kills):
        folder = repo(f"dvc-{n}")
        episodes.append(episode(cmd, folder, duration, rng, store=folder / "pipelines/smoke"))
        same_w.append(weights(folder / outputs) == expected_weights)
        same_m.append(metrics(folder / outputs) == expected_metrics)
        running.append(mlflow_runs(folder / "pipelines/smoke").get("RUNNING", 0))
        status = subprocess.run(cmd[:1] + ["status", cmd[2]], cwd=folder, env=env(), capture_output=True, text=True)
        clean += "up to date" in status.stdout
    return {"task": "dvc repro (smoke)", "command": " ".join(cmd), "uninterrupted_seconds": round(duration, 1),
            "weights_files": len(expected_weights), "up_to_date": f"{clean} of {kills}",
            **summary(episodes, same_w, same_m, running)}


def write(results: dict) -> None:
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "kill_campaign.json").write_text(json.dumps(results, indent=2) + "\n")
    rows = [*results["tasks"], results["sweep"], *([results["dvc"]] if results.get("dvc") else [])]
    lines = ["# kill -9 campaign", "", f"`python benchmarks/kill_campaign.py --kills {results['kills_per_command']} "
             f"--dvc-kills {results['dvc_kills']} --seed {results['seed']} --checkpoint-every "
             f"{results['checkpoint_every']}` on {results['machine']}. Each kill is one "
             "episode: a fresh project, SIGKILL to the command's process group at a random moment of its "
             "uninterrupted duration, then the same command again to the end.", "",
             f"In-epoch checkpoints every {results.get('checkpoint_every', '-')} s.", "",
             "| command | uninterrupted s | kills (mid-run) | reruns resumed from a checkpoint (inside an epoch) | "
             "identical weights | identical metrics | runs left RUNNING | trials lost | duplicate trials |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| `{r['command']}` | {r['uninterrupted_seconds']} | {r['kills']} ({r['kills_mid_run']}) | "
                     f"{r['resumed_from_checkpoint']} ({r.get('resumed_inside_epoch', '-')}) | {r['identical_weights']} | {r['identical_metrics']} | "
                     f"{r['left_running']} | {r.get('trials_lost', '-')} | {r.get('duplicate_trials', '-')} |")
    t = results["totals"]
    lines += ["", f"Totals: {t['kills']} kills, {t['kills_mid_run']} of them while a tracked run was open; "
              f"{t['resumed']} reruns resumed from a checkpoint ({t.get('resumed_inside_epoch', '-')} of them inside an "
              f"epoch); trials lost {t['trials_lost']}; runs left RUNNING "
              f"{t['left_running']}; duplicate trials {t['duplicate_trials']}; final weights identical to the "
              f"uninterrupted run in {t['identical_weights']} episodes.", "",
              f"Sweep: budget met after the rerun in {results['sweep']['budget_met']} episodes (finished "
              f"trials: completed, pruned or failed by the task); trials killed while they drew their values "
              f"(never trained, not run again): {results['sweep'].get('killed_while_sampling', '-')}.", ""]
    (HERE / "results" / "kill_campaign.md").write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=4, help="kill episodes per task and for the sweep")
    parser.add_argument("--dvc-kills", type=int, default=2, help="kill episodes of dvc repro (0: none)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--checkpoint-every", type=float, default=1.0, help="ORCH_CHECKPOINT_EVERY of the commands")
    args = parser.parse_args()
    CHECKPOINT_EVERY["seconds"] = repr(args.checkpoint_every)
    rng = random.Random(args.seed)
    import platform

    results = {"kills_per_command": args.kills, "dvc_kills": args.dvc_kills, "seed": args.seed,
               "checkpoint_every": args.checkpoint_every,
               "machine": f"{platform.machine()}, {os.cpu_count()} cores", "tasks": []}
    with tempfile.TemporaryDirectory(prefix="orch-kills-") as tmp:
        for task in args.tasks.split(","):
            results["tasks"].append(task_campaign(Path(tmp), task, args.kills, rng))
            print(json.dumps(results["tasks"][-1]), flush=True)
        results["sweep"] = sweep_campaign(Path(tmp), args.kills, rng)
        print(json.dumps(results["sweep"]), flush=True)
        if args.dvc_kills:
            results["dvc"] = dvc_campaign(Path(tmp), args.dvc_kills, rng)
            print(json.dumps(results["dvc"]), flush=True)
    rows = [*results["tasks"], results["sweep"], *([results["dvc"]] if results.get("dvc") else [])]
    weighed = [r for r in rows if r["identical_weights"] != "0 of 0"]
    results["totals"] = {
        "kills": sum(r["kills"] for r in rows), "kills_mid_run": sum(r["kills_mid_run"] for r in rows),
        "resumed": sum(r["resumed_from_checkpoint"] for r in rows),
        "resumed_inside_epoch": sum(r["resumed_inside_epoch"] for r in rows),
        "trials_lost": results["sweep"]["trials_lost"], "duplicate_trials": results["sweep"]["duplicate_trials"],
        "left_running": sum(r["left_running"] for r in rows),
        "identical_weights": f"{sum(int(r['identical_weights'].split()[0]) for r in weighed)} of "
                             f"{sum(int(r['identical_weights'].split()[-1]) for r in weighed)}"}
    write(results)
    print(json.dumps(results["totals"]))


if __name__ == "__main__":
    main()
