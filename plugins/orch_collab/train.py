"""Training: AdamW (decoupled weight decay) with a one-cycle schedule on MSE, as in the lesson."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Iterable

import torch
from torch import nn

from orchestrator import Resumable, minimize, not_resumable, shuffled_epoch

EVAL_BATCH = 65536


@dataclass
class SplitTensors:
    users: torch.Tensor
    items: torch.Tensor
    ratings: torch.Tensor

    def __len__(self) -> int:
        return len(self.ratings)

    def to(self, device: torch.device) -> "SplitTensors":
        return SplitTensors(self.users.to(device), self.items.to(device), self.ratings.to(device))


def split_tensors(frame, device: torch.device) -> dict[str, SplitTensors]:
    """The prepare stage's ratings frame as one SplitTensors per split, on ``device``."""
    from orchestrator import SPLITS

    out = {}
    for name in SPLITS:
        part = frame[frame["split"] == name]
        out[name] = SplitTensors(torch.tensor(part["user"].to_numpy()), torch.tensor(part["item"].to_numpy()),
                                 torch.tensor(part["rating"].to_numpy())).to(device)
    return out


@torch.no_grad()
def predict(model: nn.Module, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    model.eval()
    out = [model(users[i:i + EVAL_BATCH], items[i:i + EVAL_BATCH]) for i in range(0, len(users), EVAL_BATCH)]
    return torch.cat(out) if out else torch.empty(0)


def mse(model: nn.Module, split: SplitTensors) -> float:
    return float(((predict(model, split.users, split.items) - split.ratings) ** 2).mean())


def fit(
    model: nn.Module,
    train: SplitTensors,
    val: SplitTensors,
    *,
    epochs: int,
    bs: int,
    lr: float,
    wd: float,
    seed: int,
    on_epoch: Callable[[int, dict[str, float]], None],
    progress: Callable[..., Iterable] = lambda it, desc="": it,
    resumable: Callable[..., Resumable] = not_resumable,
) -> None:
    """One-cycle training; ``on_epoch(epoch, metrics)`` gets train_loss, val_loss, val_rmse;
    ``progress(iterable, desc)`` may wrap the batches in a progress bar; ``resumable``
    (``ctx.resumable``) continues a killed run from its last epoch."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=wd)
    steps_per_epoch = (len(train) + bs - 1) // bs
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps_per_epoch)
    gen = torch.Generator().manual_seed(seed)
    state = resumable(model=model, opt=opt, sched=sched, gen=gen)

    def step(idx: torch.Tensor) -> float:
        return minimize(nn.functional.mse_loss(model(train.users[idx], train.items[idx]), train.ratings[idx]), opt, sched)

    for epoch in range(state.epoch, epochs):
        model.train()
        train_loss = shuffled_epoch(state, epoch, len(train), bs, gen, step, device=train.ratings.device,
                                    progress=progress, desc=f"epoch {epoch + 1}/{epochs}")
        val_loss = mse(model, val)
        on_epoch(epoch, {"train_loss": train_loss, "val_loss": val_loss, "val_rmse": val_loss ** 0.5})
        state.save(epoch + 1)


def predict_ms_per_1k(model: nn.Module, split: SplitTensors, n: int = 20_000) -> float:
    """Milliseconds to score 1,000 (user, item) pairs, in batches of 1,000: the serving cost."""
    users, items = split.users[:n], split.items[:n]
    predict(model, users[:1000], items[:1000])  # warm-up
    start = time.perf_counter()
    for i in range(0, len(users), 1000):
        predict(model, users[i:i + 1000], items[i:i + 1000])
    return (time.perf_counter() - start) * 1000 / max(1, len(users) / 1000)
