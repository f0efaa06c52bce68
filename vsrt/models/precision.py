"""Mixed precision: which autocast dtype to use and whether a GradScaler is needed."""

from __future__ import annotations

import contextlib
from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch

from vsrt.utils.logger import get_root_logger

PRECISIONS = ("fp32", "fp16", "bf16")


@dataclass(frozen=True)
class Precision:
    name: str  # fp32 | fp16 | bf16
    device_type: str  # cuda | cpu

    @property
    def dtype(self) -> torch.dtype | None:
        return {"fp16": torch.float16, "bf16": torch.bfloat16}.get(self.name)

    @property
    def needs_scaler(self) -> bool:
        # bf16 has fp32's exponent range; only fp16 gradients underflow
        return self.name == "fp16"

    def autocast(self) -> AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=self.dtype)

    def grad_scaler(self) -> torch.amp.GradScaler:
        return torch.amp.GradScaler(self.device_type, enabled=self.needs_scaler)


def resolve_precision(name: str, device: torch.device) -> Precision:
    """Validate ``name`` for ``device``; fp16 needs CUDA and falls back to fp32 on CPU."""
    if name not in PRECISIONS:
        raise ValueError(f"precision '{name}' is not one of {', '.join(PRECISIONS)}")
    if name == "fp16" and device.type != "cuda":
        get_root_logger().warning("precision fp16 needs CUDA (GradScaler); running fp32 on %s. "
                                  "Use 'bf16' for mixed precision on CPU.", device.type)
        name = "fp32"
    return Precision(name, device.type)
