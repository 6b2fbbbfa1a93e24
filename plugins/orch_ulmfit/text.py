"""The lesson's text pipeline: fix-up of HTML artefacts, special tokens, spaCy tokenization in
parallel processes over chunks, and a vocabulary with unknown and padding tokens.

Special tokens (fastai's names):
  xxbos        stream start: begins every document
  xxfld N      field N of a multi-field document (title, body...)
  xxmaj        the next word was Capitalized (it is lower-cased)
  xxup         the next word was ALL CAPS (it is lower-cased)
  xxrep N c    the character c repeated N times (!!!!! -> xxrep 5 !)
  xxwrep N w   the word w repeated N times
  xxunk        a word outside the vocabulary
  xxpad        padding (id 1; xxunk is id 0)
"""

from __future__ import annotations

import html
import re
from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

UNK, PAD, BOS, FLD, MAJ, UP, REP, WREP = "xxunk", "xxpad", "xxbos", "xxfld", "xxmaj", "xxup", "xxrep", "xxwrep"
SPECIAL = [UNK, PAD, BOS, FLD, MAJ, UP, REP, WREP]

_HTML = [("#39;", "'"), ("amp;", "&"), ("#146;", "'"), ("nbsp;", " "), ("#36;", "$"), ("\\n", "\n"),
         ("quot;", "'"), ("<br />", "\n"), ("<br/>", "\n"), ("<br>", "\n"), ('\\"', '"'), (" @.@ ", "."),
         (" @-@ ", "-"), (" @,@ ", ","), ("\\", " \\ ")]
_REP = re.compile(r"(\S)(\1{3,})")
_WREP = re.compile(r"(?:\s|^)(\w+)((?:\s+\1){3,})(?=\s|$)")
_SPACES = re.compile(r" {2,}")
_SLASH_HASH = re.compile(r"([/#])")


def fixup(text: str) -> str:
    """Undo the HTML and scraping artefacts of web text (IMDb's <br /> among them)."""
    text = html.unescape(text)  # &amp; &quot; &#39; ... first; then the bare forms scraping left behind
    for old, new in _HTML:
        text = text.replace(old, new)
    return _SPACES.sub(" ", text)


def mark_repeats(text: str) -> str:
    """Runs of 4+ identical characters or words become one marker with the count."""
    text = _REP.sub(lambda m: f" {REP} {len(m.group(0))} {m.group(1)} ", text)
    return _WREP.sub(lambda m: f" {WREP} {len(m.group(2).split()) + 1} {m.group(1)} ", text)


def preprocess(text: str) -> str:
    return _SPACES.sub(" ", _SLASH_HASH.sub(r" \1 ", mark_repeats(fixup(text)))).strip()


def mark_case(tokens: Iterable[str]) -> list[str]:
    """ALL CAPS words -> xxup word; Capitalized words -> xxmaj word; everything lower-cased."""
    out: list[str] = []
    for tok in tokens:
        if tok in SPECIAL:
            out.append(tok)
        elif len(tok) > 1 and tok.isupper():
            out += [UP, tok.lower()]
        elif tok[:1].isupper() and tok[1:].islower() or (len(tok) == 1 and tok.isupper()):
            out += [MAJ, tok.lower()]
        else:
            out.append(tok.lower())
    return out


_NLP = None


def _tokenizer():
    global _NLP
    if _NLP is None:
        import spacy

        _NLP = spacy.blank("en")  # the rule-based English tokenizer: no model download
        for special in SPECIAL:
            _NLP.tokenizer.add_special_case(special, [{"ORTH": special}])
    return _NLP.tokenizer


def tokenize_docs(docs: Sequence[Sequence[str]]) -> list[list[str]]:
    """Each document is a list of fields: xxbos, then per field ``xxfld N`` when there are several."""
    tok = _tokenizer()
    multi = any(len(d) > 1 for d in docs)
    flat = [preprocess(field or "") for d in docs for field in d]
    parsed = iter(tok.pipe(flat, batch_size=500))
    out = []
    for d in docs:
        tokens = [BOS]
        for i in range(len(d)):
            if multi:
                tokens += [FLD, str(i + 1)]
            tokens += mark_case(t.text for t in next(parsed) if not t.is_space)
        out.append(tokens)
    return out


def chunks(items: Sequence, size: int) -> Iterator[Sequence]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def tokenize(docs: Sequence[Sequence[str]], processes: int = 2, chunk: int = 2000, progress: bool = False
             ) -> list[list[str]]:
    """Tokenize documents in pieces of at most ``chunk`` across ``processes`` worker processes (order
    kept); pieces are small enough that every process gets several."""
    size = max(1, min(chunk, -(-len(docs) // (4 * processes))))
    parts = list(chunks(docs, size))
    if processes <= 1 or len(parts) == 1:
        return [t for part in parts for t in tokenize_docs(part)]
    import multiprocessing as mp

    from tqdm.auto import tqdm

    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context("spawn")
    with ctx.Pool(processes) as pool:
        done = tqdm(pool.imap(tokenize_docs, parts), total=len(parts), desc="tokenizing", leave=False,
                    disable=None if progress else True)
        return [t for part in done for t in part]


@dataclass(frozen=True)
class Vocab:
    itos: tuple[str, ...]

    @classmethod
    def build(cls, docs: Iterable[Sequence[str]], max_size: int, min_freq: int) -> "Vocab":
        """The ``max_size`` most frequent tokens seen at least ``min_freq`` times, after the specials."""
        counts = Counter(t for d in docs for t in d)
        for s in SPECIAL:
            counts.pop(s, None)
        words = [w for w, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if c >= min_freq]
        return cls(tuple(SPECIAL + words[: max(0, max_size - len(SPECIAL))]))

    def __len__(self) -> int:
        return len(self.itos)

    @cached_property
    def stoi(self) -> dict[str, int]:
        return {w: i for i, w in enumerate(self.itos)}

    def numericalize(self, tokens: Sequence[str]) -> np.ndarray:
        stoi = self.stoi
        return np.array([stoi.get(t, 0) for t in tokens], dtype=np.int32)

    def save(self, path: Path) -> None:
        path.write_text("\n".join(self.itos) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> "Vocab":
        from orchestrator import UserError

        try:
            itos = tuple(path.read_text(encoding="utf-8").rstrip("\n").split("\n"))
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"{path}: cannot read the vocabulary ({exc})") from None
        if itos[: len(SPECIAL)] != tuple(SPECIAL):
            raise UserError(f"{path}: not a vocabulary file (expected the special tokens {', '.join(SPECIAL)} first)")
        return cls(itos)


def save_ids(docs: Sequence[np.ndarray], path: Path) -> None:
    """Ragged id arrays as one flat int32 array plus offsets, in one .npz."""
    lengths = np.array([len(d) for d in docs], dtype=np.int64)
    flat = np.concatenate(docs) if docs else np.zeros(0, np.int32)
    np.savez(path, ids=flat.astype(np.int32), offsets=np.concatenate([[0], np.cumsum(lengths)]))


def load_ids(path: Path) -> list[np.ndarray]:
    with np.load(path) as z:
        ids, offsets = z["ids"], z["offsets"]
    return [ids[offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1)]
