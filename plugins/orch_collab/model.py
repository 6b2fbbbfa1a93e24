"""EmbeddingDotBias (fast.ai lesson 4/5): a rating is the dot product of a user and an item
embedding plus a bias for each, squashed by a sigmoid into ``y_range``."""

from __future__ import annotations

import torch
from torch import nn


class EmbeddingDotBias(nn.Module):
    def __init__(self, n_users: int, n_items: int, n_factors: int, y_range: tuple[float, float]):
        super().__init__()
        self.user_factors = nn.Embedding(n_users, n_factors)
        self.item_factors = nn.Embedding(n_items, n_factors)
        self.user_bias = nn.Embedding(n_users, 1)
        self.item_bias = nn.Embedding(n_items, 1)
        self.y_low, self.y_high = y_range
        for emb in (self.user_factors, self.item_factors, self.user_bias, self.item_bias):
            nn.init.normal_(emb.weight, std=0.01)  # small start: the sigmoid begins near mid-range

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        dot = (self.user_factors(users) * self.item_factors(items)).sum(dim=1)
        raw = dot + self.user_bias(users).squeeze(1) + self.item_bias(items).squeeze(1)
        # sigmoid into a range a little wider than the ratings, so 5 stars stays reachable
        return torch.sigmoid(raw) * (self.y_high - self.y_low) + self.y_low


def build(config: dict) -> EmbeddingDotBias:
    """The model described by a saved config (``ctx.save_model``'s ``model.json``)."""
    return EmbeddingDotBias(config["n_users"], config["n_items"], config["n_factors"], tuple(config["y_range"]))
