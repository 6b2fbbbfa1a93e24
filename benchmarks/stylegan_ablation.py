"""StyleGAN at small scale: the paper's Table 1 ablation and training speed, on the embedded data.

    python benchmarks/stylegan_ablation.py [--epochs N] [--set key=value ...]

Runs `orch run stylegan` four times in a scratch project (its own MLflow store), with the default
params plus --set overrides, switching the generator's features on one at a time:

  A  baseline      traditional input (z through a dense layer), no noise, no mixing
  B  + styles      mapping network, learned constant input, AdaIN styles
  C  + noise       per-layer noise inputs
  D  + mixing      style-mixing regularization (the full default generator)

and reads each run's FID/KID (validation set), images per second and training seconds. Writes
benchmarks/results/stylegan_ablation.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from orch_cli import orch

HERE = Path(__file__).resolve().parent
CONFIGS = [
    ("A baseline (traditional generator)", {"styles": "false", "noise": "false", "mix_prob": "0"}),
    ("B + mapping and styles", {"styles": "true", "noise": "false", "mix_prob": "0"}),
    ("C + noise inputs", {"styles": "true", "noise": "true", "mix_prob": "0"}),
    ("D + mixing regularization (default)", {"styles": "true", "noise": "true", "mix_prob": "0.9"}),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=None, help="override stylegan.epochs")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="extra key=value params")
    args = parser.parse_args()
    extra = ["checkpoints=false", *args.overrides] + ([f"epochs={args.epochs}"] if args.epochs else [])
    rows = []
    with tempfile.TemporaryDirectory(prefix="stylegan-ablation-") as tmp:
        project = Path(tmp)
        (project / "params.yaml").write_text("{}\n")
        for name, switches in CONFIGS:
            sets = [f"{k}={v}" for k, v in switches.items()] + extra
            start = time.perf_counter()
            orch(project, ["run", "stylegan", "--out", str(project / "work")], sets, name)
            metrics = {}
            for stage in ("features", "train", "evaluate"):
                metrics.update(json.loads((project / "work" / stage / "metrics.json").read_text()))
            row = {"config": name, "sets": sets, "val_fid": metrics["val_fid"], "val_kid": metrics["val_kid"],
                   "train_fid": metrics["train_fid"], "untrained_val_fid": metrics["untrained_val_fid"],
                   "floor_fid": metrics["floor_fid"], "images_per_s": metrics["images_per_s"],
                   "train_seconds": metrics["train_seconds"], "kimg": metrics["kimg"],
                   "wall_seconds": time.perf_counter() - start}
            rows.append(row)
            print(f"{name:<40} val FID {row['val_fid']:8.2f}  KID {row['val_kid']:.4f}  "
                  f"{row['images_per_s']:.0f} img/s", flush=True)
    result = {"command": " ".join(["python benchmarks/stylegan_ablation.py", *sys.argv[1:]]),
              "date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "rows": rows}
    (HERE / "results" / "stylegan_ablation.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = ["# StyleGAN ablation (small scale, embedded Fashion-MNIST at 32x32)", "",
             f"`{result['command']}` on {result['machine']}, {result['date']}. FID/KID: {rows[0]['kimg']:.0f}k "
             "training images shown; features from the pipeline's own classifier (not Inception), 1000 generated "
             "vs 1000 held-out real images.", "",
             "| configuration | val FID | val KID | train FID | images/s | train s |", "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['config']} | {r['val_fid']:.2f} | {r['val_kid']:.4f} | {r['train_fid']:.2f} | "
                     f"{r['images_per_s']:.0f} | {r['train_seconds']:.0f} |")
    lines += ["", f"Untrained generator: val FID {rows[-1]['untrained_val_fid']:.1f}. Real vs real floor: "
              f"{rows[-1]['floor_fid']:.2f}."]
    (HERE / "results" / "stylegan_ablation.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {HERE / 'results' / 'stylegan_ablation.md'}")


if __name__ == "__main__":
    main()
