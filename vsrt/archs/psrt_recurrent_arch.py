"""PSRT-recurrent: recurrent video SR with patch alignment and multi-frame Swin attention.

Paper: "Rethinking Alignment in Video Super-Resolution Transformers", Shi et al.,
NeurIPS 2022, arXiv:2207.08494. Official code: XPixelGroup/RethinkVSRAlignment
(``BasicRecurrentSwin`` in ``archs/psrt_recurrent_arch.py``, its transformer
``SwinIRFM`` in ``archs/psrt_sliding_arch.py``). State-dict keys are identical,
so official checkpoints load with ``strict=True``.

Each propagation step stacks [previous output (patch-warped), current frame,
output two steps back (patch-warped, zeros at the first recurrent step)] and runs
a Swin transformer whose 3-D windows span all three frames; the middle frame of
its output is the step output.

Deliberate differences from the official code:
* the four transformers are built on every device (the official builds them
  only when CUDA is available);
* ``window_size`` may be a list or a tuple (the official default tuple raises a
  TypeError in forward; YAML files pass lists);
* ``spynet_path`` is not read in ``__init__``: call :meth:`load_spynet`;
* the shifted-window mask is built from the actual padded frame count; the
  official builds it from ``num_frames`` and fails whenever the two differ, so
  ``num_frames`` is bookkeeping only;
* mirror detection, ``cpu_cache_length`` and memory: see
  :mod:`vsrt.archs.layers.recurrent`; nothing on ``self`` changes in forward.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from einops import rearrange
from torch import nn

from vsrt.archs.layers.patch_align import PatchAlignTransformer
from vsrt.archs.layers.recurrent import RecurrentPatchAlignNet, StepFn
from vsrt.archs.layers.swin_block import ShiftedWindowBlock
from vsrt.archs.layers.window import (
    Size3,
    as_size3,
    pad_to_windows,
    shifted_window_mask,
    take_tokens,
    window_index,
)
from vsrt.registry import ARCH_REGISTRY

NUM_COND_FRAMES = 3  # previous output, current frame, output two steps back


class MultiFrameSwinBlock(ShiftedWindowBlock):
    """Swin block over ``(n, t, h, w, c)`` tokens in 3-D windows; every frame is updated.

    Shifted blocks roll by (ws0, ws1//2, ws2//2) over (frame, h, w). LayerNorm comes
    before the zero padding, so padded tokens are exact zeros and act as keys.
    """

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        return self.run_checkpointed(self._forward, x, attn_mask)

    def _forward(self, x: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        """``attn_mask``: ``(nW, N, N)`` in the window order of :func:`window_index` (see ``shift_mask``)."""
        n, t, h, w, c = x.shape
        tokens = pad_to_windows(self.norm1(x), self.window_size)  # (n, Dp, Hp, Wp, c)
        num_tokens = self.window_size[0] * self.window_size[1] * self.window_size[2]
        # roll by -shift + window partition, and window reverse + roll back + crop: one gather each
        index = window_index(tuple(tokens.shape[1:4]), self.window_size, self.shift_size, (0, t), (h, w),
                             num_tokens, x.device)
        windows = take_tokens(tokens.reshape(n, -1, c), index.gather).view(-1, num_tokens, c)  # (n*nW, N, c)
        windows = self.attn(windows, attn_mask if self.shifted else None, index.num_unmasked)
        tokens = take_tokens(windows.view(n, -1, c), index.scatter).view(n, t, h, w, c)
        x = x + self.drop_path(tokens)
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PSRTAlignTransformer(PatchAlignTransformer):
    """PSRT's ``SwinIRFM``: ``(n, 3, c, h, w)`` stacked frames -> ``(n, c, h, w)`` middle frame."""

    def __init__(self, in_chans: int, embed_dim: int, depths: Sequence[int], num_heads: Sequence[int],
                 window_size: Size3, mlp_ratio: float = 2.0, drop_path_rate: float = 0.1,
                 use_checkpoint: bool = False) -> None:
        def make_block(index: int, heads: int, drop_path: float) -> nn.Module:
            return MultiFrameSwinBlock(embed_dim, heads, window_size, shifted=index % 2 == 1,
                                       mlp_ratio=mlp_ratio, drop_path=drop_path, use_checkpoint=use_checkpoint)

        super().__init__(in_chans, embed_dim, depths, num_heads, make_block, drop_path_rate)

    def forward(self, cond: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        cond = self.embed_input(cond)
        t = cond.shape[1]
        center = cond[:, t // 2]  # (n, c, h, w)
        x = self.patch_embed(rearrange(cond, "n t c h w -> n t h w c"))
        for layer in self.layers:
            x = layer(x, attn_mask=attn_mask)
        x = self.norm(x)
        return self.conv_after_body(rearrange(x[:, t // 2], "n h w c -> n c h w")) + center


@ARCH_REGISTRY.register(aliases=("PSRTRecurrent",))
class BasicRecurrentSwin(RecurrentPatchAlignNet):
    """PSRT-recurrent, x4. ``forward(lqs)``: ``(n, t, 3, h, w)`` -> ``(n, t, 3, 4h, 4w)``.

    Args (official names and defaults):
        in_channels: image channels.
        mid_channels: width of the reconstruction head.
        embed_dim: feature / transformer width.
        depths, num_heads: blocks and heads of each residual Swin group.
        window_size: (frames, h, w) attention window (list or tuple).
        num_frames: official bookkeeping (mask frame count); the stack always has 3 frames.
        img_size, patch_size: official bookkeeping, no effect.
        cpu_cache_length: clips longer than this keep per-frame tensors on the host.
        is_low_res_input: must be True (as in the official code).
        spynet_path: SpyNet weights, loaded only by :meth:`load_spynet`.
        use_checkpoint: activation checkpointing of every transformer block while training
            (the official code always does it; False trades memory for ~25% speed).
    """

    scale = 4
    tiny_config: ClassVar[dict] = {"mid_channels": 8, "embed_dim": 12, "depths": (2,), "num_heads": (2,)}
    compile_blocks: ClassVar[tuple[type[nn.Module], ...]] = (MultiFrameSwinBlock,)  # see vsrt.utils.compile

    def __init__(self, in_channels: int = 3, mid_channels: int = 64, embed_dim: int = 120,
                 depths: Sequence[int] = (6, 6, 6, 6, 6, 6), num_heads: Sequence[int] = (6, 6, 6, 6, 6, 6),
                 window_size: Sequence[int] = (3, 8, 8), num_frames: int = 3, img_size: int = 64,
                 patch_size: int = 1, cpu_cache_length: int = 100, is_low_res_input: bool = True,
                 spynet_path: str | None = None, use_checkpoint: bool = True) -> None:
        window = as_size3(window_size)

        def make_aligner() -> nn.Module:
            return PSRTAlignTransformer(in_channels, embed_dim, depths, num_heads, window,
                                        use_checkpoint=use_checkpoint)

        super().__init__(in_channels, mid_channels, embed_dim, cpu_cache_length, is_low_res_input,
                         spynet_path, make_aligner)
        self.window_size = window
        self.num_frames = num_frames
        self.img_size = img_size
        self.patch_size = patch_size

    def shift_mask(self, h: int, w: int, device: torch.device) -> torch.Tensor:
        """``(nW, N, N)`` shifted-window mask, windows in the order of :func:`window_index`."""
        wd, wh, ww = self.window_size
        padded = (-(-NUM_COND_FRAMES // wd) * wd, -(-h // wh) * wh, -(-w // ww) * ww)
        shift = (wd, wh // 2, ww // 2)
        order = window_index(padded, self.window_size, shift, (0, 1), (1, 1), 1, device).order
        return shifted_window_mask(padded, self.window_size, shift, device, order=order)

    def make_step(self, name: str, attn_mask: torch.Tensor, records: list) -> StepFn:
        aligner = self.patch_align[name]

        def step(current: torch.Tensor, aligned_1: torch.Tensor | None,
                 aligned_2: torch.Tensor | None) -> torch.Tensor:
            if aligned_1 is None:  # first step: the current frame three times
                cond = torch.stack([current, current, current], dim=1)
            else:  # the official uses zeros for the missing second-order neighbour
                aligned_2 = torch.zeros_like(aligned_1) if aligned_2 is None else aligned_2
                cond = torch.stack([aligned_1, current, aligned_2], dim=1)  # (n, 3, c, h, w)
            return aligner(cond, attn_mask.to(current.dtype))

        return step

    def forward(self, lqs: torch.Tensor) -> torch.Tensor:
        """``(n, t, 3, h, w)`` -> ``(n, t, 3, 4h, 4w)`` (not clamped)."""
        out, _ = self.run(lqs)
        return out
