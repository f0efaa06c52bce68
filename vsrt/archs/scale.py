"""Upscaling factors shared by the entry points: parse ``--scale``, name a scale, check a network takes it.

A network supports arbitrary (also asymmetric, non-integer) scales when its class sets
``arbitrary_scale = True`` (SAVSR); it then takes ``forward(x, scale=(s_h, s_w))``. Any other network
is fixed-scale and exposes its integer factor as ``upscale`` (VRT: an instance attribute, 1 for
deblurring / denoising) or ``scale`` (BasicVSR, PSRT, MIA-VSR: a class attribute).
"""

from __future__ import annotations

import numbers
from typing import Any

ScalePair = tuple[float, float]

__all__ = ["ScalePair", "as_scale_pair", "check_scale_supported", "fixed_scale", "is_arbitrary_scale",
           "parse_scale", "scale_tag"]


def as_scale_pair(scale: Any) -> ScalePair:
    """``s`` or ``(s_h, s_w)`` (numbers, a list or a tuple) -> ``(s_h, s_w)`` positive floats."""
    if isinstance(scale, numbers.Real) and not isinstance(scale, bool):
        pair = (scale, scale)
    elif isinstance(scale, (tuple, list)) and len(scale) == 2:
        pair = tuple(scale)
    else:
        raise ValueError(f"a scale is a number or a pair (s_h, s_w), got {scale!r}")
    if not all(isinstance(s, numbers.Real) and not isinstance(s, bool) and s > 0 for s in pair):
        raise ValueError(f"scale factors must be positive numbers, got {scale!r}")
    return float(pair[0]), float(pair[1])


def parse_scale(text: str) -> ScalePair:
    """Command-line scale: ``'2.5'`` -> ``(2.5, 2.5)``; ``'1.5,3.8'`` (height, width) -> ``(1.5, 3.8)``.

    An ``x`` before a factor is allowed (``'x4'``, ``'x1.5,x3.8'``).
    """
    parts = [part.strip().lstrip("xX") for part in str(text).split(",")]
    if len(parts) not in (1, 2) or not all(parts):
        raise ValueError(f"--scale '{text}': expected S or S_H,S_W, e.g. 2.5 or 1.5,3.8")
    try:
        values = [float(part) for part in parts]
    except ValueError:
        raise ValueError(f"--scale '{text}': expected S or S_H,S_W, e.g. 2.5 or 1.5,3.8") from None
    if not all(0 < v < float("inf") for v in values):
        raise ValueError(f"--scale '{text}': scale factors must be positive and finite")
    return (values[0], values[-1])


def scale_tag(scale: Any) -> str:
    """Short name of a scale for metric keys and folders: ``'x2.0'``, ``'x1.5_x3.8'``."""
    scale_h, scale_w = as_scale_pair(scale)
    return f"x{scale_h}" if scale_h == scale_w else f"x{scale_h}_x{scale_w}"


def is_arbitrary_scale(net: Any) -> bool:
    """Whether ``net`` (a network or its class) takes any scale at run time."""
    cls = net if isinstance(net, type) else type(net)
    return bool(getattr(cls, "arbitrary_scale", False))


def fixed_scale(net: Any) -> int | float | None:
    """The factor of a fixed-scale network: ``net.upscale``, else ``net.scale``; None if it has neither."""
    for name in ("upscale", "scale"):
        value = getattr(net, name, None)
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            return value
    return None


def check_scale_supported(net: Any, scale: Any) -> ScalePair:
    """Return ``scale`` as ``(s_h, s_w)`` if ``net`` can produce it, else raise a ValueError saying why.

    ``net`` is a network instance (or its class: then only class attributes are seen).
    """
    pair = as_scale_pair(scale)
    if is_arbitrary_scale(net):
        return pair
    name = net.__name__ if isinstance(net, type) else type(net).__name__
    factor = fixed_scale(net)
    if factor is None:
        raise ValueError(f"{name} does not declare its upscaling factor (no 'upscale' or 'scale' attribute) "
                         f"and is not an arbitrary-scale network, so scale {scale_tag(pair)} cannot be checked")
    if pair != (float(factor), float(factor)):
        raise ValueError(f"{name} is a fixed x{factor:g} network: it cannot upscale by {scale_tag(pair)}. "
                         f"Use scale {factor:g} (or leave --scale out), or an arbitrary-scale network "
                         "such as SAVSR")
    return pair
