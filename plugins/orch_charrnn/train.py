"""Training and evaluation: Adam, gradient clipping, one-cycle (warm-up then cosine) schedule;
NLL in nats per character, bits per character, perplexity and accuracy."""

from __future__ import annotations

import itertools
import math
import time
from typing import Callable, Iterable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from orch_charrnn.data import n_batches, stream_batches
from orchestrator import Resumable, not_resumable

LN2 = math.log(2)


def figures(nll_nats: float, accuracy: float, prefix: str) -> dict[str, float]:
    """The four views of one NLL: nats (loss), bits per character, perplexity, accuracy."""
    return {f"{prefix}_loss": nll_nats, f"{prefix}_bpc": nll_nats / LN2, f"{prefix}_ppl": math.exp(nll_nats),
            f"{prefix}_acc": accuracy}


@torch.no_grad()
def evaluate(model: nn.Module, ids: np.ndarray, bs: int, bptt: int, device) -> tuple[float, float]:
    """(mean NLL in nats, accuracy) over every predicted character of ``ids``."""
    model.eval()
    state, total, correct, count = None, 0.0, 0, 0
    for x, y in stream_batches(ids, bs, bptt):
        x, y = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
        logits, new_state = model(x, state if model.carries_state else None)
        state = new_state
        total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum").item()
        correct += (logits.argmax(-1) == y).sum().item()
        count += y.numel()
    return total / count, correct / count


def moved(state, device):
    """A recurrent state (a tensor, a tuple of them, or None) on ``device``."""
    if state is None:
        return None
    if isinstance(state, (tuple, list)):
        return tuple(t.to(device) for t in state)
    return state.to(device)


def fit(
    model: nn.Module,
    train: np.ndarray,
    val: np.ndarray,
    *,
    epochs: int,
    bs: int,
    bptt: int,
    lr: float,
    clip: float,
    device,
    on_epoch: Callable[[int, dict[str, float]], None],
    progress: Callable[..., Iterable] = lambda it, desc="", total=None: it,
    resumable: Callable[..., Resumable] = not_resumable,
) -> float:
    """Train; returns training characters per second (of the epochs this call ran). ``on_epoch``
    gets train_loss, val_loss, val_bpc, val_ppl, val_acc and chars_per_s; ``progress`` may wrap
    the batches in a bar; ``resumable`` (``ctx.resumable``) continues a killed run."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps = n_batches(len(train), bs, bptt)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps, pct_start=0.25)
    resume = resumable(model=model, opt=opt, sched=sched)
    seen, seconds = 0, 0.0
    for epoch in range(resume.epoch, epochs):
        model.train()
        at = resume.take_within()  # a long epoch killed part way goes on from its last checkpoint
        state, done = moved(at.get("state"), device), at.get("batches", 0)
        total, count, before = at.get("total", 0.0), at.get("count", 0), at.get("seconds", 0.0)
        start = time.perf_counter()
        batches = itertools.islice(stream_batches(train, bs, bptt), done, None)
        for x, y in progress(batches, desc=f"epoch {epoch + 1}/{epochs}", total=steps - done):
            x, y = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
            logits, state = model(x, state if model.carries_state else None)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), clip)
            opt.step()
            sched.step()
            total += loss.item() * y.numel()
            count += y.numel()
            done += 1
            if resume.due():
                resume.save(epoch, within={"batches": done, "state": moved(state, "cpu"), "total": total,
                                           "count": count, "seconds": before + time.perf_counter() - start})
        seconds += before + time.perf_counter() - start
        seen += count
        val_nll, val_acc = evaluate(model, val, bs, bptt, device)
        on_epoch(epoch, {"train_loss": total / count, **figures(val_nll, val_acc, "val"),
                         "chars_per_s": count / (before + time.perf_counter() - start)})
        resume.save(epoch + 1)
    return seen / seconds if seconds else 0.0
