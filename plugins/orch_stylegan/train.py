"""GAN training as in StyleGAN: non-saturating logistic loss, R1 penalty on reals (lazy: every
``r1_every`` steps, scaled up to match), Adam with betas (0, 0.99), style-mixing regularization, an
EMA of the generator's weights, a tracked average w; a checkpoint every epoch to resume from."""

from __future__ import annotations

import copy
import random
import time
from typing import Callable, Iterable

import numpy as np
import torch
from torch.nn import functional as F

from orch_stylegan.model import Discriminator, Generator, build
from orchestrator import Resumable, not_resumable


def to_float(batch: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1]."""
    return batch.float() / 127.5 - 1


def to_uint8(images: torch.Tensor) -> np.ndarray:
    return ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()


def mixed_ws(g: Generator, z: torch.Tensor, mix_prob: float) -> torch.Tensor:
    """Per-layer w for a batch: with probability ``mix_prob`` the layers from a random crossover on
    take a second latent's w (style-mixing regularization)."""
    w = g.map(z)
    ws = g.broadcast(w)
    if mix_prob > 0 and random.random() < mix_prob:
        crossover = random.randint(1, g.n_layers - 1)
        ws = ws.clone()
        ws[:, crossover:] = g.map(torch.randn_like(z))[:, None]
    return ws, w


@torch.no_grad()
def ema_update(ema: Generator, g: Generator, beta: float) -> None:
    for pe, p in zip(ema.parameters(), g.parameters()):
        pe.lerp_(p, 1 - beta)
    for be, b in zip(ema.buffers(), g.buffers()):
        be.copy_(b)


def r1_penalty(d: Discriminator, real: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ||grad_x D(x)||^2 at real images."""
    real = real.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(d(real).sum(), real, create_graph=True)
    return grad.pow(2).sum(dim=(1, 2, 3)).mean()


class Trainer:
    """Holds G, D, the EMA generator and both optimizers, and trains them (resumably)."""

    def __init__(self, p, channels: int, device):
        self.p, self.device = p, device
        self.g, self.d = (m.to(device) for m in build(p, channels))
        self.g_ema = copy.deepcopy(self.g).eval().requires_grad_(False)
        betas = (p.beta1, p.beta2)
        # the mapping network's 100x lower rate comes from its layers' lr_mul (equalized lr)
        self.opt_g = torch.optim.Adam(self.g.parameters(), lr=p.lr_g, betas=betas)
        c = p.r1_every / (p.r1_every + 1)  # lazy regularization: adjust Adam for the skipped steps
        self.opt_d = torch.optim.Adam(self.d.parameters(), lr=p.lr_d * c, betas=(betas[0] ** c, betas[1] ** c))
        self.step, self.epoch, self.images_seen = 0, 0, 0
        self.resumed_from, self.fit_seconds, self.speeds = 0, 0.0, []  # speeds: epochs this process ran

    def train_step(self, real: torch.Tensor) -> dict[str, float]:
        p, g, d = self.p, self.g, self.d
        n = real.shape[0]
        # discriminator: push D(real) up and D(G(z)) down
        with torch.no_grad():
            fake = g.synthesis(mixed_ws(g, torch.randn(n, g.z_dim, device=self.device), p.mix_prob)[0])
        d_loss = F.softplus(d(fake)).mean() + F.softplus(-d(real)).mean()
        r1 = torch.zeros((), device=self.device)
        if p.r1_gamma > 0 and self.step % p.r1_every == 0:
            r1 = r1_penalty(d, real)
            d_loss = d_loss + p.r1_gamma / 2 * r1 * p.r1_every
        self.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt_d.step()
        # generator: non-saturating loss, -log sigmoid(D(G(z)))
        ws, w = mixed_ws(g, torch.randn(n, g.z_dim, device=self.device), p.mix_prob)
        g_loss = F.softplus(-d(g.synthesis(ws))).mean()
        self.opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        self.opt_g.step()
        g.update_w_avg(w.detach())
        ema_update(self.g_ema, g, 0.5 ** (n / max(p.ema_half_life, 1)))
        self.step += 1
        self.images_seen += n
        return {"d_loss": d_loss.item(), "g_loss": g_loss.item(), "r1": r1.item()}

    def summary(self) -> dict[str, float]:
        """The train stage's metrics: speed over the epochs this process ran, sizes, where it resumed."""
        return {"train_seconds": self.fit_seconds,
                "images_per_s": sum(self.speeds) / len(self.speeds) if self.speeds else 0.0,
                "kimg": self.images_seen / 1000, "resumed_from_epoch": self.resumed_from,
                "params_g": sum(t.numel() for t in self.g.parameters()),
                "params_d": sum(t.numel() for t in self.d.parameters())}

    def fit(self, images: torch.Tensor, epochs: int, on_epoch: Callable[[int, dict], None],
            progress: Callable[..., Iterable] = lambda it, desc="": it,
            resumable: Callable[..., Resumable] = not_resumable) -> None:
        """Train to ``epochs`` on uint8 images (N, C, R, R), shuffled each epoch; ``resumable``
        (``ctx.resumable``) continues from the last checkpoint, also a finished run given more epochs."""
        p, n = self.p, len(images)
        steps = n // p.bs
        state = resumable(g=self.g, d=self.d, g_ema=self.g_ema, opt_g=self.opt_g, opt_d=self.opt_d)
        self.epoch = self.resumed_from = state.epoch
        self.step, self.images_seen = state.extra.get("step", 0), state.extra.get("images_seen", 0)
        began = time.perf_counter()
        while self.epoch < epochs:
            self.g.train()
            at = state.take_within()  # a long epoch killed part way goes on from its last checkpoint
            if at:
                self.step, self.images_seen = at["step"], at["images_seen"]
            order = at["order"] if at else torch.randperm(n)
            sums: dict[str, float] = dict(at.get("sums", {}))
            done, before = at.get("batches", 0), at.get("seconds", 0.0)
            start = time.perf_counter()
            for i in progress(range(done, steps), desc=f"epoch {self.epoch + 1}/{epochs}"):
                real = to_float(images[order[i * p.bs:(i + 1) * p.bs]]).to(self.device)
                if p.mirror:
                    flip = torch.rand(real.shape[0], device=self.device) < 0.5
                    real = torch.where(flip[:, None, None, None], real.flip(3), real)
                for k, v in self.train_step(real).items():
                    sums[k] = sums.get(k, 0.0) + v
                if state.due():
                    state.save(self.epoch, within={"batches": i + 1, "order": order, "sums": sums, "step": self.step,
                                                   "images_seen": self.images_seen,
                                                   "seconds": before + time.perf_counter() - start})
            seconds = before + time.perf_counter() - start
            metrics = {"d_loss": sums["d_loss"] / steps, "g_loss": sums["g_loss"] / steps,
                       "r1": sums["r1"] / max(1, -(-steps // p.r1_every)), "images_per_s": steps * p.bs / seconds}
            self.epoch += 1
            self.speeds.append(metrics["images_per_s"])
            on_epoch(self.epoch - 1, metrics)
            state.save(self.epoch, step=self.step, images_seen=self.images_seen)
        self.fit_seconds += time.perf_counter() - began
