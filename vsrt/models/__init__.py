"""Training/testing models: a network plus its optimiser, schedule, precision and metrics.

Every ``*_model.py`` below this package registers into
:data:`vsrt.registry.MODEL_REGISTRY`; ``build_model(opt)`` picks ``opt['model_type']``.
"""

from __future__ import annotations

import sys
from typing import Any

from vsrt.registry import MODEL_REGISTRY, import_modules

__all__ = ["MODEL_REGISTRY", "build_model"]

import_modules(sys.modules[__name__], "_model")


def build_model(opt: dict[str, Any]) -> Any:
    return MODEL_REGISTRY.get(opt["model_type"])(opt)
