"""What running a network needs to know about it: frame protocol, scale and size constraints.

Used by validation (:mod:`vsrt.models`) and inference (:mod:`vsrt.inference`) alike, so it lives
below both; it imports only torch and ``vsrt.archs``.

Three frame protocols cover the registered families:

* ``recurrent`` (BasicVSR, PSRT-recurrent, MIA-VSR, IIA-VSR): ``t`` frames in, ``t`` out; the
  official scripts feed each clip whole.
* ``window`` (VRT): ``t`` in, ``t`` out, but the time axis is cut into chunks (``--tile`` of
  ``main_test_vrt.py``) and padded to a multiple of the temporal window; Vimeo-90K-T septuplets are
  padded to 8 frames by repeating the last one.
* ``sliding`` (SAVSR): ``num_frame`` frames in, the centre frame out; every output frame gets its
  own window, reflected at the clip ends (BasicSR ``generate_frame_indices(..., 'reflection')``).
* ``interpolation`` (VRT with ``pa_frames=0``, task 009): exactly ``num_frame`` (4) frames in, the
  frame between the two middle ones out (Vimeo-90K-T: im1, im3, im5, im7 -> im4).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

from torch import nn

from vsrt.archs.scale import (
    check_scale_supported,
    fixed_scale,
    is_arbitrary_scale,
    parse_scale,
)

Scale = float | tuple[float, float]


@dataclass(frozen=True)
class ModelSpec:
    """Inference facts about one network configuration."""

    arch: str
    kind: str  # 'recurrent' | 'window' | 'sliding' | 'interpolation'
    scale: int  # native integer scale (1 for restoration); ignored when arbitrary_scale
    size_multiple: tuple[int, int, int] = (1, 1, 1)  # (t, h, w) an axis processed whole is padded to
    num_frame: int = 0  # input frames of a sliding-window or interpolation network
    arbitrary_scale: bool = False
    nonblind_denoising: bool = False
    vimeo_num_frames: int = 7  # frames of a Vimeo-90K-T septuplet after the official padding
    min_frames: int = 1


def describe_network(network_g: dict[str, Any], net: nn.Module | None = None) -> ModelSpec:
    """The :class:`ModelSpec` of a ``network_g`` option dict (and the built network, if any)."""
    arch = network_g["type"]
    if arch == "VRT":
        frames, height, width = (int(v) for v in network_g.get("window_size", (6, 8, 8)))
        if int(network_g.get("pa_frames", 2)) == 0:  # the frame-interpolation head
            return ModelSpec(arch, "interpolation", 1, size_multiple=(frames, height, width),
                             num_frame=int(network_g.get("img_size", (6, 64, 64))[0]))
        return ModelSpec(arch, "window", int(network_g.get("upscale", 4)), size_multiple=(frames, height, width),
                         nonblind_denoising=bool(network_g.get("nonblind_denoising", False)),
                         vimeo_num_frames=8)
    if arch == "SAVSR":
        return ModelSpec(arch, "sliding", 4, num_frame=int(network_g.get("num_frame", 7)), arbitrary_scale=True)
    scale = fixed_scale(net) if net is not None else None
    return ModelSpec(arch, "recurrent", int(scale or network_g.get("upscale", 4)),
                     arbitrary_scale=net is not None and is_arbitrary_scale(net),
                     min_frames=2 if arch == "BasicVSR" else 1)


def forward_takes_scale(net: nn.Module) -> bool:
    """Whether ``net.forward`` accepts a ``scale`` argument (arbitrary-scale networks)."""
    return "scale" in inspect.signature(net.forward).parameters


def resolve_scale(net: nn.Module, spec: ModelSpec, text: str | None) -> Scale:
    """The scale to run ``net`` at, from a ``--scale`` string (None: the network's native scale).

    Fixed-scale networks return their integer factor (a different ``--scale`` is a clear error);
    arbitrary-scale networks return ``(s_h, s_w)``, by default ``(4, 4)``.
    """
    if text is None:
        return (float(spec.scale), float(spec.scale)) if spec.arbitrary_scale else spec.scale
    pair = check_scale_supported(net, parse_scale(text))
    return pair if spec.arbitrary_scale else spec.scale


def integer_scale(scale: Scale) -> int | None:
    """``scale`` as an int when it is one integer factor for both axes, else None."""
    pair = scale if isinstance(scale, tuple) else (scale, scale)
    return int(pair[0]) if pair[0] == pair[1] and float(pair[0]).is_integer() else None
