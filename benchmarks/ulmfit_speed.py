"""ULMFiT speed: spaCy tokenization tokens/s with 1 and 2 processes (goal: >= 1.8x), and seconds per
epoch of the language model and the classifier at a given model size on the embedded reviews.

    python benchmarks/ulmfit_speed.py [--docs 8000] [--emb 200 --hid 400 --layers 2] [--lm-tokens 300000]

The LM and classifier are timed on a slice and scaled to one full epoch over the training texts
(LM: every token of the training reviews; classifier: every training review), so the figures
compare with fastai's seconds per epoch for the same model size (anchor here: LM 171 s, classifier
60 s for AWD-LSTM 200/400/2). Writes benchmarks/results/ulmfit_speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from orch_ulmfit import data, text
from orch_ulmfit.model import Classifier, LanguageModel
from orch_ulmfit.train import fit_classifier, fit_lm

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=8000, help="reviews to tokenize per timing")
    parser.add_argument("--emb", type=int, default=200)
    parser.add_argument("--hid", type=int, default=400)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--vocab", type=int, default=30_000)
    parser.add_argument("--lm-tokens", type=int, default=300_000)
    parser.add_argument("--clf-docs", type=int, default=3000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        labelled = data.load_labelled("embedded", Path(tmp))
    docs = labelled.docs[: args.docs]
    text.tokenize(docs[:200], 1)  # load spaCy once before timing
    tok = {}
    for procs in (1, 2):
        start = time.perf_counter()
        tokens = text.tokenize(docs, procs)
        seconds = time.perf_counter() - start
        tok[procs] = sum(len(t) for t in tokens) / seconds
        print(f"tokenize, {procs} process(es): {tok[procs]:,.0f} tokens/s")

    all_tokens = text.tokenize(labelled.docs, 2)
    n_train = int(len(all_tokens) * 0.8)
    vocab = text.Vocab.build(all_tokens[:n_train], args.vocab, 2)
    ids = [vocab.numericalize(t) for t in all_tokens[:n_train]]
    stream = np.concatenate(ids)
    torch.manual_seed(0)
    lm = LanguageModel(len(vocab), args.emb, args.hid, args.layers, 0.5)
    lm_speed = fit_lm(lm, stream[: args.lm_tokens], stream[-20_000:], epochs=1, bs=32, bptt=70, lr=4e-3, wd=0.01,
                      clip=0.4, device="cpu", seed=0, discriminative=True, on_epoch=lambda e, m: None)
    labels = np.array(labelled.labels[:n_train])
    clf = Classifier(len(vocab), args.emb, args.hid, args.layers, 2, 0.5)
    sub = (ids[: args.clf_docs], labels[: args.clf_docs])
    clf_speed = fit_classifier(clf, sub, (ids[-500:], labels[-500:]), lr=1e-3, wd=0.01, bs=64, max_len=150, clip=0.4,
                               device="cpu", seed=0, gradual=False, discriminative=True, final_epochs=1,
                               on_epoch=lambda e, m: None)
    result = {
        "command": "python benchmarks/ulmfit_speed.py " + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()),
        "date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "torch_threads": torch.get_num_threads(),
        "tokenize_tokens_per_s": {str(k): round(v) for k, v in tok.items()},
        "tokenize_speedup_2_vs_1": round(tok[2] / tok[1], 2),
        "model": f"AWD-LSTM {args.emb}/{args.hid}/{args.layers}, vocab {len(vocab)}",
        "lm_tokens_per_s": round(lm_speed), "lm_train_tokens_per_epoch": int(len(stream)),
        "lm_seconds_per_epoch": round(len(stream) / lm_speed, 1),
        "classifier_docs_per_s": round(clf_speed), "classifier_train_docs_per_epoch": n_train,
        "classifier_seconds_per_epoch": round(n_train / clf_speed, 1),
        "fastai_anchor_seconds_per_epoch": {"lm": 171, "classifier": 60},
    }
    print(json.dumps(result, indent=2))
    (HERE / "results" / "ulmfit_speed.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
