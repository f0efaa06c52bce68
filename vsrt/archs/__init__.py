"""Network architectures.

Every ``*_arch.py`` module below this package registers its networks into
:data:`vsrt.registry.ARCH_REGISTRY` when this package is imported. Architectures
import only torch, torchvision, einops and ``vsrt.archs.*``.
"""

from __future__ import annotations

import copy
import difflib
import inspect
import sys
from typing import Any

from torch import nn

from vsrt.archs.flow.warp import flow_warp
from vsrt.registry import ARCH_REGISTRY, import_modules, registered_attributes

__all__ = ["ARCH_REGISTRY", "build_network", "check_network_options", "flow_warp"]

import_modules(sys.modules[__name__], "_arch")

__getattr__, __dir__ = registered_attributes(ARCH_REGISTRY, sys.modules[__name__])


def check_network_options(cls: type, kwargs: dict[str, Any], where: str = "network_g") -> None:
    """Raise a clear error when ``kwargs`` holds a key ``cls.__init__`` does not take."""
    params = inspect.signature(cls.__init__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    accepted = [n for n in params if n != "self"]
    for key in kwargs:
        if key not in accepted:
            close = difflib.get_close_matches(key, accepted, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise TypeError(
                f"{where}: '{key}' is not an argument of {cls.__name__}.{hint} "
                f"Accepted: {', '.join(accepted)}.")


def build_network(opt: dict[str, Any], where: str = "network_g") -> nn.Module:
    """Build ``ARCH_REGISTRY[opt['type']](**rest)`` after checking the keys."""
    opt = copy.deepcopy(dict(opt))
    if "type" not in opt:
        raise KeyError(f"{where} needs a 'type' key (one of {', '.join(ARCH_REGISTRY.keys())})")
    cls = ARCH_REGISTRY.get(opt.pop("type"))
    check_network_options(cls, opt, where)
    return cls(**opt)
