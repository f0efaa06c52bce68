"""Trace a network into a deployable graph: ``torch.export`` first, ONNX from that.

An exported graph has a fixed clip length (the recurrent and temporal loops are unrolled), a fixed
scale (SAVSR's scale-adaptive layers are specialised to one) and a fixed frame size (no architecture
allows a symbolic one: :data:`FIXED_SIZE_REASONS`); larger frames are tiled by the runtime
(:mod:`vsrt.export.runtime`). Every eval forward is traced on its sync-free path
(:func:`vsrt.archs.layers.execution.force_sync_free`): static shapes, MIA-VSR's masks applied with
``torch.where``, so the graph needs no host round trip and gives the eager outputs.

The file carries an :class:`ExportInfo` (JSON: ONNX metadata property / pt2 extra file
``vsrt.json``) with what a runtime needs to feed it: frames, size, scale, the frame protocol.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from vsrt.archs.layers.execution import force_sync_free
from vsrt.archs.spec import ModelSpec

FORMATS = ("onnx", "pt2")
PRECISIONS = ("fp32", "fp16")
METADATA_KEY = "vsrt"  # ONNX metadata property; pt2 extra file "vsrt.json"
FORMAT_VERSION = 1
#: why no architecture's graph holds for other frame sizes (``--dynamic`` is refused with this reason):
#: torch.export can make height and width symbolic only where nothing is computed from them in Python
FIXED_SIZE_REASONS = {
    "spynet": "SpyNet's pyramid sizes and the window padding are computed from the frame size",
    "VRT": "its window partitions, padding and SpyNet's pyramid are computed from the frame size",
    "SAVSR": "its output size round(h * scale) is computed with Python's round, which .onnx and .pt2 files "
             "cannot hold symbolically",
}


@dataclass
class ExportInfo:
    """What an exported file was made from and how to feed it (stored in the file as JSON)."""

    arch: str
    label: str
    spec: dict[str, Any]  # the fields of vsrt.archs.spec.ModelSpec
    frames: int
    channels: int
    size: tuple[int, int]  # (H, W) of the LR frames the graph takes
    scale: tuple[float, float] | None  # the scale SAVSR was specialised to (None: the native scale)
    precision: str = "fp32"
    outputs: list[str] = field(default_factory=lambda: ["output"])
    tolerance: float | None = None  # the export was refused above this max |exported - eager|
    network_g: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str, source: str = "the exported file") -> ExportInfo:
        data = json.loads(text)
        if data.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{source}: export format version {data.get('format_version')} is not "
                             f"{FORMAT_VERSION}; export it again with this vsrt")
        data["size"] = tuple(data["size"])
        data["scale"] = None if data["scale"] is None else tuple(data["scale"])
        return cls(**data)

    def model_spec(self) -> ModelSpec:
        spec = dict(self.spec)
        spec["size_multiple"] = tuple(spec["size_multiple"])
        return ModelSpec(**spec)

    def input_shape(self, height: int | None = None, width: int | None = None) -> tuple[int, ...]:
        return (1, self.frames, self.channels, height or self.size[0], width or self.size[1])

    @property
    def dtype(self) -> torch.dtype:
        return torch.float16 if self.precision == "fp16" else torch.float32


class ExportableNet(nn.Module):
    """``(1, T, C, H, W)`` clip -> the network's output (and MIA-VSR's kept fractions), one graph.

    ``scale``: passed to arbitrary-scale networks (SAVSR), fixing it in the graph.
    ``with_masks``: also return ``kept_fraction`` ``(branches, T - 1, blocks)``: the fraction of
    pixels each masked block computed at each step after the first (MIA-VSR ``return_masks``).
    """

    def __init__(self, net: nn.Module, scale: tuple[float, float] | None = None, with_masks: bool = False) -> None:
        super().__init__()
        self.net, self.scale, self.with_masks = net, scale, with_masks

    def forward(self, lqs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        if self.scale is not None:
            return self.net(lqs, scale=self.scale)
        if not self.with_masks:
            return self.net(lqs)
        out, masks = self.net(lqs, return_masks=True)
        kept = torch.stack([torch.stack([torch.stack(step) for step in branch[1:]]) for branch in masks])
        return out, kept.to(out.dtype)


def exportable(net: nn.Module, spec: ModelSpec, scale: tuple[float, float] | None, frames: int) -> ExportableNet:
    """The wrapper for ``net`` (eval mode): masks out for MIA-VSR clips of 2+ frames."""
    with_masks = bool(getattr(net, "use_mask", False)) and frames >= 2
    if getattr(net, "mask_execution", "auto") == "gather":
        net.mask_execution = "dense"  # same outputs; gathering has data-dependent shapes a graph cannot hold
    return ExportableNet(net, scale if spec.arbitrary_scale else None, with_masks)


def check_input_shape(spec: ModelSpec, arch: str, frames: int, size: tuple[int, int]) -> None:
    """ValueError naming ``--frames`` / ``--size`` when the network cannot take such a clip."""
    if frames < max(spec.min_frames, 1):
        raise ValueError(f"--frames {frames}: {arch} needs at least {spec.min_frames}")
    if spec.kind in ("sliding", "interpolation") and frames != spec.num_frame:
        raise ValueError(f"--frames {frames}: {arch} takes exactly num_frame={spec.num_frame} frames")
    for name, value, multiple in zip(("--frames", "--size H", "--size W"), (frames, *size), spec.size_multiple):
        if value < 1 or value % multiple:
            raise ValueError(f"{name} {value}: {arch} needs a multiple of {multiple} (its window size); "
                             f"pad the clip or pick another size")


def trace(wrapper: ExportableNet, example: torch.Tensor) -> torch.export.ExportedProgram:
    """``torch.export`` of ``wrapper`` on ``example`` (sync-free paths, no gradients)."""
    with force_sync_free(True), torch.no_grad():
        return torch.export.export(wrapper, (example,), strict=False)


def fixed_size_reason(arch: str) -> str:
    return FIXED_SIZE_REASONS.get(arch, FIXED_SIZE_REASONS["spynet"])


def write_pt2(program: torch.export.ExportedProgram, info: ExportInfo, path: str) -> None:
    torch.export.save(program, path, extra_files={f"{METADATA_KEY}.json": info.to_json()})


def write_onnx(program: torch.export.ExportedProgram, info: ExportInfo, path: str, optimize: bool = False) -> None:
    """ONNX through the dynamo-based exporter (needs ``onnx`` and ``onnxscript``)."""
    require("onnx", "onnxscript")
    onnx_program = torch.onnx.export(program, dynamo=True, optimize=optimize, verbose=False,
                                     input_names=["lqs"], output_names=info.outputs)
    onnx_program.model.metadata_props[METADATA_KEY] = info.to_json()
    onnx_program.save(path)


def require(*modules: str) -> None:
    """ImportError naming the missing packages and how to install them."""
    import importlib.util

    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise ImportError(f"ONNX export and the onnxruntime backend need {', '.join(missing)}: "
                          "pip install onnx onnxscript onnxruntime")
