"""FID and KID with a feature extractor trained here, offline.

FID and KID are usually computed on Inception-v3 features, whose ImageNet weights must be
downloaded. This pipeline trains its own extractor on the real training images instead: a small CNN
classifier on the dataset's labels (Fashion-MNIST's 10 garment classes), or, for a folder without
labels, on a self-supervised task (which of four rotations was applied). Its penultimate layer (128
numbers) is the feature space. Numbers are therefore comparable within one dataset and extractor,
not with published Inception FIDs; the real-vs-real floor computed with the same extractor and
sample sizes says what "as good as real data" looks like.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

FEATURES = 128


class FeatureNet(nn.Module):
    def __init__(self, channels: int, n_classes: int):
        super().__init__()

        def block(a, b):
            return [nn.Conv2d(a, b, 3, padding=1), nn.BatchNorm2d(b), nn.ReLU(),
                    nn.Conv2d(b, b, 3, padding=1), nn.BatchNorm2d(b), nn.ReLU(), nn.MaxPool2d(2)]

        self.body = nn.Sequential(*block(channels, 32), *block(32, 64), *block(64, FEATURES),
                                  nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(FEATURES, n_classes))

    def forward(self, x):
        return self.head(self.body(x))

    @torch.no_grad()
    def features(self, images: torch.Tensor, bs: int = 500) -> np.ndarray:
        """(N, 128) float64 features of float images in [-1, 1]."""
        self.eval()
        device = next(self.parameters()).device
        return torch.cat([self.body(images[i:i + bs].to(device)).cpu() for i in range(0, len(images), bs)]).double().numpy()


def rotations(x: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The self-supervised task: each image rotated by k * 90 degrees, k the label."""
    k = torch.randint(0, 4, (x.shape[0],), generator=gen)
    return torch.stack([torch.rot90(img, int(r), dims=(1, 2)) for img, r in zip(x, k)]), k


def train_feature_net(images: torch.Tensor, labels: torch.Tensor | None, epochs: int, seed: int, device,
                      on_epoch=None) -> tuple[FeatureNet, str]:
    """Train on float images in [-1, 1]; returns the net and its task ('labels' or 'rotation')."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    task = "labels" if labels is not None and len(torch.unique(labels)) >= 2 else "rotation"
    n_classes = int(labels.max()) + 1 if task == "labels" else 4
    net = FeatureNet(images.shape[1], n_classes).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-4)
    bs = 128
    steps = max(1, len(images) // bs)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=epochs * steps)
    for epoch in range(epochs):
        net.train()
        order = torch.randperm(len(images), generator=gen)
        total, correct = 0.0, 0
        for i in range(steps):
            idx = order[i * bs:(i + 1) * bs]
            x = images[idx]
            if task == "labels":
                y = labels[idx]
                x = torch.where(torch.rand(len(x), 1, 1, 1, generator=gen) < 0.5, x.flip(3), x)
            else:
                x, y = rotations(x, gen)
            logits = net(x.to(device))
            loss = F.cross_entropy(logits, y.to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
            correct += (logits.argmax(1).cpu() == y).sum().item()
        if on_epoch is not None:
            on_epoch(epoch, {"loss": total / (steps * bs), "acc": correct / (steps * bs)})
    return net.eval(), task


@torch.no_grad()
def accuracy(net: FeatureNet, images: torch.Tensor, labels: torch.Tensor | None, task: str, seed: int) -> float:
    if task == "rotation":
        images, labels = rotations(images, torch.Generator().manual_seed(seed))
    device = next(net.parameters()).device
    preds = torch.cat([net(images[i:i + 500].to(device)).argmax(1).cpu() for i in range(0, len(images), 500)])
    return (preds == labels).float().mean().item()


def fid(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two feature sets:
    |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2))."""
    import warnings

    from scipy import linalg

    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", linalg.LinAlgWarning)
        try:
            covmean = linalg.sqrtm(cov_a @ cov_b)
        except (linalg.LinAlgWarning, linalg.LinAlgError):
            covmean = None
    if covmean is None or not np.isfinite(covmean).all():  # nearly singular: regularize, as the reference code does
        eps = np.eye(len(cov_a)) * 1e-6
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", linalg.LinAlgWarning)
            covmean = linalg.sqrtm((cov_a + eps) @ (cov_b + eps))
    covmean = np.real(covmean)
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(covmean))


def kid(a: np.ndarray, b: np.ndarray, subsets: int = 10, subset_size: int = 500, seed: int = 0) -> float:
    """Kernel Inception Distance: the unbiased MMD^2 with the cubic kernel k(x, y) = (x.y / d + 1)^3,
    averaged over random subsets (Binkowski et al. 2018). Unbiased: about 0 for equal distributions."""
    rng = np.random.default_rng(seed)
    m = min(subset_size, len(a), len(b))
    d = a.shape[1]
    total = 0.0
    for _ in range(subsets):
        x, y = a[rng.choice(len(a), m, replace=False)], b[rng.choice(len(b), m, replace=False)]
        kxx, kyy, kxy = (x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3
        total += ((kxx.sum() - np.trace(kxx)) + (kyy.sum() - np.trace(kyy))) / (m * (m - 1)) - 2 * kxy.mean()
    return float(total / subsets)


def load_feature_net(folder) -> FeatureNet:
    """The feature extractor saved by the features stage (weights only)."""
    from orchestrator import load_model

    return load_model(folder, "feature_net", lambda c: FeatureNet(c["channels"], c["n_classes"]))


def generated_features(g, net: FeatureNet, n: int, seed: int, bs: int = 250, psi: float = 1.0) -> np.ndarray:
    """Features of ``n`` images from ``g`` with latents and noise drawn from ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    device = g.w_avg.device
    out = []
    with torch.no_grad():
        for i in range(0, n, bs):
            m = min(bs, n - i)
            z = torch.randn(m, g.z_dim, generator=gen).to(device)
            noise = g.make_noise(m, gen) if g.use_noise else None
            out.append(net.features(g(z, psi=psi, noise=noise).clamp(-1, 1).cpu()))
    return np.concatenate(out)
