"""Upscaling factors shared by the entry points: parse ``--scale``, name a scale, check a network takes it.

A network supports arbitrary (also asymmetric, non-integer) scales when its class sets
``arbitrary_scale = True`` (SAVSR); it then takes ``forward(x, scale=(s_h, s_w))``. Any other network
is fixed-scale and exposes its integer factor as ``upscale`` (VRT: an instance attribute, 1 for
deblurring / denoising) or ``scale`` (BasicVSR, PSRT, MIA-VSR: a class attribute).

A target size (``--target-size H,W``) is the other way to ask for a scale: an arbitrary-scale network
gets ``(H / h, W / w)`` for ``h x w`` input frames, checked against its output-size rule
(:func:`scaled_size`); a fixed-scale network accepts only ``(h * s, w * s)``.
"""

from __future__ import annotations

import math
import numbers
import re
from typing import Any

ScalePair = tuple[float, float]
Size = tuple[int, int]

__all__ = ["ScalePair", "Size", "as_scale_pair", "check_scale_supported", "check_target_size", "fixed_scale",
           "is_arbitrary_scale", "parse_scale", "parse_size", "scale_for_size", "scale_tag", "scaled_size",
           "size_tag"]


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


def parse_size(text: str) -> Size:
    """Command-line frame size (height first): ``'100,141'`` or ``'100x141'`` -> ``(100, 141)``."""
    match = re.fullmatch(r"\s*([0-9]+)\s*[,xX]\s*([0-9]+)\s*", str(text))
    if match is None:
        raise ValueError(f"--target-size '{text}': expected H,W or HxW (height first), e.g. 100,141 or 100x141")
    height, width = int(match[1]), int(match[2])
    if height < 1 or width < 1:
        raise ValueError(f"--target-size '{text}': height and width must be positive")
    return height, width


def size_tag(size: Size) -> str:
    return f"{size[0]}x{size[1]}"


def scaled_size(height: int, width: int, scale: Any) -> Size:
    """Output size of an arbitrary-scale network: ``(round(h * s_h), round(w * s_w))``.

    Python's ``round`` (halves to even), the rule of SAVSR (``vsrt.archs.savsr.scale.sr_size``).
    """
    scale_h, scale_w = as_scale_pair(scale)
    return round(height * scale_h), round(width * scale_w)


def _axis_scale(length: int, target: int) -> float:
    """A factor ``s`` with ``round(length * s) == target`` (``target / length`` unless float rounding
    moves the product across a rounding boundary; then the nearest float on the right side)."""
    scale = target / length
    for _ in range(64):
        got = round(length * scale)
        if got == target:
            return scale
        scale = math.nextafter(scale, math.inf if got < target else 0.0)
    raise ValueError(f"no scale maps {length} pixels to exactly {target}")  # unreachable for sane sizes


def scale_for_size(size: Size, target: Size) -> ScalePair:
    """The per-axis scale that takes ``size`` frames to exactly ``target`` under :func:`scaled_size`."""
    pair = (_axis_scale(size[0], target[0]), _axis_scale(size[1], target[1]))
    assert scaled_size(*size, pair) == tuple(target)
    return pair


def check_target_size(net: Any, size: Size, target: Size) -> ScalePair:
    """The scale at which ``net`` turns ``size`` frames into ``target`` frames, else a ValueError naming
    both sizes (a fixed-scale network can only produce ``size * factor``)."""
    size, target = (int(size[0]), int(size[1])), (int(target[0]), int(target[1]))
    if is_arbitrary_scale(net):
        return scale_for_size(size, target)
    name = net.__name__ if isinstance(net, type) else type(net).__name__
    factor = fixed_scale(net)
    if factor is None:
        raise ValueError(f"{name} does not declare its upscaling factor (no 'upscale' or 'scale' attribute) "
                         f"and is not an arbitrary-scale network, so target size {size_tag(target)} "
                         "cannot be checked")
    native = (round(size[0] * factor), round(size[1] * factor))
    if native != target:
        raise ValueError(f"{name} is a fixed x{factor:g} network: it turns {size_tag(size)} input frames into "
                         f"{size_tag(native)}, not the requested target size {size_tag(target)}. "
                         f"Use --target-size {size_tag(native)} (or leave it out), or an arbitrary-scale "
                         "network such as SAVSR")
    return float(factor), float(factor)
