"""Run a loaded network on one clip: device, precision, tiling and the frame protocol.

All tiling / temporal chunking goes through :mod:`vsrt.archs.tiling` (one call site,
:func:`tiled_forward`), which reproduces the official VRT ``test_video`` / ``test_clip``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from vsrt.archs.scale import Size, check_target_size, size_tag
from vsrt.archs.tiling import TileConfig, tiled_inference
from vsrt.data.data_util import generate_frame_indices
from vsrt.inference.spec import ModelSpec, Scale, forward_takes_scale, integer_scale
from vsrt.utils.memory_check import check_fits


def tiled_forward(model_fn: Any, lq: torch.Tensor, scale: int, config: TileConfig) -> torch.Tensor:
    """``(n, t, c, h, w)`` -> ``(n, t', c', h*scale, w*scale)`` float32 on the CPU, tile by tile."""
    return tiled_inference(model_fn, lq, scale, config, output_device="cpu")


def tile_config(spec: ModelSpec, chunk: int = 0, chunk_overlap: int = 0, tile: Sequence[int] | int = 0,
                tile_overlap: Sequence[int] | int = 0) -> TileConfig:
    """A :class:`TileConfig` for ``spec`` (the network's size multiple is added)."""
    return TileConfig(temporal_chunk=chunk, temporal_overlap=chunk_overlap if chunk else 0,
                      tile=tile, tile_overlap=tile_overlap, size_multiple=spec.size_multiple)


def autocast_context(device: torch.device, precision: str) -> Any:
    """Autocast for ``fp16`` / ``bf16`` (fp16 on CPU falls back to fp32 with a warning)."""
    from vsrt.models.precision import resolve_precision

    return resolve_precision(precision, device).autocast() if precision != "fp32" else contextlib.nullcontext()


@dataclass
class ClipRunner:
    """Callable ``(t, c, h, w)`` CPU frames in [0, 1] -> ``(k, c, H, W)`` float32 CPU outputs.

    Args:
        net: the network (in eval mode, already on ``device``).
        spec: its :class:`ModelSpec`.
        device: where the network runs; inputs are moved there tile by tile.
        precision: ``fp32``, ``fp16`` or ``bf16`` (autocast).
        tiles: chunk / tile sizes (:func:`tile_config`); ignored axes are processed whole.
        scale: output scale (arbitrary-scale networks may take a pair).
        noise_sigma: non-blind denoising noise level (0..255) appended as a constant channel.
        target_size: output frame size ``(H, W)`` instead of ``scale``: an arbitrary-scale network
            runs each clip at ``(H / h, W / w)``; a fixed-scale one must produce it at its own scale.
        compile: ``torch.compile`` the network's blocks (:mod:`vsrt.utils.compile`, inductor) first.
        tf32: TF32 matmuls / convolutions on CUDA (:mod:`vsrt.models.runtime`; no effect on the CPU).
    """

    net: torch.nn.Module
    spec: ModelSpec
    device: torch.device
    precision: str = "fp32"
    tiles: TileConfig = field(default_factory=TileConfig)
    scale: Scale = 4
    noise_sigma: float | None = None
    target_size: Size | None = None
    compile: bool = False
    tf32: bool = True

    def __post_init__(self) -> None:
        from vsrt.models.runtime import RuntimeSettings, apply_backend_settings
        from vsrt.utils.compile import CompileSettings, compile_network

        self.takes_scale = forward_takes_scale(self.net) and self.spec.arbitrary_scale
        apply_backend_settings(RuntimeSettings(tf32=self.tf32), self.device)
        if self.compile:
            compile_network(self.net, CompileSettings())
        self.checked_sizes: set[tuple[Any, ...]] = set()  # memory estimates already made (once per size)
        if self.spec.nonblind_denoising and self.noise_sigma is None:
            raise ValueError(f"{self.spec.arch} is a non-blind denoiser: give the noise level (--noise-sigma)")

    def scale_for(self, height: int, width: int) -> Scale:
        """The scale for ``height x width`` input frames: ``scale``, or the one giving ``target_size``
        (a ValueError naming both sizes when a fixed-scale network cannot produce it)."""
        if self.target_size is None:
            return self.scale
        pair = check_target_size(self.net, (height, width), self.target_size)
        return pair if self.spec.arbitrary_scale else self.spec.scale

    @torch.no_grad()
    def model_fn(self, clip: torch.Tensor, scale: Scale | None = None) -> torch.Tensor:
        """One forward pass on ``(n, t, c, h, w)`` (at ``scale``, default ``self.scale``) -> float32
        output (on the network's device)."""
        clip = clip.to(self.device, non_blocking=True)
        if self.spec.nonblind_denoising:
            n, t, _, h, w = clip.shape
            clip = torch.cat([clip, clip.new_full((n, t, 1, h, w), float(self.noise_sigma) / 255.0)], dim=2)
        kwargs = {"scale": self.scale if scale is None else scale} if self.takes_scale else {}
        with autocast_context(self.device, self.precision):
            out = self.net(clip, **kwargs)
        if isinstance(out, (tuple, list)):  # e.g. (output, masks)
            out = out[0]
        return out.float()

    def __call__(self, lq: torch.Tensor, frames: Sequence[int] | None = None) -> torch.Tensor:
        """Outputs of ``frames`` (default: all) of the clip ``lq`` ``(t, c, h, w)``."""
        if frames is None:
            frames = [0] if self.spec.kind == "interpolation" else list(range(lq.shape[0]))
        frames = list(frames)
        scale = self.scale_for(lq.shape[-2], lq.shape[-1])
        self._check_memory(lq, scale, len(frames))
        if self.spec.kind == "sliding":
            out = torch.cat([self._sliding_frame(lq, i, scale) for i in frames], dim=0)
        elif self.spec.kind == "interpolation":
            out = self._interpolate(lq, frames)
        else:
            if lq.shape[0] < self.spec.min_frames:
                raise ValueError(f"{self.spec.arch} needs at least {self.spec.min_frames} frames, "
                                 f"got {lq.shape[0]}")
            factor = self._integer_scale(scale)
            out = tiled_forward(self.model_fn, lq.unsqueeze(0), factor, self.tiles)[0]
            self._check_size(out, lq, factor)
            out = out[frames]
        if self.target_size is not None and tuple(out.shape[-2:]) != tuple(self.target_size):
            raise ValueError(f"{self.spec.arch} returned {size_tag(out.shape[-2:])} frames for "
                             f"{size_tag(lq.shape[-2:])} input at scale {scale}, not the target size "
                             f"{size_tag(self.target_size)}")
        return out

    def _check_memory(self, lq: torch.Tensor, scale: Scale, out_frames: int) -> None:
        """Fail before the first network call of a size whose outputs cannot fit (SAVSR at scale 1000),
        with the estimate (:mod:`vsrt.utils.memory_check`); once per input size."""
        key = (tuple(lq.shape), scale, out_frames)
        if key not in self.checked_sizes:
            check_fits(self.spec, tuple(lq.shape[-2:]), scale, lq.shape[0], out_frames, self.device, self.tiles.tile)
            self.checked_sizes.add(key)

    def _interpolate(self, lq: torch.Tensor, frames: Sequence[int]) -> torch.Tensor:
        """The one new frame ``(1, c, h, w)`` between the middle two of ``num_frame`` input frames."""
        if lq.shape[0] != self.spec.num_frame:
            raise ValueError(f"{self.spec.arch} interpolates between the middle two of exactly "
                             f"{self.spec.num_frame} frames; got {lq.shape[0]}")
        if list(frames) != [0]:
            raise ValueError(f"a frame-interpolation network has one output frame (index 0), not {list(frames)}")
        spatial = TileConfig(tile=self.tiles.tile, tile_overlap=self.tiles.tile_overlap,
                             size_multiple=self.tiles.size_multiple)
        return tiled_forward(self.model_fn, lq.unsqueeze(0), 1, spatial)[0]

    def _sliding_frame(self, lq: torch.Tensor, index: int, scale: Scale) -> torch.Tensor:
        """The output of frame ``index`` from its reflected window ``(1, c, H, W)``."""
        window = lq[generate_frame_indices(index, lq.shape[0], self.spec.num_frame, "reflection")]
        factor = integer_scale(scale)
        if factor is None:  # non-integer scales cannot be tiled (output tiles would not align)
            if self.tiles.tile != (0, 0):
                raise ValueError(f"spatial tiling needs an integer scale; drop --tile for scale {scale}")
            out = self.model_fn(window.unsqueeze(0), scale).cpu()
        else:
            spatial = TileConfig(tile=self.tiles.tile, tile_overlap=self.tiles.tile_overlap)
            out = tiled_forward(lambda clip: self.model_fn(clip, scale).unsqueeze(1), window.unsqueeze(0), factor,
                                spatial)[:, 0]
        return out

    def _integer_scale(self, scale: Scale) -> int:
        factor = integer_scale(scale)
        if factor is None:
            raise ValueError(f"{self.spec.arch}: scale {scale} is not an integer factor")
        return factor

    def _check_size(self, out: torch.Tensor, lq: torch.Tensor, factor: int) -> None:
        expected = (lq.shape[-2] * factor, lq.shape[-1] * factor)
        if tuple(out.shape[-2:]) != expected:
            raise ValueError(f"{self.spec.arch} returned {tuple(out.shape[-2:])} frames for input "
                             f"{tuple(lq.shape[-2:])}; expected x{factor} = {expected} (check --scale)")
