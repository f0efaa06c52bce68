"""Training losses, built from a ``{type: ..., **kwargs}`` option block.

Every ``*_loss.py`` module in this package registers its classes into
:data:`vsrt.registry.LOSS_REGISTRY` when the package is imported.
"""

from __future__ import annotations

import copy
import sys
from typing import Any

from torch import nn

from vsrt.registry import LOSS_REGISTRY, build_from_registry, import_modules, registered_attributes

__all__ = ["LOSS_REGISTRY", "build_loss"]

import_modules(sys.modules[__name__], "_loss")
__getattr__, __dir__ = registered_attributes(LOSS_REGISTRY, sys.modules[__name__])  # from vsrt.losses import L1Loss


def build_loss(opt: dict[str, Any]) -> nn.Module:
    """``LOSS_REGISTRY[opt['type']](**rest)``, e.g. ``{'type': 'L1Loss', 'loss_weight': 1.0}``."""
    return build_from_registry(LOSS_REGISTRY, copy.deepcopy(dict(opt)), "loss")
