"""3x3 convolutions with Winograd's minimal filtering on the CPU (NNPACK), for inference.

oneDNN runs a direct 3x3 convolution at about the CPU's peak multiply-add rate (measured 53-56 GMAC/s on
one core of the 2-core development VM, an AMD EPYC with AVX-512), so a network made of 3x3 convolutions
(SAVSR: 95 GMAC per 64x64 output frame, 97 % in 3x3 convolutions) cannot get much faster there by
layout or fusion: it needs fewer multiplications. NNPACK, built into PyTorch's CPU wheels, computes a
3x3 convolution with the Winograd transform F(6x6, 3x3) (about 5x fewer multiplications). Measured on
that VM, 1 thread, 64x64 pixels: 64 -> 64 channels 3.0 -> 1.5 ms, 192 -> 64 8.7 -> 4.2 ms.

Numerics: the transform changes the rounding, not the maths. For one convolution of unit-variance data
the largest error against a float64 reference is about 30x that of the direct convolution (5.7e-5 vs
2.1e-6 on 64 channels at 180x320); through a whole network the errors stay at float32 noise (SAVSR
parity fixtures: at most 3.7e-7 from float64, direct 3.9e-7; intermediate features 2e-6 relative).

:func:`conv2d` (a drop-in for ``F.conv2d``) and :class:`Conv2d` (a drop-in for ``nn.Conv2d``, same
state-dict keys) take this path only when all of these hold, and call ``F.conv2d`` otherwise:

* a plain CPU float32 tensor ``(n, c, h, w)``, a 3x3 kernel, stride 1, dilation 1, groups 1, padding 1
  (zeros), at least :data:`MIN_PIXELS` output pixels (below that the per-call kernel transform costs
  more than it saves);
* no autograd graph is recorded (training keeps the direct convolution and its backward) and no autocast
  is active (autocast's bf16 / fp16 convolution is kept);
* not tracing, compiling or exporting, and no dispatch mode active (graphs keep ``aten.convolution``,
  and ``torch.utils.flop_counter`` counts it);
* PyTorch's NNPACK switch is on: ``with torch.backends.nnpack.flags(enabled=False):`` turns it off.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.utils import _pair
from torch.utils._python_dispatch import _get_current_dispatch_mode

MIN_PIXELS = 32 * 32
"""Fewest output pixels (h * w) for which the Winograd path pays (measured break-even about 24x24)."""


def capturing_graph() -> bool:
    """Whether the call is traced, compiled, exported or seen by a dispatch mode (keep the standard ops)."""
    exporting = getattr(torch.compiler, "is_exporting", None)  # torch >= 2.5
    return (torch.jit.is_tracing() or torch.compiler.is_compiling() or (exporting is not None and exporting())
            or _get_current_dispatch_mode() is not None)  # e.g. FlopCounterMode, FakeTensorMode


def _cpu_autocast() -> bool:
    try:
        return torch.is_autocast_enabled("cpu")
    except TypeError:  # torch < 2.4: no device argument
        return torch.is_autocast_cpu_enabled()


def winograd_applies(x: torch.Tensor, weight: torch.Tensor, stride=1, padding=0, dilation=1,  # noqa: ANN001
                     groups: int = 1) -> bool:
    """Whether :func:`conv2d` would compute this convolution with the Winograd transform."""
    if type(x) is not torch.Tensor or capturing_graph():  # a FakeTensor, Proxy or other subclass: the standard op
        return False
    return (x.device.type == "cpu" and x.dtype == torch.float32 and weight.dtype == torch.float32
            and x.dim() == 4 and weight.shape[-2:] == (3, 3) and groups == 1
            and _pair(stride) == (1, 1) and _pair(padding) == (1, 1) and _pair(dilation) == (1, 1)
            and x.shape[-2] * x.shape[-1] >= MIN_PIXELS
            and not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad))
            and not _cpu_autocast()
            # last: _nnpack_available() also initialises NNPACK, without which its convolution fails
            and torch._C._get_nnpack_enabled() and torch._nnpack_available())


def conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, stride=1,  # noqa: ANN001
           padding=0, dilation=1, groups: int = 1) -> torch.Tensor:
    """``F.conv2d`` (zero padding), through the Winograd transform where :func:`winograd_applies`."""
    if winograd_applies(x, weight, stride, padding, dilation, groups):
        return torch._nnpack_spatial_convolution(x.contiguous(), weight.contiguous(), bias, [1, 1], [1, 1])
    return F.conv2d(x, weight, bias, stride, padding, dilation, groups)


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` (same arguments and state-dict keys) whose zero-padded forward uses :func:`conv2d`."""

    def _conv_forward(self, input: torch.Tensor, weight: torch.Tensor,  # noqa: A002 - nn.Conv2d's name
                      bias: torch.Tensor | None) -> torch.Tensor:
        if self.padding_mode != "zeros" or isinstance(self.padding, str):
            return super()._conv_forward(input, weight, bias)
        return conv2d(input, weight, bias, self.stride, self.padding, self.dilation, self.groups)
