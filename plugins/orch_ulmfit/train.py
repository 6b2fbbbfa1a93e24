"""ULMFiT's training recipe: the variable-BPTT language-model loader, slanted triangular learning
rates (STLR), discriminative learning rates (divided by 2.6 per layer group), gradual unfreezing."""

from __future__ import annotations

import math
import time
from typing import Callable, Iterator, Sequence, Iterable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from orch_ulmfit.model import PAD_ID, ar_tar
from orchestrator import Resumable, not_resumable

LR_DECAY = 2.6  # ULMFiT: each lower layer group learns 2.6 times slower
AR, TAR = 2.0, 1.0  # AWD-LSTM's (and fastai's) activation and temporal activation regularization


class LMLoader:
    """The corpus as ``bs`` parallel streams; each batch continues every stream where the previous one
    stopped (so the model's state carries over). Sequence lengths vary: bptt with probability 0.95,
    else bptt / 2, then drawn from a normal with that mean and std 5 (at least 5)."""

    def __init__(self, ids: np.ndarray, bs: int, bptt: int, seed: int = 0):
        n = len(ids) // bs
        self.data = torch.from_numpy(np.ascontiguousarray(ids[: n * bs].reshape(bs, n).astype(np.int64)))
        self.bs, self.bptt, self.rng = bs, bptt, np.random.default_rng(seed)
        self.n = n

    def seq_lengths(self, start: int = 0) -> Iterator[int]:
        i = start
        while i < self.n - 1:
            base = self.bptt if self.rng.random() < 0.95 else self.bptt / 2
            length = max(5, int(self.rng.normal(base, 5)))
            length = min(length, self.n - 1 - i)
            yield length
            i += length

    def batches(self, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches from stream position ``start`` on (where a resumed epoch continues)."""
        i = start
        for length in self.seq_lengths(start):
            yield self.data[:, i:i + length], self.data[:, i + 1:i + 1 + length]
            i += length

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.batches()

    def __len__(self) -> int:
        return max(1, (self.n - 1) // self.bptt)


def stlr(step: int, total: int, cut_frac: float = 0.1, ratio: float = 32.0) -> float:
    """Slanted triangular LR multiplier: a short linear rise over ``cut_frac`` of the steps to 1, then
    a long linear decay to 1 / ratio (Howard & Ruder 2018, eq. 3)."""
    cut = max(1, math.floor(total * cut_frac))
    p = step / cut if step < cut else 1 - (step - cut) / max(1, cut * (1 / cut_frac - 1))
    return (1 + max(0.0, p) * (ratio - 1)) / ratio


def discriminative_groups(groups: Sequence[Sequence[nn.Module]], lr: float, decay: float = LR_DECAY) -> list[dict]:
    """Optimizer param groups: the last group at ``lr``, each earlier one divided by ``decay``."""
    n = len(groups)
    out = []
    for i, mods in enumerate(groups):
        params = list({id(p): p for m in mods for p in m.parameters()}.values())
        out.append({"params": params, "lr": lr / decay ** (n - 1 - i), "base_lr": lr / decay ** (n - 1 - i)})
    return _dedupe(out)


def _dedupe(groups: list[dict]) -> list[dict]:
    """A tied weight appears in two groups (embedding and decoder): keep it in the last one only."""
    seen: set[int] = set()
    for g in reversed(groups):
        g["params"] = [p for p in g["params"] if id(p) not in seen]
        seen.update(id(p) for p in g["params"])
    return [g for g in groups if g["params"]]


def set_trainable(groups: Sequence[Sequence[nn.Module]], n_last: int) -> None:
    """Freeze every layer group but the last ``n_last`` (gradual unfreezing)."""
    for i, mods in enumerate(groups):
        for m in mods:
            for p in m.parameters():
                p.requires_grad_(i >= len(groups) - n_last)


def make_optimizer(groups, lr: float, wd: float, discriminative: bool = True) -> torch.optim.Optimizer:
    param_groups = discriminative_groups(groups, lr, LR_DECAY if discriminative else 1.0)
    return torch.optim.AdamW(param_groups, lr=lr, betas=(0.8, 0.99), weight_decay=wd, fused=True)


@torch.no_grad()
def evaluate_lm(model, ids: np.ndarray, bs: int, bptt: int, device) -> tuple[float, float]:
    """(mean NLL in nats per token, next-token accuracy) on a held-out stream, fixed-length windows."""
    model.eval()
    model.reset()
    loader = LMLoader(ids, bs, bptt)
    total, correct, count = 0.0, 0, 0
    for i in range(0, loader.n - 1, bptt):
        x = loader.data[:, i:i + min(bptt, loader.n - 1 - i)].to(device)
        y = loader.data[:, i + 1:i + 1 + x.shape[1]].to(device)
        logits = model(x)
        total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum").item()
        correct += (logits.argmax(-1) == y).sum().item()
        count += y.numel()
    model.reset()
    return total / max(count, 1), correct / max(count, 1)


def fit_lm(model, train_ids: np.ndarray, val_ids: np.ndarray, *, epochs: int, bs: int, bptt: int, lr: float,
           wd: float, clip: float, device, seed: int, discriminative: bool,
           on_epoch: Callable[[int, dict], None], progress: Callable[..., Iterable] = lambda it, **_: it,
           resumable: Callable[..., Resumable] = not_resumable, ar: float = AR, tar: float = TAR) -> float:
    """Train a language model (STLR over all steps; discriminative LRs if asked; AR and TAR, whose
    penalties are left out of the reported loss). Returns tokens/s (of the epochs this call ran);
    ``resumable`` (``ctx.resumable``) continues a killed run."""
    groups = model.layer_groups()
    opt = make_optimizer(groups, lr, wd, discriminative)
    loader = LMLoader(train_ids, bs, bptt, seed)
    state = resumable(model=model, opt=opt, batches=loader.rng)
    total_steps, step, tokens, seconds = epochs * len(loader), state.extra.get("step", 0), 0, 0.0
    for epoch in range(state.epoch, epochs):
        model.train()
        model.reset()
        at = state.take_within()  # a long epoch killed part way goes on from its last checkpoint
        pos, done, loss_sum, n, before = 0, 0, 0.0, 0, 0.0
        if at:
            model.encoder.hidden = [(h.to(device), c.to(device)) for h, c in at["hidden"]] if at["hidden"] else None
            step, pos, done, loss_sum, n, before = (at[k] for k in ("step", "pos", "batches", "loss_sum", "n", "seconds"))
        start = time.perf_counter()
        for x, y in progress(loader.batches(pos), total=len(loader) - done, desc=f"epoch {epoch + 1}/{epochs}"):
            x, y = x.to(device), y.to(device)
            scale = stlr(step, total_steps) * x.shape[1] / bptt  # AWD-LSTM: lr scaled by sequence length
            for g in opt.param_groups:
                g["lr"] = g["base_lr"] * scale
            logits, raw, dropped = model(x, activations=True)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
            opt.zero_grad(set_to_none=True)
            (loss + ar_tar(raw, dropped, ar, tar)).backward()
            nn.utils.clip_grad_norm_(model.parameters(), clip)
            opt.step()
            step, pos, done = step + 1, pos + x.shape[1], done + 1
            loss_sum += loss.item() * y.numel()
            n += y.numel()
            if state.due():
                hidden = [(h.cpu(), c.cpu()) for h, c in model.encoder.hidden] if model.encoder.hidden else None
                state.save(epoch, within={"pos": pos, "batches": done, "step": step, "loss_sum": loss_sum, "n": n,
                                          "hidden": hidden, "seconds": before + time.perf_counter() - start})
        seconds += before + time.perf_counter() - start
        tokens += n
        val_loss, val_acc = evaluate_lm(model, val_ids, bs, bptt, device)
        took = before + time.perf_counter() - start  # with the evaluation, as before
        on_epoch(epoch, {"train_loss": loss_sum / n, "val_loss": val_loss, "val_ppl": math.exp(min(val_loss, 50)),
                         "val_acc": val_acc, "tokens_per_s": n / took, "epoch_seconds": took})
        state.save(epoch + 1, step=step)
    return tokens / seconds if seconds else 0.0


def doc_batches(docs: Sequence[np.ndarray], labels: np.ndarray, bs: int, max_len: int, shuffle: bool,
                rng: np.random.Generator | None = None, skip: int = 0,
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(ids padded at the end, lengths, labels) batches of documents of similar length (less padding).
    Training order: random chunks of 50 batches, sorted by length inside each chunk (fastai's sortish).
    ``skip``: leave out the first batches (the ones a resumed epoch had done)."""
    lengths = np.array([min(len(d), max_len) for d in docs])
    if shuffle:
        order = rng.permutation(len(docs))
        chunk = bs * 50
        order = np.concatenate([c[np.argsort(-lengths[c], kind="stable")] for c in np.split(order, range(chunk, len(order), chunk))])
        batches = [order[i:i + bs] for i in range(0, len(order), bs)]
        rng.shuffle(batches)
    else:
        order = np.argsort(-lengths, kind="stable")
        batches = [order[i:i + bs] for i in range(0, len(order), bs)]
    for idx in batches[skip:]:
        width = int(lengths[idx].max())
        x = np.full((len(idx), width), PAD_ID, dtype=np.int64)
        for row, j in enumerate(idx):
            d = docs[j][:max_len]
            x[row, :len(d)] = d
        yield torch.from_numpy(x), torch.from_numpy(lengths[idx]), torch.from_numpy(labels[idx].astype(np.int64))


@torch.no_grad()
def evaluate_classifier(model, docs, labels, bs: int, max_len: int, device) -> tuple[float, float]:
    """(mean cross-entropy, error rate)."""
    model.eval()
    loss, wrong, n = 0.0, 0, 0
    for x, lengths, y in doc_batches(docs, labels, bs, max_len, shuffle=False):
        logits = model(x.to(device), lengths.to(device))
        y = y.to(device)
        loss += F.cross_entropy(logits, y, reduction="sum").item()
        wrong += (logits.argmax(1) != y).sum().item()
        n += len(y)
    return loss / n, wrong / n


@torch.no_grad()
def class_probabilities(model, docs: Sequence[np.ndarray], bs: int, max_len: int, device) -> np.ndarray:
    """Each document's class probabilities, in the documents' order (batched by length)."""
    model.eval()
    out = np.zeros((len(docs), 0), np.float32)
    for x, lengths, index in doc_batches(docs, np.arange(len(docs)), bs, max_len, shuffle=False):
        probs = torch.softmax(model(x.to(device), lengths.to(device)), dim=1).cpu().numpy()
        if out.shape[1] == 0:
            out = np.zeros((len(docs), probs.shape[1]), np.float32)
        out[index.numpy()] = probs
    return out


def classifier_errors(model, sets: dict, bs: int, max_len: int, device) -> dict[str, float]:
    """Loss and error on train (a probe as large as val), train_dev and val."""
    n = len(sets["val"][0])
    probe = (sets["train"][0][:n], sets["train"][1][:n])
    out = {}
    for split, (docs, labels) in (("train", probe), ("train_dev", sets["train_dev"]), ("val", sets["val"])):
        loss, error = evaluate_classifier(model, docs, labels, bs, max_len, device)
        out[f"{split}_error"], out[f"{split}_loss"] = error, loss
    return out


def unfreezing_schedule(n_groups: int, gradual: bool, final_epochs: int) -> list[int]:
    """Trainable groups per epoch: gradual = 1, 2, ... n_groups (one epoch each) then ``final_epochs``
    with all; otherwise every epoch with all groups (the same number of epochs)."""
    gradual_part = list(range(1, n_groups + 1)) + [n_groups] * (final_epochs - 1)
    return gradual_part if gradual else [n_groups] * len(gradual_part)


def fit_classifier(model, train, val, *, lr: float, wd: float, bs: int, max_len: int, clip: float, device,
                   seed: int, gradual: bool, discriminative: bool, final_epochs: int,
                   on_epoch: Callable[[int, dict], None],
                   progress: Callable[..., Iterable] = lambda it, **_: it,
                   resumable: Callable[..., Resumable] = not_resumable, ar: float = AR, tar: float = TAR) -> float:
    """Gradual unfreezing: each phase its own STLR cycle, LR halved per phase (the fastai recipe's
    2e-2, 1e-2, 5e-3 ... steps), discriminative LRs across groups, AR and TAR on the encoder's last
    layer. Returns documents/s (of the epochs this call ran); ``resumable`` continues a killed run
    (each epoch builds its optimizer)."""
    rng = np.random.default_rng(seed)
    groups = model.layer_groups()
    schedule = unfreezing_schedule(len(groups), gradual, final_epochs)
    docs, labels = train
    steps = math.ceil(len(docs) / bs)
    seen, seconds = 0, 0.0
    state = resumable(model=model, batches=rng)
    for epoch, n_trainable in list(enumerate(schedule))[state.epoch:]:
        set_trainable(groups, n_trainable)
        phase_lr = lr / 2 ** (n_trainable - 1) if gradual else lr / 2 ** (len(groups) - 1)
        opt = make_optimizer([g for g in groups[len(groups) - n_trainable:]], phase_lr, wd, discriminative)
        at = state.take_within()  # a long epoch killed part way: the same batch order, from where it stopped
        if at:
            rng.bit_generator.state = at["order_rng"]
            opt.load_state_dict(at["opt"])
        order_rng = rng.bit_generator.state  # the epoch's batch order is drawn from this state
        model.train()
        done, loss_sum, n, before = at.get("batches", 0), at.get("loss_sum", 0.0), at.get("n", 0), at.get("seconds", 0.0)
        start = time.perf_counter()
        batches = doc_batches(docs, labels, bs, max_len, True, rng, skip=done)  # rng ends where it did
        for x, lengths, y in progress(batches, total=steps - done, desc=f"epoch {epoch + 1}/{len(schedule)}"):
            for g in opt.param_groups:
                g["lr"] = g["base_lr"] * stlr(done, steps)
            logits, last = model(x.to(device), lengths.to(device), activations=True)
            loss = F.cross_entropy(logits, y.to(device))
            opt.zero_grad(set_to_none=True)
            (loss + ar_tar(last, last, ar, tar)).backward()
            nn.utils.clip_grad_norm_(model.parameters(), clip)
            opt.step()
            loss_sum += loss.item() * len(y)
            n += len(y)
            done += 1
            if state.due():
                state.save(epoch, within={"batches": done, "loss_sum": loss_sum, "n": n, "opt": opt.state_dict(),
                                          "order_rng": order_rng, "seconds": before + time.perf_counter() - start})
        seconds += before + time.perf_counter() - start
        seen += n
        val_loss, val_error = evaluate_classifier(model, *val, bs, max_len, device)
        on_epoch(epoch, {"train_loss": loss_sum / n, "val_loss": val_loss, "val_error": val_error,
                         "trainable_groups": n_trainable, "epoch_seconds": before + time.perf_counter() - start})
        state.save(epoch + 1)
    set_trainable(groups, len(groups))
    return seen / seconds if seconds else 0.0
