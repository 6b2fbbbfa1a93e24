"""StyleGAN (Karras et al. 2019) at small scale: mapping network, learned constant input, AdaIN
styles, per-layer noise inputs, style mixing and truncation; and its discriminator.

Layers use the paper's equalized learning rate (weights drawn N(0, 1), scaled at run time by He's
constant), so Adam's per-parameter steps are the same size in every layer; the mapping network's
``lr_mul`` (0.01) gives it the paper's 100x lower learning rate.

Layer indexing: a generator for resolution R has ``2 * log2(R) - 2`` style layers, two per
resolution from 4x4 up. The paper's groups: coarse = 4x4 and 8x8, middle = 16x16 and 32x32, fine =
the rest; for R <= 32 the fine group is the last resolution (see ``layer_groups``).

The ablation switches: ``styles=False`` is the traditional generator (z enters at the input through
a dense layer; pixel norm instead of AdaIN); ``noise=False`` drops the noise inputs. Mixing is a
training-time choice (``mix_prob`` in train.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import math

import torch
from torch import nn
from torch.nn import functional as F

if TYPE_CHECKING:
    from orch_stylegan.params import StyleGANParams

SQRT2 = math.sqrt(2.0)


def fmaps(resolution: int, base: int, cap: int) -> int:
    """Feature maps at a resolution: base / resolution, capped (the paper: 8192 / res, cap 512)."""
    return max(8, min(cap, base // resolution))


def layer_groups(resolution: int) -> dict[str, range]:
    """Style-layer ranges of the paper's coarse (4-8 px), middle (16-32 px) and fine (64+ px) styles.
    Below 64 px the groups shrink so that none is empty: at 32 px coarse = 4-8, middle = 16,
    fine = 32; at 16 px one resolution each."""
    levels = n_layers(resolution) // 2  # resolutions 4, 8, ..., R
    coarse = 2 if levels >= 4 else 1
    middle = 2 if levels >= 5 else 1
    return {"coarse": range(0, 2 * coarse), "middle": range(2 * coarse, 2 * (coarse + middle)),
            "fine": range(2 * (coarse + middle), 2 * levels)}


def n_layers(resolution: int) -> int:
    return 2 * int(math.log2(resolution)) - 2


class EqualLinear(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, bias_init: float = 0.0, lr_mul: float = 1.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init)))
        self.scale, self.lr_mul, self.bias_init = lr_mul / math.sqrt(in_dim), lr_mul, bias_init

    def forward(self, x):
        return F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)


class EqualConv2d(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, kernel: int, bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(out_ch)) if bias else None
        self.scale, self.pad = 1 / math.sqrt(in_ch * kernel * kernel), kernel // 2

    def forward(self, x):
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.pad)


def pixel_norm(x: torch.Tensor, dim: int = 1) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).mean(dim=dim, keepdim=True) + 1e-8)


def lrelu(x: torch.Tensor) -> torch.Tensor:
    """Leaky ReLU with the gain that keeps activations' scale (sqrt 2)."""
    return F.leaky_relu(x, 0.2) * SQRT2


class MappingNetwork(nn.Module):
    """z -> w: pixel norm, then an MLP of ``depth`` layers at 1/100 of the learning rate."""

    def __init__(self, z_dim: int, w_dim: int, depth: int, lr_mul: float = 0.01):
        super().__init__()
        dims = [z_dim] + [w_dim] * depth
        self.layers = nn.ModuleList(EqualLinear(a, b, lr_mul=lr_mul) for a, b in zip(dims, dims[1:]))

    def forward(self, z):
        x = pixel_norm(z)
        for layer in self.layers:
            x = lrelu(layer(x))
        return x


class NoiseInjection(nn.Module):
    """Adds single-channel Gaussian noise scaled per feature map by a learned factor (zero at start)."""

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x, noise):
        return x + self.weight * noise


class AdaIN(nn.Module):
    """Normalize each feature map of each sample to zero mean / unit variance, then scale and shift
    it by a style computed from w by a learned affine map (scale initialised to 1)."""

    def __init__(self, channels: int, w_dim: int):
        super().__init__()
        self.scale = EqualLinear(w_dim, channels, bias_init=1.0)
        self.shift = EqualLinear(w_dim, channels, bias_init=0.0)

    def forward(self, x, w):
        x = F.instance_norm(x, eps=1e-8)
        return self.scale(w)[:, :, None, None] * x + self.shift(w)[:, :, None, None]


class StyleLayer(nn.Module):
    """(upsample) conv 3x3 -> noise -> bias + leaky ReLU -> AdaIN(w) (or pixel norm without styles)."""

    def __init__(self, in_ch: int, out_ch: int, w_dim: int, upsample: bool, styles: bool, noise: bool):
        super().__init__()
        self.upsample = upsample
        self.conv = EqualConv2d(in_ch, out_ch, 3, bias=False) if in_ch else None
        self.bias = nn.Parameter(torch.zeros(1, out_ch, 1, 1))
        self.noise = NoiseInjection(out_ch) if noise else None
        self.adain = AdaIN(out_ch, w_dim) if styles else None

    def forward(self, x, w, noise):
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        if self.conv is not None:
            x = self.conv(x)
        if self.noise is not None:
            x = self.noise(x, noise)
        x = lrelu(x + self.bias)
        return self.adain(x, w) if self.adain is not None else pixel_norm(x)


class Generator(nn.Module):
    def __init__(self, resolution: int, channels: int, z_dim: int = 128, w_dim: int = 128, mapping_depth: int = 8,
                 fmap_base: int = 1024, fmap_max: int = 64, styles: bool = True, noise: bool = True,
                 w_avg_beta: float = 0.995):
        super().__init__()
        self.resolution, self.z_dim, self.w_dim = resolution, z_dim, w_dim
        self.styles, self.use_noise, self.w_avg_beta = styles, noise, w_avg_beta
        self.n_layers = n_layers(resolution)
        ch4 = fmaps(4, fmap_base, fmap_max)
        if styles:
            self.mapping = MappingNetwork(z_dim, w_dim, mapping_depth)
            self.const = nn.Parameter(torch.ones(1, ch4, 4, 4))
        else:  # the traditional input: z through a dense layer to the first 4x4 feature maps
            self.mapping = None
            self.dense = EqualLinear(z_dim, ch4 * 16)
        layers = [StyleLayer(0, ch4, w_dim, False, styles, noise), StyleLayer(ch4, ch4, w_dim, False, styles, noise)]
        res, ch = 8, ch4
        while res <= resolution:
            out = fmaps(res, fmap_base, fmap_max)
            layers += [StyleLayer(ch, out, w_dim, True, styles, noise), StyleLayer(out, out, w_dim, False, styles, noise)]
            res, ch = res * 2, out
        self.layers = nn.ModuleList(layers)
        self.to_rgb = EqualConv2d(ch, channels, 1)
        self.register_buffer("w_avg", torch.zeros(w_dim if styles else z_dim))

    def noise_shapes(self) -> list[tuple[int, int]]:
        return [(4 * 2 ** (i // 2),) * 2 for i in range(self.n_layers)]

    def make_noise(self, n: int, generator: torch.Generator | None = None, device=None) -> list[torch.Tensor]:
        """One noise image per layer, from ``generator`` (deterministic) or the global RNG."""
        device = device or self.to_rgb.weight.device
        return [torch.randn(n, 1, h, w, generator=generator).to(device) for h, w in self.noise_shapes()]

    def map(self, z: torch.Tensor) -> torch.Tensor:
        """z (N, z_dim) -> w (N, w_dim); without styles, w is the normalized z itself."""
        return self.mapping(z) if self.mapping is not None else pixel_norm(z)

    def update_w_avg(self, w: torch.Tensor) -> None:
        """Track the average w for truncation (a running mean, as the paper's w_avg)."""
        with torch.no_grad():
            self.w_avg.lerp_(w.mean(0).to(self.w_avg.dtype), 1 - self.w_avg_beta)

    def truncate(self, ws: torch.Tensor, psi: float, cutoff: int | None = None) -> torch.Tensor:
        """w' = w_avg + psi (w - w_avg) in the layers below ``cutoff`` (all layers if None)."""
        if psi == 1:
            return ws
        cutoff = self.n_layers if cutoff is None else cutoff
        out = ws.clone()
        out[:, :cutoff] = self.w_avg + psi * (ws[:, :cutoff] - self.w_avg)
        return out

    def broadcast(self, w: torch.Tensor) -> torch.Tensor:
        return w[:, None].expand(-1, self.n_layers, -1)

    def synthesis(self, ws: torch.Tensor, noise: list[torch.Tensor] | None = None) -> torch.Tensor:
        """ws (N, n_layers, w_dim): one w per layer (they differ only under mixing) -> image in [-1, 1]-ish."""
        n = ws.shape[0]
        noise = noise if noise is not None else (self.make_noise(n) if self.use_noise else [None] * self.n_layers)
        if self.mapping is not None:
            x = self.const.expand(n, -1, -1, -1)
        else:
            x = self.dense(ws[:, 0]).view(n, -1, 4, 4)
        for i, layer in enumerate(self.layers):
            x = layer(x, ws[:, i], noise[i])
        return self.to_rgb(x)

    def forward(self, z: torch.Tensor, z2: torch.Tensor | None = None, crossover: int | None = None,
                psi: float = 1.0, cutoff: int | None = None, noise: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Image from z; with ``z2`` and ``crossover``, layers from ``crossover`` on take z2's w (mixing)."""
        ws = self.broadcast(self.map(z))
        if z2 is not None and crossover is not None:
            ws = ws.clone()
            ws[:, crossover:] = self.map(z2)[:, None]
        return self.synthesis(self.truncate(ws, psi, cutoff), noise)


class DBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.conv1, self.conv2 = EqualConv2d(in_ch, in_ch, 3), EqualConv2d(in_ch, out_ch, 3)

    def forward(self, x):
        x = lrelu(self.conv2(lrelu(self.conv1(x))))
        return F.avg_pool2d(x, 2)


class Discriminator(nn.Module):
    """fromRGB, conv blocks halving the resolution to 4x4, minibatch standard deviation, two dense layers."""

    def __init__(self, resolution: int, channels: int, fmap_base: int = 1024, fmap_max: int = 64, mbstd_group: int = 4):
        super().__init__()
        self.mbstd_group = mbstd_group
        ch = fmaps(resolution, fmap_base, fmap_max)
        self.from_rgb = EqualConv2d(channels, ch, 1)
        blocks, res = [], resolution
        while res > 4:
            out = fmaps(res // 2, fmap_base, fmap_max)
            blocks.append(DBlock(ch, out))
            res, ch = res // 2, out
        self.blocks = nn.Sequential(*blocks)
        self.conv = EqualConv2d(ch + 1, ch, 3)
        self.dense = EqualLinear(ch * 16, ch)
        self.out = EqualLinear(ch, 1)

    def minibatch_std(self, x):
        """Append the average standard deviation across groups of samples: lets D see variety."""
        n, c, h, w = x.shape
        g = min(self.mbstd_group, n)
        while n % g:
            g -= 1
        y = x.view(g, -1, c, h, w)
        y = (y.var(0, unbiased=False) + 1e-8).sqrt().mean(dim=(1, 2, 3))  # (n/g,)
        y = y.repeat(g).view(n, 1, 1, 1).expand(n, 1, h, w)
        return torch.cat([x, y], dim=1)

    def forward(self, img):
        x = self.blocks(lrelu(self.from_rgb(img)))
        x = lrelu(self.conv(self.minibatch_std(x)))
        return self.out(lrelu(self.dense(x.flatten(1)))).squeeze(1)


def build(p, channels: int) -> tuple[Generator, Discriminator]:
    g = Generator(p.resolution, channels, p.z_dim, p.w_dim, p.mapping_depth, p.fmap_base, p.fmap_max,
                  styles=p.styles, noise=p.noise)
    d = Discriminator(p.resolution, channels, p.fmap_base, p.fmap_max)
    return g, d


def load_generator(folder: Path) -> tuple[Generator, "StyleGANParams"]:
    """The EMA generator from a train output folder (weights only), and the params it was built with."""
    from orch_stylegan.params import StyleGANParams
    from orchestrator import load_model, read_config

    p = StyleGANParams.model_validate(read_config(folder, "generator")["params"])
    return load_model(folder, "generator", lambda config: build(p, config["channels"])[0]), p
