"""How a model runs on its device: torch.compile, TF32, cuDNN autotuning, fused optimizers.

Top-level options (all optional; the defaults are what a GPU user wants)::

    compile: false          # or true, or {backend, mode, dynamic, fullgraph} (vsrt.utils.compile)
    tf32: true              # fp32 matmuls / convolutions on CUDA tensor cores (TF32); false: full fp32
    cudnn_benchmark: true   # let cuDNN time its convolution algorithms for each new input shape

They are process-wide settings of ``torch.backends`` that only matter on CUDA; on the CPU nothing
changes. TF32 keeps fp32's range with a 10-bit mantissa (as fp16): outputs move by about 1e-3
relative, so parity checks against fp32 references turn it off (``tf32: false``, ``--no-tf32``).
Channels-last memory format is not used: the transformer blocks already hold their tokens channels
last, the convolutions are a small part of the work of every vsrt network but BasicVSR, and the
recurrent code's views would need copies (not measured on a GPU yet).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch

from vsrt.utils.compile import CompileSettings, parse_compile_option


@dataclass(frozen=True)
class RuntimeSettings:
    compile: CompileSettings | None = None
    tf32: bool = True
    cudnn_benchmark: bool = True


def runtime_settings(opt: dict[str, Any]) -> RuntimeSettings:
    """The ``compile``, ``tf32`` and ``cudnn_benchmark`` options, each error naming the key and file."""
    source = opt.get("opt_path", "<options>")
    flags = {}
    for key in ("tf32", "cudnn_benchmark"):
        value = opt.get(key, True)
        if not isinstance(value, bool):
            raise ValueError(f"{source}: {key} must be true or false, got {value!r}")
        flags[key] = value
    return RuntimeSettings(parse_compile_option(opt.get("compile"), f"{source}: compile"), **flags)


def set_tf32(enabled: bool) -> None:
    """TF32 for fp32 matmuls and cuDNN convolutions on CUDA (process-wide; no effect on the CPU)."""
    matmul = torch.backends.cuda.matmul
    if hasattr(matmul, "fp32_precision"):  # torch >= 2.9
        matmul.fp32_precision = "tf32" if enabled else "ieee"
        torch.backends.cudnn.conv.fp32_precision = "tf32" if enabled else "ieee"
    else:
        matmul.allow_tf32 = enabled
        torch.backends.cudnn.allow_tf32 = enabled


def apply_backend_settings(settings: RuntimeSettings, device: torch.device) -> None:
    """Set TF32 and ``cudnn.benchmark`` for a CUDA ``device`` (nothing to do on the CPU)."""
    if device.type != "cuda":
        return
    set_tf32(settings.tf32)
    torch.backends.cudnn.benchmark = settings.cudnn_benchmark


def can_fuse(optimizer_cls: type, params: Iterable[torch.Tensor]) -> bool:
    """Whether ``optimizer_cls(..., fused=True)`` applies: it takes ``fused`` and every parameter is a
    floating-point CUDA tensor (the fused kernels exist for CUDA only)."""
    if "fused" not in inspect.signature(optimizer_cls.__init__).parameters:
        return False
    params = list(params)
    return bool(params) and all(p.is_cuda and p.is_floating_point() for p in params)
