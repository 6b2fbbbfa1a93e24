"""The pieces of a minibatch training loop that every task would write again: one optimizer step,
and an epoch over shuffled examples that a kill can stop anywhere (``Resumable``'s in-epoch
checkpoints: the epoch goes on from the first batch it had not done, in the same order)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterable

if TYPE_CHECKING:
    import torch

    from orchestrator.checkpoint import Resumable


def minimize(loss: "torch.Tensor", opt: "torch.optim.Optimizer", sched: Any = None, clip: float | None = None) -> float:
    """One step on ``loss``: gradients (clipped to norm ``clip``), the optimizer, the scheduler.
    Returns the loss as a float."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if clip:
        import torch

        torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], clip)
    opt.step()
    if sched is not None:
        sched.step()
    return loss.item()


def shuffled_epoch(state: "Resumable", epoch: int, n: int, bs: int, gen: "torch.Generator",
                   step: Callable[["torch.Tensor"], float], *, device: Any = None,
                   progress: Callable[..., Iterable] = lambda it, desc="": it, desc: str = "") -> float:
    """One epoch over ``n`` examples in batches of ``bs``, in an order drawn from ``gen``:
    ``step(indices)`` trains on one batch and returns its mean loss. When ``state.due()`` the
    position is checkpointed (the order, the batches done, the running loss); resumed from there,
    the epoch continues where it stopped. Returns the epoch's mean training loss."""
    import torch

    at = state.take_within()
    order = at["order"] if at else torch.randperm(n, generator=gen)
    on_device = order.to(device) if device is not None else order
    total = at.get("total", 0.0)
    for start in progress(range(at.get("batches", 0) * bs, n, bs), desc=desc):
        idx = on_device[start:start + bs]
        total += step(idx) * len(idx)
        if state.due():
            state.save(epoch, within={"batches": start // bs + 1, "order": order.cpu(), "total": total})
    return total / n
