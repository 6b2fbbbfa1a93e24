"""Training characters per second of every charrnn architecture, with the default sizes
(n_hidden 256, 2 layers for lstm/gru, bs 32, bptt 64) on the embedded corpus.

    python benchmarks/charrnn_speed.py [--batches 60]

Writes benchmarks/results/charrnn_speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch
from torch.nn import functional as F

from orch_charrnn import data
from orch_charrnn.model import build
from orch_charrnn.params import ARCHS, CharRNNParams

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=60)
    args = parser.parse_args()
    p = CharRNNParams()
    text, _ = data.read_text("embedded", 400_000)
    vocab = data.Vocab.build(text)
    ids = vocab.encode(text)
    rows = {}
    for arch in ARCHS:
        torch.manual_seed(0)
        model = build(arch, len(vocab), p)
        opt = torch.optim.Adam(model.parameters(), lr=p.lr)
        batches = data.stream_batches(ids, p.bs, p.bptt)
        state, chars, start = None, 0, None
        for i, (x, y) in enumerate(batches):
            if i == 5:  # warm-up batches are not timed
                start, chars = time.perf_counter(), 0
            if i == 5 + args.batches:
                break
            x, y = torch.from_numpy(x), torch.from_numpy(y)
            logits, state = model(x, state if model.carries_state else None)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), p.clip)
            opt.step()
            chars += y.numel()
        rows[arch] = round(chars / (time.perf_counter() - start))
        print(f"{arch:<10}{rows[arch]:>10,} chars/s")
    result = {"command": f"python benchmarks/charrnn_speed.py --batches {args.batches}",
              "date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "torch_threads": torch.get_num_threads(), "bs": p.bs, "bptt": p.bptt, "n_hidden": p.n_hidden,
              "n_layers": p.n_layers, "train_chars_per_s": rows}
    out = HERE / "results" / "charrnn_speed.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
