"""The collab task's params: the defaults are the fast.ai lesson's, with weight decay tuned."""

from __future__ import annotations

from pydantic import Field, model_validator

from orchestrator import Params


class CollabParams(Params):
    data: str = Field("embedded", description="'embedded' or a MovieLens folder (ml-latest-small or ml-100k)")
    valid_pct: float = Field(0.2, gt=0, lt=1, description="share of all ratings for validation (dev)")
    train_dev_pct: float = Field(0.05, gt=0, lt=1, description="share of the rest held out as train-dev")
    seed: int = Field(42, description="seeds the split, the initial weights and the batch order")
    n_factors: int = Field(50, gt=0, le=4096, description="embedding size for users and films")
    epochs: int = Field(5, gt=0, le=1000)
    bs: int = Field(64, gt=0, description="batch size")
    lr: float = Field(5e-3, gt=0, le=10, description="peak learning rate of the one-cycle schedule")
    wd: float = Field(0.2, ge=0, description="decoupled weight decay (AdamW)")
    y_range: tuple[float, float] = Field((0.0, 5.5), description="sigmoid output range")

    @model_validator(mode="after")
    def _check_range(self) -> "CollabParams":
        if not self.y_range[0] < self.y_range[1]:
            raise ValueError(f"y_range must be [low, high] with low < high, got {list(self.y_range)}")
        if self.valid_pct + self.train_dev_pct * (1 - self.valid_pct) >= 0.9:
            raise ValueError("valid_pct and train_dev_pct leave under 10% of the ratings for training")
        return self
