"""Reference points for bits per character: unigram and bigram character models fitted on the
training text, and what general-purpose compressors (xz, bz2) spend on the validation text."""

from __future__ import annotations

import bz2
import lzma
import math

import numpy as np


def unigram_bpc(train: np.ndarray, val: np.ndarray, vocab: int) -> float:
    counts = np.bincount(train, minlength=vocab).astype(np.float64) + 1.0  # add-one smoothing
    p = counts / counts.sum()
    return float(-np.log2(p[val]).mean())


def bigram_bpc(train: np.ndarray, val: np.ndarray, vocab: int) -> float:
    counts = np.ones((vocab, vocab), dtype=np.float64)  # add-one smoothing
    np.add.at(counts, (train[:-1], train[1:]), 1.0)
    p = counts / counts.sum(axis=1, keepdims=True)
    return float(-np.log2(p[val[:-1], val[1:]]).mean())


def compressor_bpc(text: str) -> dict[str, float]:
    """Bits per character of the text compressed by xz (preset 9, extreme) and bz2 (level 9)."""
    raw = text.encode("utf-8")
    n = max(1, len(text))
    return {"xz": 8 * len(lzma.compress(raw, preset=9 | lzma.PRESET_EXTREME)) / n,
            "bz2": 8 * len(bz2.compress(raw, 9)) / n}


def nats(bpc: float) -> float:
    return bpc * math.log(2)
