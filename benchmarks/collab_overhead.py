"""Orchestration overhead on the collab task: the same training (data, split, epochs, batch size,
seed) as a hand-written PyTorch loop, as the plugin's fit() with no host, and through `orch run`
with MLflow logging.

    python benchmarks/collab_overhead.py [--repeats 3] [--epochs 5]

Writes benchmarks/results/collab_overhead.json and prints a table. Two ratios matter:
  training loop   the train stage's fit() time under `orch run` (hooks + per-epoch MLflow logging)
                  over the same fit() with a no-op callback;
  whole command   wall time of `orch run collab` over the bare script doing the same work in a fresh
                  process (includes MLflow start-up, the SQLite store, the prepare and report stages),
                  warm (the usual case: a warm-start server is up) and cold (ORCH_WARM=0), also in
                  seconds: the fixed cost of the command.
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

import numpy as np

HERE = Path(__file__).resolve().parent
BARE = r"""
import sys, time, json
start = time.perf_counter()
import numpy as np, torch
from torch import nn
from orch_collab import data
from orch_collab.model import EmbeddingDotBias
from orch_collab.train import SplitTensors, fit
epochs, bs, lr, wd, seed, mode = int(sys.argv[1]), 64, 5e-3, 0.2, 42, sys.argv[2]
folder = data.export_embedded(__import__("pathlib").Path(sys.argv[3]))
r = data.load(folder)
labels = data.split(len(r.frame), 0.2, 0.05, seed)
def part(name):
    f = r.frame[labels == name]
    return SplitTensors(torch.tensor(f["user"].to_numpy()), torch.tensor(f["item"].to_numpy()),
                        torch.tensor(f["rating"].to_numpy()))
train, val = part("train"), part("val")
torch.manual_seed(seed)
model = EmbeddingDotBias(r.n_users, r.n_items, 50, (0.0, 5.5))
t0 = time.perf_counter()
if mode == "fit":
    fit(model, train, val, epochs=epochs, bs=bs, lr=lr, wd=wd, seed=seed, on_epoch=lambda e, m: None)
else:  # a hand-written loop: the same optimizer, schedule and batches, nothing else
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=wd)
    steps = (len(train) + bs - 1) // bs
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps)
    gen = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(train), generator=gen)
        for i in range(0, len(order), bs):
            idx = order[i:i + bs]
            loss = nn.functional.mse_loss(model(train.users[idx], train.items[idx]), train.ratings[idx])
            opt.zero_grad(set_to_none=True); loss.backward(); opt.step(); sched.step()
        model.eval()
        with torch.no_grad():
            val_mse = float(((model(val.users, val.items) - val.ratings) ** 2).mean())
train_s = time.perf_counter() - t0
with torch.no_grad():
    model.eval(); rmse = float(((model(val.users, val.items) - val.ratings) ** 2).mean()) ** 0.5
print(json.dumps({"train_seconds": train_s, "total_seconds": time.perf_counter() - start, "val_rmse": rmse}))
"""


def bare(mode: str, epochs: int, workdir: Path) -> dict:
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", BARE, str(epochs), mode, str(workdir / f"ml-{mode}")],
                         capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["wall_seconds"] = time.perf_counter() - start
    return result


def orch_run(epochs: int, workdir: Path, warm: bool) -> dict:
    from mlflow.tracking import MlflowClient

    project = workdir / ("project" if warm else "project-cold")
    project.mkdir(exist_ok=True)
    env = {**os.environ, "ORCH_WARM": "1" if warm else "0", "ORCH_CACHE": "0"}  # each repeat trains: no reuse
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "orchestrator", "-q", "run", "collab", "--set", f"epochs={epochs}"],
                   cwd=project, capture_output=True, text=True, check=True, env=env)
    wall = time.perf_counter() - start
    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    exp = client.get_experiment_by_name("collab")
    run = client.search_runs([exp.experiment_id], order_by=["attributes.start_time DESC"], max_results=1)[0]
    return {"train_seconds": run.data.metrics["train_seconds"], "wall_seconds": wall,
            "val_rmse": run.data.metrics["val_rmse"], "run_id": run.info.run_id}


def warm_up(workdir: Path) -> None:
    """Start the warm-start server the warm runs use, and wait until it answers."""
    from orchestrator.warm import client

    subprocess.run([sys.executable, "-m", "orchestrator", "tasks"], cwd=workdir, capture_output=True, check=True)
    env_client = [sys.executable, "-c", "import sys; from orchestrator.warm import client; "
                  "sys.exit(0 if client.relay(client.socket_path()) is not None else 1)", "tasks"]
    deadline = time.monotonic() + 120
    while subprocess.run(env_client, cwd=workdir, capture_output=True).returncode != 0:
        if time.monotonic() > deadline:
            sys.exit("the warm-start server did not come up within 120 s")
        time.sleep(0.5)
    assert client  # imported to fail early when orch lacks warm starts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    rows: dict[str, list[dict]] = {"loop": [], "fit": [], "orch": [], "orch_cold": []}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        warm_up(work)
        for _ in range(args.repeats):  # interleaved, so drifts in machine load hit all alike
            rows["loop"].append(bare("loop", args.epochs, work))
            rows["fit"].append(bare("fit", args.epochs, work))
            rows["orch"].append(orch_run(args.epochs, work, warm=True))
            rows["orch_cold"].append(orch_run(args.epochs, work, warm=False))
    med = {k: {m: statistics.median(r[m] for r in v) for m in ("train_seconds", "wall_seconds", "val_rmse")}
           for k, v in rows.items()}
    result = {
        "command": f"python benchmarks/collab_overhead.py --repeats {args.repeats} --epochs {args.epochs}",
        "date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "torch_threads": __import__("torch").get_num_threads(),
        "epochs": args.epochs, "repeats": args.repeats, "median": med, "runs": rows,
        "training_loop_overhead": med["orch"]["train_seconds"] / med["fit"]["train_seconds"] - 1,
        "fit_vs_handwritten_loop": med["fit"]["train_seconds"] / med["loop"]["train_seconds"] - 1,
        "whole_command_overhead": med["orch"]["wall_seconds"] / med["fit"]["wall_seconds"] - 1,
        "whole_command_overhead_cold": med["orch_cold"]["wall_seconds"] / med["fit"]["wall_seconds"] - 1,
        "fixed_cost_seconds": med["orch"]["wall_seconds"] - med["orch"]["train_seconds"]
        - (med["fit"]["wall_seconds"] - med["fit"]["train_seconds"]),
        "fixed_cost_seconds_cold": med["orch_cold"]["wall_seconds"] - med["orch_cold"]["train_seconds"]
        - (med["fit"]["wall_seconds"] - med["fit"]["train_seconds"]),
    }
    out = HERE / "results" / "collab_overhead.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'variant':<28}{'train s':>10}{'wall s':>10}{'val_rmse':>10}")
    for name, label in (("loop", "hand-written loop"), ("fit", "plugin fit(), no host"), ("orch", "orch run + MLflow"),
                        ("orch_cold", "orch run, cold start")):
        m = med[name]
        print(f"{label:<28}{m['train_seconds']:>10.2f}{m['wall_seconds']:>10.2f}{m['val_rmse']:>10.4f}")
    print(f"training-loop overhead of orch + MLflow: {result['training_loop_overhead']:+.1%}")
    print(f"fit() against the hand-written loop:     {result['fit_vs_handwritten_loop']:+.1%}")
    print(f"whole-command overhead (fixed start-up): {result['whole_command_overhead']:+.1%} warm, "
          f"{result['whole_command_overhead_cold']:+.1%} cold")
    print(f"fixed cost of orch run over the script:  {result['fixed_cost_seconds']:.2f} s warm, "
          f"{result['fixed_cost_seconds_cold']:.2f} s cold (wall minus training, each)")
    print(f"wrote {out}")
    assert np.isfinite(result["training_loop_overhead"])


if __name__ == "__main__":
    main()
