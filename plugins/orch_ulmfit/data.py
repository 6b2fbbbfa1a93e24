"""Loaders for labelled text: the aclImdb folder layout and the "label,text" CSV standard with a
classes.txt; the embedded default (the Women's Clothing reviews) is written in the CSV standard and
read back by the same loader. And the general-domain corpus for pretraining.

aclImdb:   ROOT/{train,test}/{pos,neg}/*.txt and ROOT/train/unsup/*.txt (unlabelled)
CSV:       FOLDER/train.csv (and optional test.csv), no header: label, field 1, field 2...;
           FOLDER/classes.txt: one class name per line, the labels' index order
"""

from __future__ import annotations

import csv
import lzma
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Iterator

from orchestrator import UserError

REVIEWS = "WomensClothingE-CommerceReviews.parquet.brotli"
GENERAL = ("kjv.txt.xz", "fortunes.txt.xz")


@dataclass
class Labelled:
    docs: list[list[str]]  # each document: its text fields
    labels: list[int]
    classes: list[str]
    source: str
    unlabelled: list[list[str]] = field(default_factory=list)
    test_docs: list[list[str]] = field(default_factory=list)
    test_labels: list[int] = field(default_factory=list)


def corpus_dir() -> Path:
    return Path(str(resources.files("orch_ulmfit") / "corpus"))


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text (byte {exc.start})") from None


def load_imdb(root: Path) -> Labelled:
    classes = ["neg", "pos"]

    def split(name: str) -> tuple[list[list[str]], list[int]]:
        docs, labels = [], []
        for label, cls in enumerate(classes):
            for path in sorted((root / name / cls).glob("*.txt")):
                docs.append([_read_text(path)])
                labels.append(label)
        return docs, labels

    docs, labels = split("train")
    if not docs:
        raise UserError(f"{root}: no reviews in train/pos or train/neg (expected the aclImdb layout)")
    test_docs, test_labels = split("test")
    unsup = [[_read_text(p)] for p in sorted((root / "train" / "unsup").glob("*.txt"))]
    return Labelled(docs, labels, classes, str(root), unsup, test_docs, test_labels)


def read_classes(path: Path) -> list[str]:
    if not path.exists():
        raise UserError(f"{path}: not found (the CSV standard needs classes.txt: one class per line)")
    classes = [c.strip() for c in _read_text(path).splitlines() if c.strip()]
    if len(classes) < 2:
        raise UserError(f"{path}: expected at least two classes, found {len(classes)}")
    return classes


def read_csv(path: Path, classes: list[str]) -> tuple[list[list[str]], list[int]]:
    """Rows of label, field 1, field 2...; the label is a class name or its number in classes.txt:
    1-based as in the CSV standard (AG News, Yelp, DBpedia: 1..K), 0-based when a file has a 0."""
    index = {c: i for i, c in enumerate(classes)}
    docs, raw = [], []
    try:
        with open(path, encoding="utf-8", newline="") as f:
            for n, row in enumerate(csv.reader(f), start=1):
                if not row:
                    continue
                if len(row) < 2:
                    raise UserError(f"{path}: line {n}: expected label,text, found {len(row)} column")
                label = row[0].strip()
                if label not in index and not label.isdigit():
                    raise UserError(f"{path}: line {n}: label {label!r} is not in classes.txt ({', '.join(classes)})")
                raw.append((n, label))
                docs.append(row[1:])
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except csv.Error as exc:
        raise UserError(f"{path}: not a readable CSV ({exc})") from None
    if not docs:
        raise UserError(f"{path}: no rows")
    numbers = [int(label) for _, label in raw if label not in index]
    first = 0 if numbers and min(numbers) == 0 else 1
    labels = []
    for n, label in raw:
        if label in index:
            labels.append(index[label])
        elif first <= int(label) < first + len(classes):
            labels.append(int(label) - first)
        else:
            raise UserError(f"{path}: line {n}: label {label} is outside {first}..{first + len(classes) - 1} "
                            f"(numbered from {first}: {len(classes)} classes in classes.txt)")
    return docs, labels


def load_csv_folder(folder: Path) -> Labelled:
    classes = read_classes(folder / "classes.txt")
    if not (folder / "train.csv").exists():
        raise UserError(f"{folder / 'train.csv'}: not found (the CSV standard: train.csv, classes.txt)")
    docs, labels = read_csv(folder / "train.csv", classes)
    out = Labelled(docs, labels, classes, str(folder))
    if (folder / "test.csv").exists():
        out.test_docs, out.test_labels = read_csv(folder / "test.csv", classes)
    return out


def write_reviews_csv(folder: Path) -> Path:
    """The embedded default in the CSV standard: Recommended (no/yes), title, review text."""
    import pandas as pd

    frame = pd.read_parquet(corpus_dir() / REVIEWS)
    frame = frame[frame["Review Text"].notna()]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "classes.txt").write_text("no\nyes\n", encoding="utf-8")
    rows = zip(frame["Recommended IND"].map({0: "no", 1: "yes"}), frame["Title"].fillna(""), frame["Review Text"])
    with open(folder / "train.csv", "w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(rows)
    return folder


def load_labelled(source: str, scratch: Path) -> Labelled:
    """'embedded', an aclImdb folder (has train/pos), or a CSV-standard folder (has classes.txt)."""
    if source == "embedded":
        return load_csv_folder(write_reviews_csv(scratch / "reviews"))
    root = Path(source)
    if not root.is_dir():
        raise UserError(f"{root}: not a folder (ulmfit.data expects 'embedded', an aclImdb folder or a CSV folder)")
    if (root / "train" / "pos").is_dir():
        return load_imdb(root)
    return load_csv_folder(root)


def general_corpus(sources: list[str]) -> list[tuple[str, Path | str]]:
    """(name, path) of each pretraining text; 'embedded' = KJV + fortunes + Shakespeare."""
    out: list[tuple[str, Path | str]] = []
    for source in sources:
        if source == "embedded":
            out += [(name, corpus_dir() / name) for name in GENERAL]
            out.append(("shakespeare", Path(str(resources.files("orch_charrnn") / "corpus" / "shakespeare.txt.xz"))))
        else:
            path = Path(source)
            if not path.is_file():
                raise UserError(f"{path}: not found (ulmfit.pretrain_corpus lists text files or 'embedded')")
            out.append((path.name, path))
    return out


def paragraphs(path: Path) -> Iterator[str]:
    """The paragraphs (blank-line separated) of a UTF-8 text file, xz-compressed or not, read in
    1 MB pieces so that a corpus of any size streams through."""
    opener = lzma.open if path.suffix == ".xz" else open
    seen = False
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            rest = ""
            while block := f.read(1 << 20):
                block = rest + block
                cut = block.rfind("\n\n")
                if cut < 0:
                    rest = block
                    continue
                for para in block[:cut].split("\n\n"):
                    if para.strip():
                        seen = True
                        yield para.strip()
                rest = block[cut + 2:]
            for para in rest.split("\n\n"):
                if para.strip():
                    seen = True
                    yield para.strip()
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except lzma.LZMAError as exc:
        raise UserError(f"{path}: not a readable xz file ({exc})") from None
    if not seen:
        raise UserError(f"{path}: empty")
