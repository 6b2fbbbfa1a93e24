"""ULMFiT's sample efficiency on the embedded reviews: validation error of the full method and of the
same classifier from scratch, for several numbers of labelled documents and seeds (the paper's
Figure 3, at small scale).

    python benchmarks/ulmfit_labels.py [--docs 1000 3000 all] [--seeds 0 1 2] [--from outputs] [--set key=value ...]

Reuses the data and language models of an earlier `dvc repro` (outputs/ulmfit/{prepare, corpus,
pretrain, finetune} under --from; run `dvc repro ulmfit_finetune` first), copied into a scratch
project with this project's params.yaml, then per (docs, seed) runs `orch stage ulmfit classify`
(full ULMFiT) and the ablation stage's `scratch` row. A seed changes the sample of labelled documents,
the initialization, the dropout masks and the batch order; the split and the LMs stay fixed. Writes
benchmarks/results/ulmfit_labels.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from orch_cli import orch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
UPSTREAM = ("prepare", "corpus", "pretrain", "finetune")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", nargs="+", default=["1000", "3000", "all"], help="labelled documents ('all': every one)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--from", dest="source", type=Path, default=ROOT / "outputs", help="outputs folder of a dvc repro")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="extra key=value params")
    args = parser.parse_args()
    missing = [s for s in UPSTREAM if not (args.source / "ulmfit" / s / "metrics.json").exists()]
    if missing:
        sys.exit(f"{args.source}: no ulmfit {', '.join(missing)} outputs; run `dvc repro ulmfit_finetune` first")
    rows = []
    with tempfile.TemporaryDirectory(prefix="ulmfit-labels-") as tmp:
        project = Path(tmp)
        shutil.copy(ROOT / "params.yaml", project / "params.yaml")
        for stage in UPSTREAM:
            shutil.copytree(args.source / "ulmfit" / stage, project / "outputs" / "ulmfit" / stage)
        # the copied stages' MLflow run lives in another store: each classifier logs a run of its own here
        run_file = project / "outputs/ulmfit/pretrain/run.json"
        run_file.write_text(json.dumps({**json.loads(run_file.read_text()), "tracking": {}}))
        n_train = json.loads((project / "outputs/ulmfit/prepare/metrics.json").read_text())["n_train"]
        for docs in args.docs:
            for seed in args.seeds:
                sets = [f"seed={seed}", f"classifier.train_docs={'null' if docs == 'all' else docs}", *args.overrides]
                row = {"docs": int(n_train) if docs == "all" else int(docs), "seed": seed}
                for variant, stage, extra, prefix in (("ulmfit", "classify", [], ""),
                                                      ("scratch", "ablation", ["ablation=[scratch]"], "scratch.")):
                    orch(project, ["stage", "ulmfit", stage], sets + extra, f"{variant}, {docs} docs, seed {seed}")
                    m = json.loads((project / "outputs" / "ulmfit" / stage / "metrics.json").read_text())
                    row[f"{variant}_val_error"] = m[f"{prefix}val_error"]
                    row[f"{variant}_train_error"] = m[f"{prefix}train_error"]
                    row[f"{variant}_seconds"] = m[f"{prefix}seconds"]
                rows.append(row)
                print(f"{row['docs']:>6} docs, seed {seed}: ulmfit {row['ulmfit_val_error']:.2%}  "
                      f"scratch {row['scratch_val_error']:.2%}", flush=True)
        lm = json.loads((project / "outputs/ulmfit/finetune/metrics.json").read_text())
        prep = json.loads((project / "outputs/ulmfit/prepare/metrics.json").read_text())
    result = {"command": " ".join(["python benchmarks/ulmfit_labels.py", *sys.argv[1:]]),
              "date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "finetuned_lm_val_ppl": lm["finetune_val_ppl"], "finetuned_lm_val_acc": lm["finetune_val_acc"],
              "val_majority_error": prep["val_majority_error"], "rows": rows, "summary": summarize(rows)}
    (HERE / "results" / "ulmfit_labels.json").write_text(json.dumps(result, indent=2) + "\n")
    (HERE / "results" / "ulmfit_labels.md").write_text(markdown(result))
    print(f"wrote {HERE / 'results' / 'ulmfit_labels.md'}")


def summarize(rows: list[dict]) -> list[dict]:
    """Per number of documents: mean and spread over seeds, and how many seeds ULMFiT won."""
    out = []
    for docs in sorted({r["docs"] for r in rows}):
        group = [r for r in rows if r["docs"] == docs]
        entry = {"docs": docs, "seeds": len(group),
                 "ulmfit_wins": sum(r["ulmfit_val_error"] < r["scratch_val_error"] for r in group)}
        for v in ("ulmfit", "scratch"):
            errors = [r[f"{v}_val_error"] for r in group]
            entry[f"{v}_mean"] = statistics.mean(errors)
            entry[f"{v}_min"], entry[f"{v}_max"] = min(errors), max(errors)
        out.append(entry)
    return out


def markdown(result: dict) -> str:
    lines = ["# ULMFiT against the same classifier from scratch, by number of labelled reviews", "",
             f"`{result['command']}` on {result['machine']}, {result['date']}. Validation error (seeded 20% of "
             f"the reviews; majority class {result['val_majority_error']:.2%}); the fine-tuned LM: perplexity "
             f"{result['finetuned_lm_val_ppl']:.1f}, next-token accuracy {result['finetuned_lm_val_acc']:.1%}.", "",
             "| labelled docs | seeds | ULMFiT mean (min-max) | scratch mean (min-max) | ULMFiT better in |",
             "|---:|---:|---:|---:|---:|"]
    for s in result["summary"]:
        lines.append(f"| {s['docs']:,} | {s['seeds']} | {s['ulmfit_mean']:.2%} ({s['ulmfit_min']:.2%}-{s['ulmfit_max']:.2%}) "
                     f"| {s['scratch_mean']:.2%} ({s['scratch_min']:.2%}-{s['scratch_max']:.2%}) "
                     f"| {s['ulmfit_wins']} of {s['seeds']} seeds |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
