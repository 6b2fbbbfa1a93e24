"""orch against fastai, side by side in one run: the ULMFiT language model and classifier (AWD-LSTM,
the same token ids, vocabulary, model size, batch size, BPTT and epochs) and the collab model
(EmbeddingDotBias on ml-latest-small, the same split), each trained once through fastai and once
through orch's own task code, one after the other, on the same number of threads.

    python benchmarks/peer_fastai.py [--lm-tokens 1000000] [--clf-docs 4000] [--parts language_model classifier collab]
                                     [--repeats 1]

fastai is never a dependency of orch: the benchmark makes a throwaway venv for it
(``--venv``, default ~/.cache/orch-bench/fastai-2.8.12) with the same torch build as orch's
(2.13.0, CPU) and fastai 2.8.12 without torchvision (its text and collab modules do not need it).
Reports seconds of training (validation excluded), items per second and the final validation
figures of both, and orch's throughput as a ratio of fastai's (above 1: orch is faster). With
``--repeats N`` both sides train N times, alternating, repeat i with seed i: speed is the run of
median throughput, each validation figure the mean over the seeds (every seed's value is listed).
Both sides train at the same learning rates. Writes benchmarks/results/peer_fastai.json and .md.
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
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
FASTAI = "fastai==2.8.12"
FASTAI_DEPS = ["fastcore>=2.2.22", "fasttransform>=0.0.3", "fastprogress>=0.2.4", "fastdownload>=0.0.8,<2",
               "plum-dispatch<2.10", "spacy<4", "pandas", "matplotlib", "scikit-learn", "scipy", "pyyaml", "requests",
               "pillow", "cloudpickle", "packaging"]
PARTS = ("language_model", "classifier", "collab")


def fastai_venv(folder: Path) -> Path:
    """The throwaway venv's python, made on first use: torch as orch pins it, fastai, fastai's
    dependencies but torchvision (whose PyPI build does not load beside this torch)."""
    python = folder / "bin" / "python"
    check = [str(python), "-c", "import fastai.text.all, fastai.collab, torch; print(fastai.__version__, torch.__version__)"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    print(f"making the fastai venv in {folder} (once)", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(folder)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "torch==2.13.0"], check=True)
    subprocess.run([*pip, "--no-deps", FASTAI], check=True)
    subprocess.run([*pip, *FASTAI_DEPS], check=True)
    subprocess.run(check, check=True)
    return python


def write_data(path: Path, args) -> dict:
    """The reviews tokenized and numericalized by orch's pipeline, split 80/20 as orch's ulmfit does,
    and MovieLens with orch's collab split: what both sides train on."""
    from orch_collab import data as collab_data
    from orch_ulmfit import data, text

    with tempfile.TemporaryDirectory() as tmp:
        labelled = data.load_labelled("embedded", Path(tmp))
        ratings = collab_data.load(collab_data.export_embedded(Path(tmp) / "ml"))
    tokens = text.tokenize(labelled.docs, 2)
    n_train = int(len(tokens) * 0.8)
    vocab = text.Vocab.build(tokens[:n_train], args.max_vocab, 2)
    ids = [vocab.numericalize(t).astype(np.int64) for t in tokens]
    labels = np.array(labelled.labels, dtype=np.int64)
    lm_train = _first_tokens(ids[:n_train], args.lm_tokens)
    lm_val = _first_tokens(ids[n_train:], args.lm_val_tokens)
    clf = [d[: args.max_len] for d in ids]  # both sides see the same (truncated) documents
    split = collab_data.split(len(ratings.frame), 0.2, 0.05, 42)  # orch's defaults; train-dev trains here
    frame = ratings.frame
    arrays = {"vocab_size": np.array(len(vocab)),
              "lm_train": np.concatenate(lm_train), "lm_train_lens": np.array([len(d) for d in lm_train]),
              "lm_val": np.concatenate(lm_val), "lm_val_lens": np.array([len(d) for d in lm_val]),
              "clf_train": np.concatenate(clf[: args.clf_docs]), "clf_train_lens": np.array([len(d) for d in clf[: args.clf_docs]]),
              "clf_train_y": labels[: args.clf_docs],
              "clf_val": np.concatenate(clf[n_train:]), "clf_val_lens": np.array([len(d) for d in clf[n_train:]]),
              "clf_val_y": labels[n_train:],
              "c_user": frame["user"].to_numpy(np.int64), "c_item": frame["item"].to_numpy(np.int64),
              "c_rating": frame["rating"].to_numpy(np.float32), "c_split": (split == "val").astype(np.int64)}
    np.savez(path, **arrays)
    return {"vocab": len(vocab), "lm_train_tokens": int(arrays["lm_train"].size), "lm_val_tokens": int(arrays["lm_val"].size),
            "clf_train_docs": int(args.clf_docs), "clf_val_docs": int(len(arrays["clf_val_y"])),
            "ratings_train": int((split != "val").sum()), "ratings_val": int((split == "val").sum())}


def _first_tokens(docs: list[np.ndarray], n: int) -> list[np.ndarray]:
    out, total = [], 0
    for d in docs:
        if total >= n:
            break
        out.append(d)
        total += len(d)
    return out


def _summary(runs: list[dict], part: str) -> dict:
    """The run of median throughput for speed; each figure of quality as its mean over the runs (one
    seed each: a single seed's error moves by a few tenths of a percent), with every run's value."""
    median = sorted(runs, key=lambda r: r[SPEED[part]])[len(runs) // 2]
    quality = {q: float(np.mean([r[q] for r in runs])) for q in QUALITY[part]}
    return {**median, **quality, "per_seed": {q: [r[q] for r in runs] for q in QUALITY[part]}}


def run_side(python: str, script: str, data: Path, part: str, settings: dict) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(settings["threads"]), "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([python, str(HERE / "peer" / script), str(data), part, json.dumps(settings)],
                          capture_output=True, text=True, env=env, timeout=7200)
    if done.returncode != 0:
        raise SystemExit(f"{script} {part} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


SPEED = {"language_model": "tokens_per_s", "classifier": "docs_per_s", "collab": "ratings_per_s"}
QUALITY = {"language_model": ("val_loss", "val_acc"), "classifier": ("val_loss", "val_error"), "collab": ("val_rmse",)}


def _per_seed(side: dict, q: str) -> str:
    values = side.get("per_seed", {}).get(q, [])
    return " (" + ", ".join(f"{v:.4f}" for v in values) + ")" if len(values) > 1 else ""


def markdown(result: dict) -> str:
    s = result["settings"]
    lines = [f"# orch against fastai {FASTAI.split('==')[1]}, in one run", "",
             f"`{result['command']}` on {result['machine']}, {result['date']}; torch {result['torch']}, "
             f"{s['threads']} threads on both sides, one training at a time.", "",
             f"Data: {result['data']}.", "",
             "| model | what | fastai | orch | orch / fastai |", "|---|---|---:|---:|---:|"]
    for part, both in result["results"].items():
        f, o = both["fastai"], both["orch"]
        key = SPEED[part]
        each = f" (runs: {', '.join(f'{r:.2f}x' for r in both['ratios'])})" if len(both["ratios"]) > 1 else ""
        lines.append(f"| {part} | {key.replace('_', ' ')} | {f[key]:,.0f} | {o[key]:,.0f} | **{both['speed_ratio']:.2f}x**{each} |")
        lines.append(f"| | seconds of training | {f['seconds']:.1f} | {o['seconds']:.1f} | |")
        seeds = len(both["ratios"])
        for q in QUALITY[part]:
            what = q.replace("_", " ") + (f", mean of {seeds} seeds" if seeds > 1 else "")
            lines.append(f"| | {what} | {f[q]:.4f}{_per_seed(f, q)} | {o[q]:.4f}{_per_seed(o, q)} | |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", type=Path, default=Path.home() / ".cache" / "orch-bench" / FASTAI.replace("==", "-"))
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--lm-tokens", type=int, default=1_000_000, help="training tokens of the language model "
                        "(about an epoch of the reviews: a shorter slice ends inside STLR's warm-up)")
    parser.add_argument("--lm-val-tokens", type=int, default=60_000)
    parser.add_argument("--clf-docs", type=int, default=4000, help="training reviews of the classifier")
    parser.add_argument("--max-vocab", type=int, default=30_000)
    parser.add_argument("--max-len", type=int, default=150, help="tokens kept of each review for the classifier")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--repeats", type=int, default=1, help="runs of each side per part, alternating; the "
                        "median's figures are reported")
    args = parser.parse_args()
    settings = {"threads": args.threads, "emb": 200, "hid": 400, "layers": 2, "bs": 64, "bptt": 72, "wd": 0.01,
                "clip": 0.4, "lm_epochs": 1, "lm_lr": 1e-2, "lm_drop_mult": 0.3, "clf_bs": 64, "clf_epochs": 4,
                "clf_lr": 1e-2, "clf_drop_mult": 0.5, "max_len": args.max_len, "n_factors": 50, "collab_bs": 64,
                "collab_epochs": 5, "collab_lr": 5e-3, "collab_wd": 0.2}
    python = fastai_venv(args.venv)
    with tempfile.TemporaryDirectory() as tmp:
        data_file = Path(tmp) / "data.npz"
        described = write_data(data_file, args)
        results = {}
        for part in args.parts:
            runs = {"fastai": [], "orch": []}
            for seed in range(args.repeats):  # alternating, so that a slow spell of the machine hits both
                seeded = {**settings, "seed": seed}
                runs["fastai"].append(run_side(str(python), "fastai_side.py", data_file, part, seeded))
                runs["orch"].append(run_side(sys.executable, "orch_side.py", data_file, part, seeded))
            fastai, orch = (_summary(runs[side], part) for side in ("fastai", "orch"))
            ratio = orch[SPEED[part]] / fastai[SPEED[part]]
            results[part] = {"fastai": fastai, "orch": orch, "speed_ratio": round(ratio, 3),
                             "ratios": [round(o[SPEED[part]] / f[SPEED[part]], 3) for f, o in zip(runs["fastai"], runs["orch"])]}
            print(f"{part}: fastai {fastai[SPEED[part]]:,.0f}, orch {orch[SPEED[part]]:,.0f} {SPEED[part]} "
                  f"({ratio:.2f}x); " + ", ".join(f"{q} {fastai[q]:.4f} vs {orch[q]:.4f}" for q in QUALITY[part]))
    import torch

    result = {"command": "python benchmarks/peer_fastai.py " + " ".join(sys.argv[1:]), "date": time.strftime("%Y-%m-%d"),
              "machine": f"{platform.machine()}, {os.cpu_count()} cores", "torch": torch.__version__,
              "settings": settings, "data": ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in described.items()),
              "results": results}
    out = HERE / "results" / "peer_fastai"
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
