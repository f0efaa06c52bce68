"""Transformer feed-forward block and stochastic depth."""

from __future__ import annotations

import torch
from torch import nn

from vsrt.archs.layers.linear import linear


class Mlp(nn.Module):
    """``fc2(act(fc1(x)))`` (keys ``fc1``, ``fc2`` as in timm / Swin checkpoints)."""

    def __init__(self, in_features: int, hidden_features: int | None = None,
                 out_features: int | None = None) -> None:
        super().__init__()
        hidden_features = hidden_features or in_features
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_features, out_features or in_features)

    def forward(self, x: torch.Tensor, ragged_rows: bool = False) -> torch.Tensor:
        """``ragged_rows``: the row count depends on the data (:func:`vsrt.archs.layers.linear.linear`)."""
        # fc1 and its GELU in one oneDNN call for CPU inference (vsrt.archs.layers.linear)
        hidden = linear(x, self.fc1.weight, self.fc1.bias, gelu=True, ragged_rows=ragged_rows)
        return linear(hidden, self.fc2.weight, self.fc2.bias, ragged_rows=ragged_rows)


def drop_path(x: torch.Tensor, drop_prob: float = 0.0, training: bool = False) -> torch.Tensor:
    """Zero whole samples with probability ``drop_prob`` and rescale the rest (training only)."""
    if drop_prob == 0.0 or not training:
        return x
    keep_prob = 1.0 - drop_prob
    shape = (x.shape[0],) + (1,) * (x.dim() - 1)
    keep = x.new_empty(shape).bernoulli_(keep_prob)
    return x * keep / keep_prob


class DropPath(nn.Module):
    """Stochastic depth on the residual branch; identity in eval."""

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        self.drop_prob = drop_prob
        # the rate as a tensor for torch.compile: a Python float is a graph constant, so every
        # block's rate would compile its own graph (36 in the official 6x6 transformers)
        self.register_buffer("keep_prob", torch.tensor(1.0 - drop_prob), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:  # tested first: in eval the rate is not read (no graph guard on it)
            return x
        if torch.compiler.is_compiling():  # same distribution; compiled random streams differ from eager anyway
            keep_prob = self.keep_prob.to(x.dtype)
            keep = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep_prob)
            return x * keep / keep_prob
        return drop_path(x, self.drop_prob, self.training)

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}"
