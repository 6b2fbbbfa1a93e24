"""The report's figures, all from the EMA generator: a fixed-latent sample grid, the style-mixing
grid (coarse / middle / fine styles copied from B into A, as in the paper's figure 3), a truncation
grid, noise variations with the per-pixel standard deviation over many noise draws, and an
interpolation strip in W."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from orch_stylegan.model import Generator, layer_groups
from orch_stylegan.train import to_uint8
from orchestrator import pyplot, save_figure

TRUNCATION_PSI = (1.0, 0.7, 0.5, 0.0, -0.5)


def latents(g: Generator, seeds, device=None) -> torch.Tensor:
    """One z per seed, each from its own generator: image k depends on seed k only."""
    device = device or g.w_avg.device
    return torch.stack([torch.randn(g.z_dim, generator=torch.Generator().manual_seed(int(s))) for s in seeds]).to(device)


def fixed_noise(g: Generator, n: int, seed: int) -> list[torch.Tensor] | None:
    return g.make_noise(n, torch.Generator().manual_seed(seed)) if g.use_noise else None


def tile(images: np.ndarray, rows: int, cols: int, pad: int = 2) -> np.ndarray:
    """uint8 (rows*cols, C, H, W) -> one (H', W', C) or (H', W') mosaic with a white gutter."""
    n, c, h, w = images.shape
    out = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), 255, dtype=np.uint8)
    for k in range(min(n, rows * cols)):
        r, q = divmod(k, cols)
        out[pad + r * (h + pad):pad + r * (h + pad) + h, pad + q * (w + pad):pad + q * (w + pad) + w] = \
            images[k].transpose(1, 2, 0)
    return out[:, :, 0] if c == 1 else out


def save_png(mosaic: np.ndarray, path: Path, scale: int = 3) -> Path:
    from PIL import Image

    img = Image.fromarray(mosaic)
    img.resize((img.width * scale, img.height * scale), Image.NEAREST).save(path)
    return path


@torch.no_grad()
def sample_grid(g: Generator, path: Path, seeds=range(64), psi: float = 1.0, noise_seed: int = 0) -> Path:
    z = latents(g, seeds)
    images = to_uint8(g(z, psi=psi, noise=fixed_noise(g, len(z), noise_seed)))
    cols = int(np.ceil(np.sqrt(len(z))))
    return save_png(tile(images, int(np.ceil(len(z) / cols)), cols), path)


def _show(ax, image: np.ndarray) -> None:
    ax.imshow(image.transpose(1, 2, 0).squeeze(), cmap="gray" if image.shape[0] == 1 else None, vmin=0, vmax=255)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


@torch.no_grad()
def mixing_grid(g: Generator, path: Path, seeds_a=(1, 2, 3, 4, 5), seeds_b=(11, 12, 13, 14, 15, 16),
                psi: float = 1.0) -> Path:
    """Columns: sources A. Rows: sources B, two per group; cell = A with B's coarse, middle or fine styles."""
    plt = pyplot()
    groups = layer_groups(g.resolution)
    names = [name for name in ("coarse", "middle", "fine") for _ in range(len(seeds_b) // 3)]
    wa, wb = g.map(latents(g, seeds_a)), g.map(latents(g, seeds_b))
    noise = fixed_noise(g, 1, 0)

    def render(ws):
        return to_uint8(g.synthesis(g.truncate(ws, psi), [n.expand(len(ws), -1, -1, -1) for n in noise]
                                    if noise else None))

    imgs_a, imgs_b = render(g.broadcast(wa)), render(g.broadcast(wb))
    fig, axes = plt.subplots(len(seeds_b) + 1, len(seeds_a) + 1, figsize=(1.3 * (len(seeds_a) + 1) + 0.9,
                                                                           1.3 * (len(seeds_b) + 1)))
    axes[0, 0].axis("off")
    for j in range(len(seeds_a)):
        _show(axes[0, j + 1], imgs_a[j])
        axes[0, j + 1].set_title(f"A (seed {seeds_a[j]})", fontsize=8)
    for i, name in enumerate(names):
        _show(axes[i + 1, 0], imgs_b[i])
        layers = groups[name]
        axes[i + 1, 0].set_ylabel(f"B seed {seeds_b[i]}\n{name}\n(layers {layers.start}-{layers.stop - 1})",
                                  fontsize=8)
        ws = g.broadcast(wa).clone()
        ws[:, layers.start:layers.stop] = wb[i]
        for j, img in enumerate(render(ws)):
            _show(axes[i + 1, j + 1], img)
    fig.suptitle("Style mixing: each cell is A with one group of B's styles", fontsize=10)
    return save_figure(fig, path, dpi=110)


@torch.no_grad()
def truncation_grid(g: Generator, path: Path, seeds=range(100, 108), cutoff: int | None = None) -> Path:
    """Rows: seeds; columns: psi = 1, 0.7, 0.5, 0 (the average w's image), -0.5 (the 'anti-face')."""
    plt = pyplot()
    z = latents(g, seeds)
    noise = fixed_noise(g, len(z), 0)
    cols = [to_uint8(g(z, psi=psi, cutoff=cutoff, noise=noise)) for psi in TRUNCATION_PSI]
    fig, axes = plt.subplots(len(z), len(TRUNCATION_PSI), figsize=(1.2 * len(TRUNCATION_PSI), 1.2 * len(z)))
    for j, psi in enumerate(TRUNCATION_PSI):
        axes[0, j].set_title(f"psi = {psi:g}", fontsize=8)
        for i in range(len(z)):
            _show(axes[i, j], cols[j][i])
    fig.suptitle("Truncation toward the average w", fontsize=10)
    return save_figure(fig, path, dpi=110)


@torch.no_grad()
def noise_grid(g: Generator, path: Path, seeds=(1, 2, 3, 4), draws: int = 6, std_draws: int = 100) -> Path:
    """Rows: one w each; columns: the same w under different noise, then the pixel std over ``std_draws``."""
    plt = pyplot()
    z = latents(g, seeds)
    ws = g.broadcast(g.map(z))
    fig, axes = plt.subplots(len(seeds), draws + 1, figsize=(1.2 * (draws + 1), 1.25 * len(seeds)))
    for i in range(len(seeds)):
        w_rep = ws[i:i + 1].expand(std_draws, -1, -1)
        imgs = g.synthesis(w_rep, g.make_noise(std_draws, torch.Generator().manual_seed(i)) if g.use_noise else None)
        for j in range(draws):
            _show(axes[i, j], to_uint8(imgs[j:j + 1])[0])
        std = imgs.float().std(0).mean(0).cpu().numpy()
        axes[i, draws].imshow(std, cmap="magma", vmin=0)
        axes[i, draws].set_xticks([])
        axes[i, draws].set_yticks([])
    axes[0, draws].set_title("pixel std\nover noise", fontsize=8)
    for j in range(draws):
        axes[0, j].set_title(f"noise {j + 1}", fontsize=8)
    fig.suptitle("Noise inputs: same w, different noise", fontsize=10)
    return save_figure(fig, path, dpi=110)


@torch.no_grad()
def interpolation_strip(g: Generator, path: Path, seed_a: int = 1, seed_b: int = 2, steps: int = 10,
                        psi: float = 1.0) -> Path:
    """Linear interpolation in W between two seeds' w, fixed noise."""
    z = latents(g, (seed_a, seed_b))
    w = g.map(z)
    t = torch.linspace(0, 1, steps, device=w.device)[:, None]
    ws = g.broadcast(w[0:1] * (1 - t) + w[1:2] * t)
    noise = fixed_noise(g, 1, 0)
    imgs = to_uint8(g.synthesis(g.truncate(ws, psi), [n.expand(steps, -1, -1, -1) for n in noise] if noise else None))
    return save_png(tile(imgs, 1, steps), path)
