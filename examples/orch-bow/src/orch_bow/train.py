"""SGD on the negative log-likelihood, as in the tutorial, over shuffled minibatches."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from orchestrator import Resumable, minimize, not_resumable, shuffled_epoch


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(mean negative log-likelihood, error rate)."""
    log_probs = model(x)
    return nn.functional.nll_loss(log_probs, y).item(), (log_probs.argmax(1) != y).float().mean().item()


def fit(model: nn.Module, train: tuple, val: tuple, *, epochs: int, bs: int, lr: float, wd: float, seed: int,
        on_epoch: Callable[[int, dict], None], resumable: Callable[..., Resumable] = not_resumable) -> None:
    (x, y), (vx, vy) = train, val
    opt = torch.optim.SGD(model.parameters(), lr=lr, weight_decay=wd)
    gen = torch.Generator().manual_seed(seed)
    state = resumable(model=model, opt=opt, gen=gen)

    def step(idx: torch.Tensor) -> float:
        return minimize(nn.functional.nll_loss(model(x[idx]), y[idx]), opt)

    for epoch in range(state.epoch, epochs):
        train_loss = shuffled_epoch(state, epoch, len(y), bs, gen, step)
        val_loss, val_error = evaluate(model, vx, vy)
        on_epoch(epoch, {"train_loss": train_loss, "val_loss": val_loss, "val_error": val_error})
        state.save(epoch + 1)
