"""Linear layers through oneDNN's fused CPU kernel for inference.

On the 2-core development VM (AMD EPYC, AVX-512, 1 thread) PyTorch's ``F.linear`` runs on MKL, whose
float32 matrix products there are about 10 % slower than oneDNN's for the token-by-channel shapes of the
window transformers (3072 x 120 -> 240: 1.89 vs 1.65 ms); oneDNN also applies GELU inside the product,
which saves one pass over the MLP's hidden features. :func:`linear` is ``F.linear`` (plus the activation)
and takes oneDNN's ``mkldnn._linear_pointwise`` only when all of these hold:

* CPU float32 input and weight, a bias, no autocast;
* no autograd graph is recorded (training keeps ``F.linear`` and its backward);
* not tracing, compiling or exporting (graphs keep ``aten.linear``), and no Python dispatch mode such as
  ``FlopCounterMode`` is active (it counts ``aten.linear``'s multiplications);
* oneDNN is built in and enabled (``torch.backends.mkldnn.flags(enabled=False)`` turns the path off);
* the caller did not say ``ragged_rows=True``. oneDNN builds (JIT-compiles) a kernel for every new row
  count and keeps a bounded cache of them: where the row count depends on the data (MIA-VSR's kept
  tokens) nearly every call builds one, and a 800 x 120 -> 120 product takes 0.7-0.8 ms instead of
  0.25 ms. MKL has no such cost, so those calls take ``F.linear`` (whole MIA-VSR forward on the VM:
  about 3 % faster, median of 6 alternated rounds).

Numerics: the same products summed in another order (float32 rounding, e.g. 2.7e-7 on IIA-VSR's
output); GELU is the exact (erf) one in both paths.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vsrt.archs.layers.execution import autocast_enabled, capturing_graph


def onednn_linear_applies(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> bool:
    """Whether :func:`linear` would use oneDNN's fused kernel for these arguments."""
    if type(x) is not torch.Tensor or capturing_graph():  # FakeTensor, Proxy or another subclass: the standard op
        return False
    return (bias is not None and x.device.type == "cpu" and x.dtype == weight.dtype == bias.dtype == torch.float32
            and x.dim() >= 2
            and not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad or bias.requires_grad))
            and not autocast_enabled("cpu")
            and torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled)


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, gelu: bool = False,
           ragged_rows: bool = False) -> torch.Tensor:
    """``F.linear(x, weight, bias)``, followed by the exact GELU if ``gelu``; ``(..., in) -> (..., out)``.

    ``ragged_rows``: the number of rows depends on the data (see the module docstring)."""
    if not ragged_rows and onednn_linear_applies(x, weight, bias):
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "gelu" if gelu else "none", [],
                                                  "none" if gelu else "")
    out = F.linear(x, weight, bias)
    return F.gelu(out) if gelu else out
