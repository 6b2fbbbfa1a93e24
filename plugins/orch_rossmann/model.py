"""Entity embeddings of categorical variables (Guo & Berkhahn 2016; the fast.ai Rossmann lesson):
one embedding per categorical, embedding dropout, batch norm on the continuous inputs, dense
layers with dropout, and a sigmoid into a y_range on the log target."""

from __future__ import annotations

import torch
from torch import nn


class EntityEmbeddingNet(nn.Module):
    def __init__(self, cardinalities: list[int], sizes: list[int], n_cont: int, layers: list[int],
                 dropouts: list[float], emb_drop: float, y_range: tuple[float, float]):
        super().__init__()
        self.embeds = nn.ModuleList(nn.Embedding(n, d) for n, d in zip(cardinalities, sizes))
        self.emb_drop = nn.Dropout(emb_drop)
        self.bn_cont = nn.BatchNorm1d(n_cont) if n_cont else None
        blocks, width = [], sum(sizes) + n_cont
        for units, p in zip(layers, dropouts):
            blocks += [nn.Linear(width, units), nn.ReLU(), nn.BatchNorm1d(units), nn.Dropout(p)]
            width = units
        self.body = nn.Sequential(*blocks)
        self.head = nn.Linear(width, 1)
        self.y_low, self.y_high = y_range

    def forward(self, cats: torch.Tensor, conts: torch.Tensor) -> torch.Tensor:
        x = torch.cat([emb(cats[:, i]) for i, emb in enumerate(self.embeds)], dim=1)
        x = self.emb_drop(x)
        if self.bn_cont is not None:
            x = torch.cat([x, self.bn_cont(conts)], dim=1)
        out = self.head(self.body(x)).squeeze(1)
        return torch.sigmoid(out) * (self.y_high - self.y_low) + self.y_low

    def embedding_matrix(self, i: int) -> torch.Tensor:
        return self.embeds[i].weight.detach().cpu()


def build(config: dict) -> EntityEmbeddingNet:
    """The network described by a saved config (``model.json``)."""
    return EntityEmbeddingNet(config["cardinalities"], config["sizes"], config["n_cont"], config["layers"],
                              config["dropouts"], config["emb_drop"], tuple(config["y_range"]))
