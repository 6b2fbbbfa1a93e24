"""Image loaders: IDX ubyte(.gz) files (the MNIST family) and image folders (PNG/JPG, recursive),
each fitted to a square power-of-two resolution, greyscale or RGB, as uint8 (N, C, R, R) arrays.

Labels: IDX label files when present; for folders, the first sub-folder under the root names the
class (the ImageFolder convention) and a flat folder has no labels.
"""

from __future__ import annotations

import gzip
import struct
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from orchestrator import UserError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff"}
IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


@dataclass
class Images:
    pixels: np.ndarray  # uint8 (N, C, R, R)
    labels: np.ndarray | None  # int64 (N,) or None
    classes: list[str]
    source: str


def embedded_dir() -> Path:
    return Path(str(resources.files("orch_stylegan") / "corpus"))


def read_idx(path: Path) -> np.ndarray:
    """One IDX file (optionally gzipped): magic 0x0000 | dtype | ndim, then big-endian int32 dims."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:
        raise UserError(f"{path}: cannot read ({exc})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES:
        raise UserError(f"{path}: not an IDX file (bad magic number)")
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}i", raw[4:4 + 4 * ndim])
    dtype = np.dtype(IDX_DTYPES[raw[2]])
    expected = int(np.prod(dims)) * dtype.itemsize
    body = raw[4 + 4 * ndim:]
    if len(body) != expected:
        raise UserError(f"{path}: IDX header promises {dims} ({expected} bytes), file holds {len(body)}")
    return np.frombuffer(body, dtype=dtype).reshape(dims)


def load_idx(images_path: Path, labels_path: Path | None) -> Images:
    pixels = read_idx(images_path)
    if pixels.ndim not in (3, 4) or pixels.dtype != np.uint8:
        raise UserError(f"{images_path}: expected uint8 images (N, H, W) or (N, H, W, C), got {pixels.dtype} {pixels.shape}")
    if len(pixels) == 0:
        raise UserError(f"{images_path}: no images")
    pixels = pixels[:, None] if pixels.ndim == 3 else pixels.transpose(0, 3, 1, 2)
    labels = None
    if labels_path is not None and labels_path.exists():
        labels = read_idx(labels_path).astype(np.int64)
        if labels.shape != (len(pixels),):
            raise UserError(f"{labels_path}: {labels.shape[0]} labels for {len(pixels)} images in {images_path.name}")
    classes = [str(c) for c in np.unique(labels)] if labels is not None else []
    return Images(np.ascontiguousarray(pixels), labels, classes, str(images_path))


def _labels_file(images_path: Path) -> Path:
    """train-images-idx3-ubyte.gz -> train-labels-idx1-ubyte.gz (the MNIST naming)."""
    return images_path.with_name(images_path.name.replace("images-idx3", "labels-idx1"))


def load_folder(root: Path, channels: int, resolution: int, fit: str) -> Images:
    """Every image under ``root`` (recursive), converted to ``channels`` and fitted to ``resolution``."""
    from PIL import Image, UnidentifiedImageError

    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise UserError(f"{root}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found")
    classes = sorted({p.relative_to(root).parts[0] for p in files if len(p.relative_to(root).parts) > 1})
    labelled = len(classes) >= 2 and all(len(p.relative_to(root).parts) > 1 for p in files)
    out = np.empty((len(files), channels, resolution, resolution), dtype=np.uint8)
    mode = "L" if channels == 1 else "RGB"
    for i, path in enumerate(files):
        try:
            with Image.open(path) as img:
                img.load()
                out[i] = to_array(fit_image(img.convert(mode), resolution, fit))
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise UserError(f"{path}: unreadable or corrupt image ({exc})") from None
    labels = np.array([classes.index(p.relative_to(root).parts[0]) for p in files]) if labelled else None
    return Images(out, labels, classes if labelled else [], str(root))


def fit_image(img, resolution: int, fit: str):
    """Pad (centred, black) or crop to a square, then resize with Lanczos to resolution x resolution."""
    from PIL import Image, ImageOps

    if fit == "pad":
        side = max(img.size)
        canvas = Image.new(img.mode, (side, side))
        canvas.paste(img, ((side - img.size[0]) // 2, (side - img.size[1]) // 2))
        img = canvas
    else:
        img = ImageOps.fit(img, (min(img.size),) * 2)
    if img.size != (resolution, resolution):
        img = img.resize((resolution, resolution), Image.LANCZOS)
    return img


def to_array(img) -> np.ndarray:
    arr = np.asarray(img, dtype=np.uint8)
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def fit_array(pixels: np.ndarray, channels: int, resolution: int, fit: str) -> np.ndarray:
    """Fit IDX images: MNIST's 28x28 is padded to 32x32 by zeros (no resampling) when that is the target."""
    n, c, h, w = pixels.shape
    if c != channels:
        pixels = pixels.mean(axis=1, keepdims=True).round().astype(np.uint8) if channels == 1 else \
            np.repeat(pixels, 3, axis=1)
    if (h, w) == (resolution, resolution):
        return pixels
    if fit == "pad" and h <= resolution and w <= resolution:
        top, left = (resolution - h) // 2, (resolution - w) // 2
        out = np.zeros((n, channels, resolution, resolution), dtype=np.uint8)
        out[:, :, top:top + h, left:left + w] = pixels
        return out
    from PIL import Image

    mode = "L" if channels == 1 else "RGB"
    return np.stack([to_array(fit_image(Image.fromarray(p[0] if channels == 1 else p.transpose(1, 2, 0), mode),
                                        resolution, fit)) for p in pixels])


def load(source: str, channels: int, resolution: int, fit: str) -> Images:
    """'embedded' (Fashion-MNIST's test set), an IDX images file, or an image folder."""
    if source == "embedded":
        path = embedded_dir() / "t10k-images-idx3-ubyte.gz"
    else:
        path = Path(source)
    if not path.exists():
        raise UserError(f"{path}: not found (stylegan.data expects 'embedded', an IDX images file or an image folder)")
    if path.is_dir():
        return load_folder(path, channels, resolution, fit)
    images = load_idx(path, _labels_file(path))
    images.pixels = fit_array(images.pixels, channels, resolution, fit)
    return images


def split(n: int, train_dev: int, val: int, seed: int) -> dict[str, np.ndarray]:
    """Random disjoint index sets: the GAN trains on ``train``; ``train_dev`` and ``val`` stay unseen."""
    if train_dev + val >= n:
        raise UserError(f"stylegan.eval_images: {train_dev} + {val} held-out images leave none of {n} to train on")
    order = np.random.default_rng(seed).permutation(n)
    return {"train": np.sort(order[train_dev + val:]), "train_dev": np.sort(order[:train_dev]),
            "val": np.sort(order[train_dev:train_dev + val])}
