"""The classifier of the PyTorch NLP tutorial ("Deep Learning with PyTorch": BoWClassifier): an
affine map from a vector of word counts to one score per label, then log-softmax."""

from __future__ import annotations

import torch
from torch import nn


class BoWClassifier(nn.Module):
    def __init__(self, vocab_size: int, num_labels: int) -> None:
        super().__init__()
        self.linear = nn.Linear(vocab_size, num_labels)

    def forward(self, bow_vec: torch.Tensor) -> torch.Tensor:
        return nn.functional.log_softmax(self.linear(bow_vec), dim=1)


def bow_vectors(docs: list[list[int]], vocab_size: int) -> torch.Tensor:
    """One row of word counts per document."""
    out = torch.zeros(len(docs), vocab_size)
    for row, ids in enumerate(docs):
        out[row].index_add_(0, torch.tensor(ids, dtype=torch.long), torch.ones(len(ids)))
    return out


def build(config: dict) -> BoWClassifier:
    return BoWClassifier(len(config["vocab"]), len(config["labels"]))
