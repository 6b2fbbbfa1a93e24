"""The bow task's params."""

from pydantic import Field

from orchestrator import Params


class BowParams(Params):
    data: str = Field("embedded", description="'embedded' or a text file in fastText's format: __label__NAME text")
    seed: int = Field(0, description="seeds the split, the weights and the batch order")
    val_pct: float = Field(0.2, gt=0, lt=0.5)
    train_dev_pct: float = Field(0.1, gt=0, lt=0.5)
    min_count: int = Field(2, ge=1, description="words seen fewer times in training are dropped")
    max_vocab: int = Field(5000, gt=0)
    epochs: int = Field(10, gt=0)
    bs: int = Field(32, gt=0)
    lr: float = Field(0.2, gt=0, description="SGD learning rate")
    wd: float = Field(1e-4, ge=0, description="L2 weight decay")
