"""Where an AWD-LSTM language-model training step spends its time (torch.profiler), and what the
weight-dropped LSTMs cost against plain ones, on random token ids.

    python benchmarks/ulmfit_profile.py [--vocab 8000 --emb 200 --hid 400 --layers 2 --bs 32 --bptt 70]

Writes benchmarks/results/ulmfit_profile.json: ms per step with and without weight drop, and the
share of the profiled time of the decoder's matrix products, the LSTM layers and the log-softmax.
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

from orch_ulmfit.model import LanguageModel

HERE = Path(__file__).resolve().parent
GROUPS = {"decoder and embedding matrix products (aten::mm)": ("aten::mm",),
          "LSTM layers, forward and backward": ("aten::mkldnn_rnn_layer", "aten::mkldnn_rnn_layer_backward"),
          "log-softmax, forward and backward": ("aten::_log_softmax", "aten::_log_softmax_backward_data")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, default in (("vocab", 8000), ("emb", 200), ("hid", 400), ("layers", 2), ("bs", 32), ("bptt", 70)):
        parser.add_argument(f"--{name}", type=int, default=default)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = LanguageModel(args.vocab, args.emb, args.hid, args.layers, drop_mult=0.2).train()
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    x = torch.randint(2, args.vocab, (args.bs, args.bptt))
    y = torch.randint(2, args.vocab, (args.bs, args.bptt))
    weight_p = [rnn.p for rnn in model.encoder.rnns]

    def step() -> None:
        logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, args.vocab), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.4)
        opt.step()

    ms = {"weight_drop": [], "plain": []}
    for _ in range(2):  # alternate, so drift in the machine's speed hits both
        for mode in ms:
            for rnn, p in zip(model.encoder.rnns, weight_p):
                rnn.p = p if mode == "weight_drop" else 0.0
            for _ in range(3):
                step()
            start = time.perf_counter()
            for _ in range(10):
                step()
            ms[mode].append((time.perf_counter() - start) / 10 * 1000)
    for rnn, p in zip(model.encoder.rnns, weight_p):
        rnn.p = p
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(5):
            step()
    self_us = {e.key: e.self_cpu_time_total for e in prof.key_averages()}
    total = sum(self_us.values())
    shares = {group: round(sum(self_us.get(k, 0) for k in keys) / total, 3) for group, keys in GROUPS.items()}
    best = {mode: min(v) for mode, v in ms.items()}
    result = {"command": "python benchmarks/ulmfit_profile.py " + " ".join(f"--{k} {v}" for k, v in vars(args).items()),
              "date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "torch_threads": torch.get_num_threads(),
              "ms_per_step": {mode: round(v, 1) for mode, v in best.items()},
              "tokens_per_s": {mode: round(args.bs * args.bptt / v * 1000) for mode, v in best.items()},
              "weight_drop_cost": round(best["weight_drop"] / best["plain"] - 1, 3),
              "profiled_time_share": shares}
    print(json.dumps(result, indent=2))
    (HERE / "results" / "ulmfit_profile.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
