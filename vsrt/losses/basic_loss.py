"""Pixel losses with BasicSR's semantics (``pixel_opt: {type: CharbonnierLoss, ...}``).

Every loss takes ``loss_weight`` (a multiplier) and ``reduction``
(``'none' | 'mean' | 'sum'``), and its forward takes ``(pred, target,
weight=None)`` of any shape, e.g. video batches ``(n, t, c, h, w)``, where
``mean`` averages over all elements.

An optional element-wise ``weight`` multiplies the loss before reduction.
With ``reduction='mean'`` the weighted sum is divided by the total weight
broadcast to the loss's shape: ``sum(weight)`` for a full-size weight,
``sum(weight) * c`` for a one-channel ``(n, 1, h, w)`` weight, as in BasicSR.

Differences from BasicSR: the weight may be any shape that broadcasts to the
loss (BasicSR asserts the same number of dimensions and reads the channel
count from dim 1, which is the time axis for video tensors); ``forward`` takes
no extra keywords.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vsrt.registry import LOSS_REGISTRY

REDUCTIONS = ("none", "mean", "sum")


def reduce_weighted(loss: torch.Tensor, weight: torch.Tensor | None, reduction: str) -> torch.Tensor:
    """Apply an element-wise ``weight`` (optional) to ``loss`` and reduce it."""
    if weight is not None:
        if torch.broadcast_shapes(weight.shape, loss.shape) != loss.shape:
            raise ValueError(f"loss weight of shape {tuple(weight.shape)} does not broadcast to "
                             f"the loss shape {tuple(loss.shape)}")
        loss = loss * weight
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if weight is None:
        return loss.mean()
    # mean over the weighted region: every weight element stands for loss.numel() / weight.numel() losses
    return loss.sum() / (weight.sum() * (loss.numel() // weight.numel()))


class _PixelLoss(nn.Module):
    """``loss_weight * reduce(elementwise(pred, target) * weight)``."""

    def __init__(self, loss_weight: float = 1.0, reduction: str = "mean") -> None:
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(f"{type(self).__name__}: unsupported reduction '{reduction}'; "
                             f"use one of {', '.join(REDUCTIONS)}")
        self.loss_weight = loss_weight
        self.reduction = reduction

    def elementwise(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, pred: torch.Tensor, target: torch.Tensor,
                weight: torch.Tensor | None = None) -> torch.Tensor:
        """``pred``, ``target``: same shape, e.g. ``(n, t, c, h, w)``; ``weight``: broadcastable."""
        loss = self.elementwise(pred, target)
        return self.loss_weight * reduce_weighted(loss, weight, self.reduction)

    def extra_repr(self) -> str:
        return f"loss_weight={self.loss_weight}, reduction='{self.reduction}'"


@LOSS_REGISTRY.register()
class L1Loss(_PixelLoss):
    """Mean absolute error ``|pred - target|``."""

    def elementwise(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.l1_loss(pred, target, reduction="none")


@LOSS_REGISTRY.register()
class MSELoss(_PixelLoss):
    """Mean squared error ``(pred - target)^2``."""

    def elementwise(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(pred, target, reduction="none")


@LOSS_REGISTRY.register()
class CharbonnierLoss(_PixelLoss):
    """Charbonnier loss ``sqrt((pred - target)^2 + eps)``, a smooth L1.

    From "Deep Laplacian Pyramid Networks for Fast and Accurate
    Super-Resolution" (Lai et al., CVPR 2017). ``eps`` is added under the
    square root, so the loss of identical inputs is ``sqrt(eps)``, not 0.
    """

    def __init__(self, loss_weight: float = 1.0, reduction: str = "mean", eps: float = 1e-12) -> None:
        super().__init__(loss_weight, reduction)
        self.eps = eps

    def elementwise(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return torch.sqrt((pred - target) ** 2 + self.eps)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, eps={self.eps}"
