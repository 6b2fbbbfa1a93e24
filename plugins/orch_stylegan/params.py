"""The stylegan task's params. Defaults: Fashion-MNIST at 32x32, sized for minutes on 2 CPU cores;
the paper's scale (resolution 128+, 512 feature maps, 8-layer mapping of width 512) is a params change."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from orchestrator import Params


class StyleGANParams(Params):
    # data
    data: str = Field("embedded", description="'embedded' (Fashion-MNIST test set), an IDX images file or an image folder")
    resolution: int = Field(32, ge=16, le=1024, description="square output size, a power of two")
    channels: Literal[1, 3] = Field(1, description="1: greyscale, 3: RGB")
    fit: Literal["pad", "crop"] = Field("pad", description="how non-square or smaller images reach the resolution")
    max_images: int | None = Field(None, gt=0, description="use the first N images (None: all)")
    eval_images: int = Field(1000, ge=100, description="held-out real images per split (train_dev, val) and generated images per FID")
    seed: int = 42
    # feature extractor for FID / KID
    feature_epochs: int = Field(3, gt=0)
    # networks
    z_dim: int = Field(128, gt=0)
    w_dim: int = Field(128, gt=0)
    mapping_depth: int = Field(4, ge=1, le=8, description="layers of the mapping network (paper: 8)")
    fmap_base: int = Field(512, ge=64, description="feature maps at resolution r: min(fmap_max, fmap_base / r)")
    fmap_max: int = Field(32, ge=8)
    styles: bool = Field(True, description="mapping network + AdaIN styles (False: traditional input, the ablation's baseline)")
    noise: bool = Field(True, description="per-layer noise inputs")
    mix_prob: float = Field(0.9, ge=0, le=1, description="style-mixing regularization probability")
    # training
    epochs: int = Field(4, gt=0)
    bs: int = Field(32, ge=2)
    lr_g: float = Field(2e-3, gt=0, le=1)
    lr_d: float = Field(2e-3, gt=0, le=1)
    beta1: float = Field(0.0, ge=0, lt=1)
    beta2: float = Field(0.99, ge=0, lt=1)
    r1_gamma: float = Field(10.0, ge=0, description="R1 penalty weight (the paper: 10; lower values collapsed here)")
    r1_every: int = Field(4, ge=1, description="lazy R1: every k discriminator steps")
    ema_half_life: int = Field(2000, gt=0, description="images for the generator EMA's weight to halve (paper: 10k)")
    mirror: bool = Field(True, description="random left-right flips of real images")
    checkpoints: bool = Field(True, description="save a checkpoint every epoch and resume an interrupted run with the same params")
    # truncation and grids
    psi: float = Field(0.7, ge=-1, le=1, description="truncation psi for the report's samples")
    cutoff: int | None = Field(None, ge=1, description="truncate only the layers below this (None: all)")

    @field_validator("resolution")
    @classmethod
    def _power_of_two(cls, v: int) -> int:
        if v & (v - 1):
            raise ValueError("must be a power of two (16, 32, 64, ...)")
        return v
