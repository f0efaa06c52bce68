"""Token-sparsity loss of MIA-VSR (``SparsityLoss``) and how option files name it.

MIA-VSR ("Video Super-Resolution Transformer with Masked Inter&Intra-Frame
Attention", CVPR 2024, arXiv:2401.06312; official code LabShuHangGU/MIA-VSR,
``losses/sparsity_loss.py`` and ``models/recurrent_mixprecision_model.py``)
predicts in every block which tokens to recompute. Called with
``return_masks=True`` in training, the network returns
``masks[branch][step][block]``: the fraction of tokens kept at that block and
step (a differentiable 0-d tensor; None at the first step of every branch,
where nothing is masked). The official training adds

    1e-4 * sum(all kept fractions) / (branches * (steps - 1) * blocks)

that is 1e-4 times the mean kept fraction of the recurrent steps (the "kept
ratio" r), which pushes every block towards computing fewer tokens.

Differences from the official code:

* the factor is ``loss_weight`` (default 1e-4, the official hard-coded value);
* ``target`` is used. The official class stores a target and never reads it,
  and its model passes ``train.parsity_target`` (misspelt). Here, with a target
  rho the loss is ``loss_weight * max(0, r - rho)``: the official pressure,
  with the official gradient, while more than a fraction rho of the tokens is
  computed, and no pressure below it (computing fewer tokens is never
  penalised; only the pixel loss decides there). ``target=None`` (or 0) is the
  official loss exactly. The target is a kept fraction: 0.7 means "compute 70%
  of the tokens";
* a clip of one frame (no recurrent step) is an error instead of a NaN loss.

Option files (see :func:`build_sparsity_loss`): ``train.sparsity_opt`` is the
loss spec; ``train.sparsity_target`` is either the target (a number or a
one-element list, as in the official Vimeo file's ``parsity_target: [0.7]``,
which the option loader renames) or, as in the official REDS file, a loss spec
``{type: SparsityLoss}``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from vsrt.registry import LOSS_REGISTRY, build_from_registry

# masks[branch][step][block]: kept-token fraction (0-d tensor) or None
TokenMasks = Sequence[Sequence[Sequence[torch.Tensor | None]]]

OFFICIAL_WEIGHT = 1e-4


def kept_token_ratio(masks: TokenMasks) -> torch.Tensor:
    """Mean kept-token fraction of the recurrent steps, with the official normalisation.

    ``sum(non-None entries) / (branches * (steps - 1) * blocks)``, read from the
    shape of ``masks[0]`` (every branch has the same steps and blocks, and only
    the first step of a branch is None). Returns a float32 0-d tensor that
    carries the gradient of the entries.
    """
    if not masks or not masks[0] or not masks[0][0]:
        raise ValueError("kept_token_ratio: expected masks[branch][step][block], got an empty list")
    num_branches, num_steps, num_blocks = len(masks), len(masks[0]), len(masks[0][0])
    if num_steps < 2:
        raise ValueError("kept_token_ratio: token masks need clips of at least 2 frames "
                         f"(got {num_steps} step(s) per branch)")
    kept = [m.float() for branch in masks for step in branch for m in step if m is not None]
    if not kept:
        raise ValueError("kept_token_ratio: every entry of the masks is None (were they made in eval mode?)")
    return torch.stack(kept).sum() / (num_branches * (num_steps - 1) * num_blocks)


@LOSS_REGISTRY.register()
class SparsityLoss(nn.Module):
    """``loss_weight * r`` (official) or ``loss_weight * max(0, r - target)``, r = kept ratio.

    Args:
        loss_weight: multiplier (the official value 1e-4 by default).
        target: kept-token fraction in [0, 1] below which nothing is penalised;
            None for the official loss (see the module docstring).
    """

    def __init__(self, loss_weight: float = OFFICIAL_WEIGHT, target: float | None = None) -> None:
        super().__init__()
        if target is not None and not 0.0 <= float(target) <= 1.0:
            raise ValueError(f"SparsityLoss: target is a kept-token fraction in [0, 1], got {target}")
        self.loss_weight = float(loss_weight)
        self.target = None if target is None else float(target)

    def forward(self, masks: TokenMasks) -> torch.Tensor:
        """``masks[branch][step][block]`` (see :func:`kept_token_ratio`) -> 0-d loss."""
        ratio = kept_token_ratio(masks)
        if self.target is None:
            return self.loss_weight * ratio
        return self.loss_weight * torch.clamp(ratio - self.target, min=0.0)

    def extra_repr(self) -> str:
        return f"loss_weight={self.loss_weight}, target={self.target}"


def _as_target(value: Any, where: str) -> float:
    """A number, or a one-element list of one (``parsity_target: [0.7]``)."""
    if isinstance(value, (list, tuple)):
        if len(value) != 1:
            raise ValueError(f"{where}: expected one kept-token fraction, got {list(value)}")
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{where}: expected a kept-token fraction (a number), got {value!r}")
    return float(value)


def build_sparsity_loss(train_opt: Mapping[str, Any], source: str = "options") -> nn.Module:
    """The token-sparsity criterion of a ``train`` option block.

    * ``sparsity_opt: {type: SparsityLoss, loss_weight: 1e-4, target: 0.5}``: the loss;
    * ``sparsity_target: 0.5`` (or ``[0.5]``): the target; it fills the spec's
      ``target`` (giving both, with different values, is an error);
    * ``sparsity_target: {type: SparsityLoss, ...}`` (official REDS files): the
      loss spec under the other key, read like ``sparsity_opt``;
    * none of these: ``SparsityLoss()``, the official loss (the official model
      builds it whatever the options say).
    """
    spec = train_opt.get("sparsity_opt")
    target = train_opt.get("sparsity_target")
    if isinstance(target, Mapping):
        if spec is not None:
            raise ValueError(f"{source}: train.sparsity_target is a loss spec and train.sparsity_opt is "
                             "given too; keep one of them")
        spec, target = target, None
    spec = dict(spec or {"type": "SparsityLoss"})
    spec.setdefault("type", "SparsityLoss")
    if target is not None:
        target = _as_target(target, f"{source}: train.sparsity_target")
        if spec.get("target") is not None and _as_target(spec["target"], "sparsity_opt.target") != target:
            raise ValueError(f"{source}: train.sparsity_target ({target}) differs from "
                             f"train.sparsity_opt.target ({spec['target']})")
        spec["target"] = target
    elif spec.get("target") is not None:
        spec["target"] = _as_target(spec["target"], f"{source}: train.sparsity_opt.target")
    try:
        return build_from_registry(LOSS_REGISTRY, spec, "train.sparsity_opt")
    except KeyError as err:  # unknown type, e.g. the official Vimeo file's SparsityCriterion
        raise KeyError(f"{source}: train.sparsity_opt: {err.args[0]}") from None
    except TypeError as err:
        raise TypeError(f"{source}: train.sparsity_opt: {err}") from err
