"""ULMFiT at the fastai anchor's size on the embedded reviews: AWD-LSTM 200/400/2, every labelled
training review, against the anchor measured with fastai 2.8.12 on the same data and split policy
(seeded random 80/20, no downloaded weights): from scratch 8.70%, LM fine-tuning + gradual
unfreezing 7.80%, majority 18.75%; and seconds per epoch against fastai's 171 s (LM) and 60 s
(classifier) on this machine.

    python benchmarks/ulmfit_anchor.py [--set key=value ...]

One `orch run ulmfit` in a scratch project (its own MLflow store) with the default params plus
ANCHOR and any --set overrides; about 45 minutes on 2 cores. Writes benchmarks/results/ulmfit_anchor.json
and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

from orch_cli import orch
from orch_ulmfit.report import FASTAI_ANCHOR_ERROR

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
ANCHOR_SECONDS = {"lm": 171, "classifier": 60}
ANCHOR = ["emb_sz=200", "n_hid=400", "n_layers=2", "max_vocab=30000", "drop_mult=0.3", "classifier.train_docs=null",
          "finetune.epochs=4", "finetune.lr=1e-2", "classifier.lr=5e-2", "classifier.final_epochs=3",
          "ablation=[scratch]"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="extra key=value params")
    args = parser.parse_args()
    sets = ANCHOR + args.overrides
    with tempfile.TemporaryDirectory(prefix="ulmfit-anchor-") as tmp:
        project = Path(tmp)
        shutil.copy(ROOT / "params.yaml", project / "params.yaml")
        start = time.perf_counter()
        orch(project, ["run", "ulmfit", "--out", str(project / "work")], sets, "anchor")
        wall = time.perf_counter() - start
        m = {}
        for stage in ("prepare", "corpus", "pretrain", "finetune", "classify", "ablation"):
            m.update(json.loads((project / "work" / stage / "metrics.json").read_text()))
    result = {
        "command": " ".join(["python benchmarks/ulmfit_anchor.py", *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "sets": sets, "wall_seconds": round(wall, 1),
        "val_error": {"ulmfit": m["val_error"], "scratch": m["scratch.val_error"], "majority": m["val_majority_error"]},
        "train_error": {"ulmfit": m["train_error"], "scratch": m["scratch.train_error"]},
        "anchor_val_error": FASTAI_ANCHOR_ERROR,
        "lm": {"pretrain_val_ppl": m["pretrain_val_ppl"], "pretrain_val_acc": m["pretrain_val_acc"],
               "finetune_before_val_ppl": m["finetune_before_val_ppl"], "finetune_val_ppl": m["finetune_val_ppl"],
               "finetune_val_acc": m["finetune_val_acc"], "vocab_size": int(m["vocab_size"])},
        "seconds_per_epoch": {"pretrain": m["pretrain_epoch_seconds"], "finetune": m["finetune_epoch_seconds"],
                              "classifier": m["epoch_seconds"]},
        "anchor_seconds_per_epoch": ANCHOR_SECONDS,
        "n_train": int(m["n_train"]), "n_val": int(m["n_val"]),
    }
    (HERE / "results" / "ulmfit_anchor.json").write_text(json.dumps(result, indent=2) + "\n")
    (HERE / "results" / "ulmfit_anchor.md").write_text(markdown(result))
    print(markdown(result))


def markdown(r: dict) -> str:
    e, a, s = r["val_error"], r["anchor_val_error"], r["seconds_per_epoch"]
    return "\n".join([
        "# ULMFiT at the fastai anchor's size (AWD-LSTM 200/400/2, every labelled review)", "",
        f"`{r['command']}` on {r['machine']}, {r['date']}; {r['wall_seconds'] / 60:.0f} minutes. "
        f"Params: defaults + `{' '.join(r['sets'])}`. {r['n_train']:,} labelled training reviews, "
        f"{r['n_val']:,} validation reviews; vocabulary {r['lm']['vocab_size']:,}.", "",
        "| validation error | here | fastai anchor |", "|---|---:|---:|",
        f"| classifier from scratch | {e['scratch']:.2%} | {a['scratch']:.2%} |",
        f"| ULMFiT (here with general-domain pretraining) | {e['ulmfit']:.2%} | {a['ulmfit']:.2%} |",
        f"| majority class | {e['majority']:.2%} | {a['majority']:.2%} |", "",
        f"Language models: general corpus perplexity {r['lm']['pretrain_val_ppl']:.1f}; reviews before fine-tuning "
        f"{r['lm']['finetune_before_val_ppl']:.1f}, after {r['lm']['finetune_val_ppl']:.1f} "
        f"(accuracy {r['lm']['finetune_val_acc']:.1%}).", "",
        "| seconds per epoch | here | fastai anchor |", "|---|---:|---:|",
        f"| LM fine-tuning on the reviews | {s['finetune']:.0f} | {r['anchor_seconds_per_epoch']['lm']} |",
        f"| classifier (all unfrozen epochs averaged with the frozen ones) | {s['classifier']:.0f} | "
        f"{r['anchor_seconds_per_epoch']['classifier']} |",
        f"| general-domain LM (1M tokens) | {s['pretrain']:.0f} | - |", ""])


if __name__ == "__main__":
    main()
