"""Plain-text corpora for character models: loading, the vocabulary, the splits and the batches.

Splits: validation (dev) is the contiguous tail of the text, as a language model meets new text;
train-dev is random blocks of the rest (the training distribution, not trained on); training is
the remaining blocks in order.
"""

from __future__ import annotations

import json
import lzma
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from orchestrator import UserError

EMBEDDED = "embedded"
CORPUS = Path(__file__).parent / "corpus" / "shakespeare.txt.xz"
PAD = "\x00"  # index 0 is kept for padding


def read_text(source: str, max_chars: int | None = None) -> tuple[str, str]:
    """(text, where it came from); the embedded corpus or any UTF-8 file."""
    if source == EMBEDDED:
        with lzma.open(CORPUS, "rt", encoding="utf-8") as fh:
            text, name = fh.read(), "Shakespeare (embedded)"
    else:
        path = Path(source)
        if path.is_dir():
            raise UserError(f"{path}: is a folder; charrnn.data takes one UTF-8 text file (or 'embedded')")
        if not path.is_file():
            raise UserError(f"{path}: text file not found (charrnn.data)")
        try:
            text = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UserError(f"{path}: not UTF-8 text (bad byte at offset {exc.start})") from None
        name = str(path)
        if not text.strip():
            raise UserError(f"{path}: the file is empty")
    text = text.replace("\r\n", "\n")
    if PAD in text:
        raise UserError(f"{name}: contains NUL characters, which are reserved for padding")
    return (text[:max_chars] if max_chars else text), name


@dataclass(frozen=True)
class Vocab:
    """Sorted characters; index 0 is the padding symbol."""

    chars: tuple[str, ...]

    @classmethod
    def build(cls, text: str) -> "Vocab":
        return cls((PAD, *sorted(set(text))))

    def __len__(self) -> int:
        return len(self.chars)

    @property
    def index(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.chars)}

    def encode(self, text: str) -> np.ndarray:
        index = self.index
        unknown = sorted({c for c in text if c not in index})
        if unknown:
            raise UserError(f"characters not in the vocabulary: {''.join(unknown)!r}")
        return np.fromiter((index[c] for c in text), dtype=np.int64, count=len(text))

    def decode(self, ids) -> str:
        return "".join(self.chars[int(i)] for i in ids)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps({"chars": list(self.chars)}, ensure_ascii=False))

    @classmethod
    def load(cls, path: Path) -> "Vocab":
        return cls(tuple(json.loads(path.read_text())["chars"]))


def split(ids: np.ndarray, valid_pct: float, train_dev_pct: float, block: int, seed: int,
          source: str = "text") -> dict[str, np.ndarray]:
    n_val = int(len(ids) * valid_pct)
    head, val = ids[: len(ids) - n_val], ids[len(ids) - n_val:]
    blocks = [head[i:i + block] for i in range(0, len(head), block)]
    n_dev = max(1, int(round(len(blocks) * train_dev_pct)))
    if len(blocks) <= n_dev:
        raise UserError(f"{source}: too short: {len(ids)} characters make {len(blocks)} block(s) of "
                        f"charrnn.block={block}, and train-dev needs {n_dev} of them besides training; "
                        "lower charrnn.block or use more text")
    held = set(np.random.default_rng(seed).choice(len(blocks), size=n_dev, replace=False).tolist())
    train = np.concatenate([b for i, b in enumerate(blocks) if i not in held])
    dev = np.concatenate([b for i, b in enumerate(blocks) if i in held])
    return {"train": train, "train_dev": dev, "val": val}


def stream_batches(ids: np.ndarray, bs: int, bptt: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Stateful batches: the text cut into ``bs`` contiguous streams, read ``bptt`` at a time, so
    row j of each batch continues row j of the previous one (hidden state can be carried)."""
    n = (len(ids) - 1) // bs
    if n < 2:
        raise UserError(f"text too short: {len(ids)} characters for {bs} streams of at least 2; lower charrnn.bs")
    x = ids[: n * bs].reshape(bs, n)
    y = ids[1: n * bs + 1].reshape(bs, n)
    for start in range(0, n, bptt):
        yield x[:, start:start + bptt], y[:, start:start + bptt]


def n_batches(n_ids: int, bs: int, bptt: int) -> int:
    n = (n_ids - 1) // bs
    return (n + bptt - 1) // bptt
