"""Fast CPU convolutions through NNPACK, for inference: Winograd for 3x3 kernels, FFT for 7x7 ones.

oneDNN runs a direct 3x3 convolution at about the CPU's peak multiply-add rate (measured 53-56 GMAC/s on
one core of the 2-core development VM, an AMD EPYC with AVX-512), so a network made of 3x3 convolutions
(SAVSR: 95 GMAC per 64x64 output frame, 97 % in 3x3 convolutions) cannot get much faster there by
layout or fusion: it needs fewer multiplications. NNPACK, built into PyTorch's CPU wheels, has them:

* 3x3 kernels: the Winograd transform F(6x6, 3x3), about 5x fewer multiplications. Measured on that VM,
  1 thread, 64x64 pixels: 64 -> 64 channels 3.0 -> 1.5 ms, 192 -> 64 8.7 -> 4.2 ms; 64 -> 256 at 128x128
  48 -> 19 ms.
* 7x7 kernels (SpyNet): an FFT convolution. 32 -> 64 channels at 64x64: 7.1 -> 2.2 ms; a whole SpyNet
  pass (7 frame pairs at 64x64) 171 -> 72 ms, at 192x320 377 -> 105 ms.

Numerics: the transforms change the rounding, not the maths. For one 3x3 convolution of unit-variance
data the largest error against a float64 reference is about 30x that of the direct convolution (5.7e-5
vs 2.1e-6 on 64 channels at 180x320); through a whole network the errors stay at float32 noise (SAVSR
parity fixtures: at most 3.7e-7 from float64, direct 3.9e-7; intermediate features 2e-6 relative). The
7x7 FFT path is as accurate as the direct one (1.0e-6 vs 3.2e-6 on unit-variance data). A batch of more
than one image takes NNPACK's batched 3x3 algorithm, which is as accurate as the direct convolution and
about half as fast as Winograd image by image (120 -> 120 channels at 64x64, 3 images: direct 39 ms,
batched 24 ms, image by image 12.5 ms); it is left as PyTorch runs it.

The output is NCHW whatever the input's layout: a caller holding channels-last tokens should add it to
a channels-last tensor on the left (``shortcut + out``), so that the sum keeps the tokens' layout.

Threads: NNPACK runs on its own thread pool (pthreadpool), beside the OpenMP team of every other CPU op.
After an OpenMP op the team's workers spin for a while, and after an NNPACK call the pool's workers do,
so with more than one thread each pool's workers take the cores the other one needs: on the 2-core VM
with 2 threads, a 64 -> 64 convolution at 64x64 after a ReLU took 2.1 ms instead of 1.5 on one thread,
120 -> 120 5.3 instead of 4.0, and SAVSR ran slower on two threads than on one (1.67 vs 1.12 s/frame).
:func:`nnpack_conv2d` therefore runs NNPACK on the calling thread alone
(:func:`vsrt.archs.layers.threads.one_thread`). oneDNN's
direct convolution does use every thread, so NNPACK is taken only while that pays
(:data:`NNPACK_MAX_THREADS`): one image of a 3x3 convolution or any 7x7 one on up to 2 threads (two
threads, 120 -> 120 at 64x64: Winograd 4.6 ms, direct 7.4-7.9 ms; 7x7 32 -> 64: FFT 1.8, direct 3.5), a
batch of 3x3 images (NNPACK's slower batched algorithm) on one thread only (3 images of 120 -> 120 on
two threads: 24 ms against 18 ms direct). With more threads the direct convolution keeps scaling and
NNPACK on one thread does not: the crossover, estimated from these rates, lies at 3-5 threads.

Memory: NNPACK keeps the transformed input and output, about 10 bytes per pixel and channel (64 -> 64
channels at 720x1280: 1 GiB, direct convolution 0.46 GiB). A convolution that would need more than
:data:`SCRATCH_BUDGET` runs in horizontal bands (each with its halo rows), so the scratch stays bounded
at any frame size, for about the same speed.

:func:`conv2d` (a drop-in for ``F.conv2d``) and :class:`Conv2d` (a drop-in for ``nn.Conv2d``, same
state-dict keys) take this path only when all of these hold, and call ``F.conv2d`` otherwise:

* a plain CPU float32 tensor ``(n, c, h, w)``; a 3x3 kernel with padding 1 or a 7x7 one with padding 3
  (zeros); stride 1, dilation 1, groups 1; at least :data:`MIN_PIXELS` output pixels for that kernel
  (below that the per-call kernel transform costs more than it saves);
* at most :data:`NNPACK_MAX_THREADS` intra-op threads, and one thread for a batch of 3x3 images (see
  "Threads" above);
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

from vsrt.archs.layers.execution import autocast_enabled, capturing_graph
from vsrt.archs.layers.threads import one_thread

MIN_PIXELS = {3: 32 * 32, 7: 8 * 8}
"""Kernel size -> fewest output pixels (h * w) for which NNPACK pays (3x3: break-even about 24x24; 7x7:
faster from 8x8 on)."""

NNPACK_MAX_THREADS = 2
"""Most intra-op threads (``torch.get_num_threads()``) at which NNPACK, run on one of them, is taken over
oneDNN's direct convolution on all of them (measured on 1 and 2 threads; see "Threads" above)."""

SCRATCH_BUDGET = 96 * 2**20
"""Bytes of NNPACK scratch (estimated) above which a convolution runs in horizontal bands."""

SCRATCH_BYTES_PER_PIXEL_CHANNEL = 10
"""Measured peak memory growth of one NNPACK convolution per pixel and (input + output) channel."""


def nnpack_applies(x: torch.Tensor, weight: torch.Tensor, stride=1, padding=0, dilation=1,  # noqa: ANN001
                   groups: int = 1) -> bool:
    """Whether :func:`conv2d` would compute this convolution through NNPACK."""
    if type(x) is not torch.Tensor or capturing_graph():  # a FakeTensor, Proxy or other subclass: the standard op
        return False
    return (x.device.type == "cpu" and x.dtype == torch.float32 and weight.dtype == torch.float32
            and x.dim() == 4 and weight.shape[-1] == weight.shape[-2] in MIN_PIXELS and groups == 1
            and _pair(stride) == (1, 1) and _pair(padding) == (weight.shape[-1] // 2,) * 2
            and _pair(dilation) == (1, 1)
            and x.shape[-2] * x.shape[-1] >= MIN_PIXELS[weight.shape[-1]]
            and _pays_on_this_many_threads(x.shape[0], weight.shape[-1])
            and not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad))
            and not autocast_enabled("cpu")
            # last: _nnpack_available() also initialises NNPACK, without which its convolution fails
            and torch._C._get_nnpack_enabled() and torch._nnpack_available())


def _pays_on_this_many_threads(batch: int, kernel: int) -> bool:
    threads = torch.get_num_threads()
    return threads == 1 or (threads <= NNPACK_MAX_THREADS and (batch == 1 or kernel != 3))


def band_rows(x: torch.Tensor, out_channels: int) -> int:
    """Output rows per NNPACK call: all of them, or as many as keep the scratch within the budget."""
    n, c, h, w = x.shape
    per_row = SCRATCH_BYTES_PER_PIXEL_CHANNEL * n * w * (c + out_channels)
    return max(1, min(h, SCRATCH_BUDGET // per_row))


def nnpack_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """Same-size (``padding = k // 2``) convolution through NNPACK on the calling thread, in horizontal bands
    if large.

    A band of output rows ``[top, bottom)`` is computed from input rows ``[top - halo, bottom + halo)``
    (cut at the frame) with NNPACK's zero padding all round: the rows that padding spoils lie inside
    the halo and are dropped.
    """
    with one_thread():
        return _nnpack_bands(x.contiguous(), weight.contiguous(), bias)


def _nnpack_bands(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    halo = weight.shape[-1] // 2
    h = x.shape[-2]
    rows = band_rows(x, weight.shape[0])
    if rows >= h:
        return torch._nnpack_spatial_convolution(x, weight, bias, [halo, halo], [1, 1])
    out = x.new_empty(x.shape[0], weight.shape[0], h, x.shape[-1])
    for top in range(0, h, rows):
        bottom = min(h, top + rows)
        first = max(0, top - halo)  # first input row of the band
        band = x[:, :, first:min(h, bottom + halo)].contiguous()  # (n, c, rows + halos, w)
        band_out = torch._nnpack_spatial_convolution(band, weight, bias, [halo, halo], [1, 1])
        out[:, :, top:bottom] = band_out[:, :, top - first:bottom - first]
    return out


def conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, stride=1,  # noqa: ANN001
           padding=0, dilation=1, groups: int = 1) -> torch.Tensor:
    """``F.conv2d`` (zero padding), through NNPACK where :func:`nnpack_applies`."""
    if nnpack_applies(x, weight, stride, padding, dilation, groups):
        return nnpack_conv2d(x, weight, bias)
    return F.conv2d(x, weight, bias, stride, padding, dilation, groups)


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` (same arguments and state-dict keys) whose zero-padded forward uses :func:`conv2d`."""

    def _conv_forward(self, input: torch.Tensor, weight: torch.Tensor,  # noqa: A002 - nn.Conv2d's name
                      bias: torch.Tensor | None) -> torch.Tensor:
        if self.padding_mode != "zeros" or isinstance(self.padding, str):
            return super()._conv_forward(input, weight, bias)
        return conv2d(input, weight, bias, self.stride, self.padding, self.dilation, self.groups)
