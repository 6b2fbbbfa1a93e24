"""The charrnn task's params. Defaults are sized for minutes on 2 CPU cores."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from orchestrator import Params

Arch = Literal["char3", "charloop", "rnn", "stateful", "lstm", "gru"]
ARCHS: tuple[str, ...] = ("char3", "charloop", "rnn", "stateful", "lstm", "gru")


class CharRNNParams(Params):
    data: str = Field("embedded", description="'embedded' (Shakespeare) or a UTF-8 text file")
    max_chars: int | None = Field(800_000, gt=0, description="use the first N characters (None: all)")
    valid_pct: float = Field(0.1, gt=0, lt=0.5, description="the tail of the text, for validation (dev)")
    train_dev_pct: float = Field(0.05, gt=0, lt=0.5, description="random blocks of the rest held out as train-dev")
    block: int = Field(10_000, ge=100, description="block size (chars) for drawing the train-dev slice")
    seed: int = 42
    arch: Arch = Field("lstm", description="the model the run is about: its metrics, samples, weights")
    compare: list[Arch] = Field(["char3", "charloop", "rnn", "stateful", "lstm"], description="architectures trained with the same budget, for the report")
    n_fac: int = Field(42, gt=0, description="character embedding size")
    n_hidden: int = Field(256, gt=0)
    n_layers: int = Field(2, ge=1, le=8, description="layers of lstm / gru")
    dropout: float = Field(0.1, ge=0, lt=1, description="between lstm / gru layers")
    context: int = Field(8, ge=2, le=64, description="characters seen by charloop; the rnn's warm-up before each block")
    bptt: int = Field(64, ge=4, description="sequence length (truncated back-propagation through time)")
    bs: int = Field(32, gt=0, description="batch size: parallel streams of text")
    epochs: int = Field(3, gt=0)
    lr: float = Field(6e-3, gt=0, le=1, description="peak learning rate (one-cycle: warm-up, cosine decay)")
    clip: float = Field(1.0, gt=0, description="gradient norm clipping")
    temperature: float = Field(0.8, gt=0, description="sampling temperature of the per-epoch sample")
    sample_chars: int = Field(400, ge=0)

    @model_validator(mode="after")
    def _check(self) -> "CharRNNParams":
        if self.arch not in self.compare:
            self.compare = [*self.compare, self.arch]
        return self
