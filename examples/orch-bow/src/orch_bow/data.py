"""Labelled texts in fastText's format (``__label__yes Great dress, fits well``), words, a vocabulary."""

from __future__ import annotations

import gzip
import re
from collections import Counter
from pathlib import Path

import numpy as np

from orchestrator import SPLITS, UserError

EMBEDDED = Path(__file__).with_name("corpus") / "reviews.txt.gz"
PREFIX = "__label__"
WORD = re.compile(r"[a-z0-9']+")


def load(path: Path) -> tuple[list[str], list[str]]:
    """(labels, texts) of a file (gzipped or not); a bad line is an error naming the file and line."""
    opener = gzip.open if path.suffix == ".gz" else open
    labels, texts = [], []
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                label, _, text = line.strip().partition(" ")
                if not label.startswith(PREFIX) or len(label) == len(PREFIX) or not text:
                    raise UserError(f"{path}: line {n}: expected '{PREFIX}NAME text', found {line.strip()[:40]!r}")
                labels.append(label[len(PREFIX):])
                texts.append(text)
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except (UnicodeDecodeError, gzip.BadGzipFile, EOFError) as exc:
        raise UserError(f"{path}: not a readable text file ({exc})") from None
    if len(set(labels)) < 2:
        raise UserError(f"{path}: needs at least two labels, found {sorted(set(labels)) or 'none'}")
    return labels, texts


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def vocabulary(texts: list[str], min_count: int, max_vocab: int) -> list[str]:
    """The most frequent words of ``texts`` seen at least ``min_count`` times, most frequent first."""
    counts = Counter(w for t in texts for w in words(t))
    return [w for w, c in counts.most_common(max_vocab) if c >= min_count]


def split(n: int, val_pct: float, train_dev_pct: float, seed: int) -> np.ndarray:
    order = np.random.default_rng(seed).permutation(n)
    n_val = int(n * val_pct)
    n_dev = int((n - n_val) * train_dev_pct)
    names = np.empty(n, dtype=object)
    names[order[:n_val]], names[order[n_val:n_val + n_dev]], names[order[n_val + n_dev:]] = SPLITS[2], SPLITS[1], SPLITS[0]
    return names
