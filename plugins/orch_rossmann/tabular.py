"""The generic tabular path: categorical codes fitted on train (unseen values -> code 0, "unknown"),
continuous variables scaled with train statistics, and the embedding-size rule."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd


def embedding_size(n_codes: int) -> int:
    """The fast.ai lesson's rule, min(50, (n + 1) // 2), with n counting the unknown code.

    Chosen over fastai's later 1.6 * n^0.56 because this task reproduces the lesson, and at
    Rossmann's cardinalities it lands close to Guo & Berkhahn's hand-picked sizes (state 6,
    day of week 4, month 6) while capping large ones (store) at 50."""
    return min(50, (n_codes + 1) // 2)


@dataclass
class Encoder:
    categorical: list[str]
    continuous: list[str]
    categories: dict[str, list[str]] = field(default_factory=dict)
    means: dict[str, float] = field(default_factory=dict)
    stds: dict[str, float] = field(default_factory=dict)

    def fit(self, train: pd.DataFrame) -> "Encoder":
        for c in self.categorical:
            self.categories[c] = sorted(_as_str(train[c]).unique().tolist())
        for c in self.continuous:
            values = pd.to_numeric(train[c], errors="coerce").astype(float)
            mean, std = float(values.mean()), float(values.std())
            self.means[c] = mean if np.isfinite(mean) else 0.0
            self.stds[c] = std if np.isfinite(std) and std > 0 else 1.0  # constant or empty: leave as is
        return self

    def n_codes(self, column: str) -> int:
        return len(self.categories[column]) + 1  # + the unknown code 0

    def codes(self, frame: pd.DataFrame) -> np.ndarray:
        """(rows, categorical) int64 codes; values unseen in train get 0."""
        out = np.zeros((len(frame), len(self.categorical)), dtype=np.int64)
        for j, c in enumerate(self.categorical):
            index = {v: i + 1 for i, v in enumerate(self.categories[c])}
            out[:, j] = _as_str(frame[c]).map(index).fillna(0).to_numpy(np.int64)
        return out

    def scaled(self, frame: pd.DataFrame) -> np.ndarray:
        """(rows, continuous) float32, standardised with train statistics; missing -> the mean (0)."""
        out = np.zeros((len(frame), len(self.continuous)), dtype=np.float32)
        for j, c in enumerate(self.continuous):
            values = pd.to_numeric(frame[c], errors="coerce").astype(float)
            out[:, j] = ((values - self.means[c]) / self.stds[c]).fillna(0.0).to_numpy(np.float32)
        return out

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.__dict__, indent=1))

    @classmethod
    def load(cls, path: Path) -> "Encoder":
        return cls(**json.loads(path.read_text()))


def _as_str(values: pd.Series) -> pd.Series:
    """Category labels as plain strings, missing values included as "nan"."""
    return values.map(lambda v: "nan" if pd.isna(v) else str(v)).astype(object)


def time_split(frame: pd.DataFrame, date: str, weeks: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, validation): validation is the last ``weeks`` weeks, as long as the test period."""
    cut = frame[date].max() - pd.Timedelta(weeks=weeks)
    return frame[frame[date] <= cut], frame[frame[date] > cut]


def rmspe(y: np.ndarray, pred: np.ndarray) -> float:
    """Kaggle's Rossmann metric: root mean squared percentage error."""
    return float(np.sqrt(np.mean(((y - pred) / y) ** 2)))


def mape(y: np.ndarray, pred: np.ndarray) -> float:
    return float(np.mean(np.abs(y - pred) / y))
