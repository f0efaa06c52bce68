"""Training/testing models: a network plus its optimiser, schedule, precision and metrics.

Every ``*_model.py`` below this package registers into
:data:`vsrt.registry.MODEL_REGISTRY`; ``build_model(opt)`` picks ``opt['model_type']``.
"""

from __future__ import annotations

import sys
from typing import Any

from vsrt.registry import MODEL_REGISTRY, import_modules, registered_attributes

__all__ = ["MODEL_REGISTRY", "build_model"]

import_modules(sys.modules[__name__], "_model")
__getattr__, __dir__ = registered_attributes(MODEL_REGISTRY, sys.modules[__name__])  # vsrt.models.VideoRecurrentModel


def build_model(opt: dict[str, Any]) -> Any:
    return MODEL_REGISTRY.get(opt["model_type"])(opt)
