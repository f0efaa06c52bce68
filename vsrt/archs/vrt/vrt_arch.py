"""VRT: A Video Restoration Transformer.

Liang, Cao, Fan, Zhang, Ranjan, Li, Timofte, Van Gool, IEEE TIP 2024, arXiv 2201.12288.
Official code: https://github.com/JingyunLiang/VRT (``models/network_vrt.py``, class ``VRT``).

One network for video super-resolution (``upscale`` > 1), deblurring and denoising
(``upscale=1``; ``nonblind_denoising`` appends a noise-level map channel to the input)
and frame interpolation (``pa_frames=0``). Official checkpoints load unchanged with
``strict=True``; outputs match the official model.

Deliberate differences from the official code:
* ``spynet_path`` is stored but never read in ``__init__``; call :meth:`VRT.load_spynet`.
* Features are channel-last between stages, flows are nested per scale and distance, and
  parallel warping is batched over frames (same values, see ``stage.py`` / ``flows.py``).
* ``recal_all_flows`` is accepted and stored, and unused, as in the official code.
* The dead ``init_weights`` method is gone; initialisation is PyTorch's default, as in the
  official code (which never calls it).
* The per-frame ``(1, 3, 3)`` Conv3d layers run as ``conv2d`` over the frames (same
  parameters; faster on CPU), and ``forward`` rejects input shapes it cannot take up front.
Tiled / chunked inference (the official ``test_video``) lives in :mod:`vsrt.archs.tiling`
with an adapter in :mod:`vsrt.archs.vrt.inference`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from einops import rearrange
from einops.layers.torch import Rearrange
from torch import nn

from vsrt.archs.flow.spynet import SpyNet
from vsrt.archs.layers.threads import map_in_halves
from vsrt.archs.vrt.flows import align_input_frames, spynet_flows
from vsrt.archs.vrt.stage import Stage
from vsrt.archs.vrt.tmsa import RTMSA, TMSA, inference_chunk
from vsrt.registry import ARCH_REGISTRY

STAGE_RESHAPES = ("none", "down", "down", "down", "up", "up", "up")
STAGE_SCALES = (1, 2, 4, 8, 4, 2, 1)
FLOW_SCALE_INDEX = {1: 0, 2: 1, 4: 2, 8: 3}

_SR = {"upscale": 4, "depths": [8] * 7 + [4] * 6, "indep_reconsts": [11, 12],
       "embed_dims": [120] * 7 + [180] * 6, "num_heads": [6] * 13}
_RESTORE = {"upscale": 1, "img_size": [6, 192, 192], "window_size": [6, 8, 8], "depths": [8] * 7 + [4] * 4,
            "indep_reconsts": [9, 10], "embed_dims": [96] * 7 + [120] * 4, "num_heads": [6] * 11,
            "pa_frames": 2, "deformable_groups": 16}
_VIMEO_SR = {**_SR, "img_size": [8, 64, 64], "window_size": [8, 8, 8], "pa_frames": 4, "deformable_groups": 16}
# constructor arguments of the released checkpoints (main_test_vrt.py), by task name
OFFICIAL_CONFIGS: dict[str, dict[str, Any]] = {
    "001_VRT_videosr_bi_REDS_6frames": {**_SR, "img_size": [6, 64, 64], "window_size": [6, 8, 8],
                                        "pa_frames": 2, "deformable_groups": 12},
    "002_VRT_videosr_bi_REDS_16frames": {**_SR, "img_size": [16, 64, 64], "window_size": [8, 8, 8],
                                         "pa_frames": 6, "deformable_groups": 24},
    "003_VRT_videosr_bi_Vimeo_7frames": {**_VIMEO_SR},
    "004_VRT_videosr_bd_Vimeo_7frames": {**_VIMEO_SR},
    "005_VRT_videodeblurring_DVD": {**_RESTORE},
    "006_VRT_videodeblurring_GoPro": {**_RESTORE},
    "007_VRT_videodeblurring_REDS": {**_RESTORE},
    "008_VRT_videodenoising_DAVIS": {**_RESTORE, "nonblind_denoising": True},
    "009_VRT_videofi_Vimeo_4frames": {**_RESTORE, "out_chans": 3, "img_size": [4, 192, 192],
                                      "window_size": [4, 8, 8], "indep_reconsts": [], "pa_frames": 0},
}


class FrameConv3d(nn.Conv3d):
    """A ``(1, k, k)`` Conv3d run as a 2-D convolution over the frames (same parameters and keys).

    PyTorch's CPU Conv3d takes a slow path for these kernels; ``conv2d`` on ``(n*d, c, h, w)``
    computes the same per-frame convolution.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        frames = rearrange(x, "n c d h w -> (n d) c h w")
        out = F.conv2d(frames, self.weight.squeeze(2), self.bias, self.stride[1:], self.padding[1:],
                       self.dilation[1:], self.groups)
        return rearrange(out, "(n d) c h w -> n c d h w", n=n)


def conv_1x3x3(in_channels: int, out_channels: int) -> nn.Conv3d:
    """Per-frame 3x3 convolution on ``(n, c, d, h, w)`` (an ``nn.Conv3d`` parameter layout)."""
    return FrameConv3d(in_channels, out_channels, kernel_size=(1, 3, 3), padding=(0, 1, 1))


def make_upsampler(scale: int, num_feat: int) -> nn.Sequential:
    """Per-frame pixel-shuffle upsampler on ``(n, c, d, h, w)`` (keys ``0, 5, 10, ...``).

    Each step is conv -> 5-D pixel shuffle (three parameter-free modules) -> LeakyReLU(0.1);
    a final conv follows. Supports powers of two and 3.
    """
    if scale & (scale - 1) == 0:
        factors = [2] * int(math.log2(scale))
    elif scale == 3:
        factors = [3]
    else:
        raise ValueError(f"upscale {scale} is not supported; use a power of two or 3")
    layers: list[nn.Module] = []
    for factor in factors:
        layers += [conv_1x3x3(num_feat, factor * factor * num_feat),
                   Rearrange("n c d h w -> n d c h w"), nn.PixelShuffle(factor),
                   Rearrange("n d c h w -> n c d h w"), nn.LeakyReLU(negative_slope=0.1, inplace=True)]
    layers.append(conv_1x3x3(num_feat, num_feat))
    return nn.Sequential(*layers)


@ARCH_REGISTRY.register()
class VRT(nn.Module):
    """Video Restoration Transformer.

    ``forward(x)``: ``x`` is ``(n, d, c, h, w)`` in [0, 1] with ``c = in_chans`` (+1 noise
    level channel when ``nonblind_denoising``); ``h, w`` multiples of 8 and at least 8x the
    spatial window (64 for the official window 8; ``min_size``), ``d >= pa_frames/2 + 1``. Returns
    ``(n, d, out_chans, h*upscale, w*upscale)``, or for frame interpolation
    (``pa_frames=0``, ``d == img_size[0]``) ``(n, out_chans // 3, 3, h, w)``.

    Keyword arguments and defaults are the official ones (see the spec / paper); ``img_size``
    only matters for frame interpolation (number of input frames), ``norm_layer`` is a
    factory ``dim -> nn.Module``. :data:`OFFICIAL_CONFIGS` holds the released configurations.
    """

    # a small SR configuration for fast tests (inputs: >= 2 frames of 32x32 or larger)
    tiny_config: ClassVar[dict[str, Any]] = {
        "upscale": 4, "img_size": [2, 40, 40], "window_size": [2, 4, 4], "depths": [2] * 7 + [1],
        "indep_reconsts": [], "embed_dims": [8] * 8, "num_heads": [2] * 8, "pa_frames": 2,
        "deformable_groups": 4}
    tiny_input_shape: ClassVar[tuple[int, ...]] = (1, 2, 3, 32, 32)  # (n, t, c, h, w) for tiny_config
    compile_blocks: ClassVar[tuple[type[nn.Module], ...]] = (TMSA,)  # see vsrt.utils.compile

    def __init__(self, upscale: int = 4, in_chans: int = 3, out_chans: int = 3,
                 img_size: Sequence[int] = (6, 64, 64), window_size: Sequence[int] = (6, 8, 8),
                 depths: Sequence[int] = (8, 8, 8, 8, 8, 8, 8, 4, 4, 4, 4, 4, 4),
                 indep_reconsts: Sequence[int] = (11, 12),
                 embed_dims: Sequence[int] = (120, 120, 120, 120, 120, 120, 120, 180, 180, 180, 180, 180, 180),
                 num_heads: Sequence[int] = (6,) * 13, mul_attn_ratio: float = 0.75,
                 mlp_ratio: float = 2.0, qkv_bias: bool = True, qk_scale: float | None = None,
                 drop_path_rate: float = 0.2, norm_layer: Callable[[int], nn.Module] = nn.LayerNorm,
                 spynet_path: str | None = None, pa_frames: int = 2, deformable_groups: int = 16,
                 recal_all_flows: bool = False, nonblind_denoising: bool = False,
                 use_checkpoint_attn: bool = False, use_checkpoint_ffn: bool = False,
                 no_checkpoint_attn_blocks: Sequence[int] = (),
                 no_checkpoint_ffn_blocks: Sequence[int] = ()) -> None:
        super().__init__()
        if len(depths) < 8 or not (len(embed_dims) == len(num_heads) == len(depths)):
            raise ValueError("depths, embed_dims and num_heads need one entry per stage "
                             f"(7 + at least one), got {len(depths)}, {len(embed_dims)}, {len(num_heads)}")
        if pa_frames not in (0, 2, 4, 6):
            raise ValueError(f"pa_frames must be 0, 2, 4 or 6, got {pa_frames}")
        self.upscale = upscale
        self.in_chans = in_chans
        self.out_chans = out_chans
        self.input_resolution = tuple(img_size)
        self.pa_frames = pa_frames
        self.spynet_path = spynet_path
        self.recal_all_flows = recal_all_flows
        self.nonblind_denoising = nonblind_denoising
        # mutual attention adds a position bias of a full (Wh, Ww) window, so the 1/8-scale
        # stage 4 must hold a whole window; without mutual blocks smaller inputs run
        has_mutual = any(int(depth * mul_attn_ratio) > 0 for depth in depths[:7])
        self.min_size = (8 * window_size[1], 8 * window_size[2]) if has_mutual else (8, 8)

        if pa_frames:
            # image + 4 nearest reads of each of the two warped neighbours (+ noise map)
            first_in = in_chans * (1 + 2 * 4) + int(nonblind_denoising)
            self.spynet = SpyNet()
        else:
            first_in = in_chans
        self.conv_first = conv_1x3x3(first_in, embed_dims[0])

        rates = torch.linspace(0, drop_path_rate, sum(depths), device="cpu").tolist()
        bounds = [sum(depths[:i]) for i in range(len(depths) + 1)]
        ckpt_attn = [use_checkpoint_attn and i not in no_checkpoint_attn_blocks for i in range(len(depths))]
        ckpt_ffn = [use_checkpoint_ffn and i not in no_checkpoint_ffn_blocks for i in range(len(depths))]
        common = {"mlp_ratio": mlp_ratio, "qkv_bias": qkv_bias, "qk_scale": qk_scale, "norm_layer": norm_layer}
        for i in range(7):
            setattr(self, f"stage{i + 1}", Stage(
                in_dim=embed_dims[i - 1], dim=embed_dims[i], depth=depths[i], num_heads=num_heads[i],
                window_size=window_size, mul_attn_ratio=mul_attn_ratio,
                drop_path=rates[bounds[i]:bounds[i + 1]], pa_frames=pa_frames,
                deformable_groups=deformable_groups, reshape=STAGE_RESHAPES[i],
                max_residue_magnitude=10 / STAGE_SCALES[i], use_checkpoint_attn=ckpt_attn[i],
                use_checkpoint_ffn=ckpt_ffn[i], **common))

        # stage 8: project to embed_dims[7] (index 0 is a placeholder for the official
        # rearrange, so the norm and linear keep their keys 'stage8.0.1' / 'stage8.0.2'),
        # then residual self-attention groups, frame-independent for indep_reconsts
        self.stage8 = nn.ModuleList([nn.Sequential(
            nn.Identity(), nn.LayerNorm(embed_dims[6]), nn.Linear(embed_dims[6], embed_dims[7]))])
        for i in range(7, len(depths)):
            window = (1, window_size[1], window_size[2]) if i in indep_reconsts else window_size
            self.stage8.append(RTMSA(
                embed_dims[i], depths[i], num_heads[i], window,
                drop_path=rates[bounds[i]:bounds[i + 1]], use_checkpoint_attn=ckpt_attn[i],
                use_checkpoint_ffn=ckpt_ffn[i], **common))
        self.norm = norm_layer(embed_dims[-1])
        self.conv_after_body = nn.Linear(embed_dims[-1], embed_dims[0])

        self._build_head(embed_dims[0], img_size[0])

    def _build_head(self, dim: int, num_frames: int, num_feat: int = 64) -> None:
        """Reconstruction modules of the task (official attribute names)."""
        if self.pa_frames and self.upscale == 1:  # deblurring / denoising
            self.conv_last = conv_1x3x3(dim, self.out_chans)
        elif self.pa_frames:  # super-resolution; LeakyReLU with the default slope 0.01
            self.conv_before_upsample = nn.Sequential(conv_1x3x3(dim, num_feat), nn.LeakyReLU(inplace=True))
            self.upsample = make_upsampler(self.upscale, num_feat)
            self.conv_last = conv_1x3x3(num_feat, self.out_chans)
        else:  # frame interpolation: all frames' features -> out_chans / 3 frames
            self.linear_fuse = nn.Conv2d(dim * num_frames, num_feat, kernel_size=1)
            self.conv_last = nn.Conv2d(num_feat, self.out_chans, kernel_size=7)

    def load_spynet(self, path: str | Path | None = None) -> None:
        """Load SpyNet weights (BasicSR's ``spynet_sintel_final-3d2a1287.pth``) strictly.

        Only needed to train from scratch; a full VRT checkpoint already holds SpyNet.
        """
        path = path or self.spynet_path
        if not self.pa_frames:
            raise RuntimeError("this VRT has no SpyNet (pa_frames=0)")
        if path is None:
            raise ValueError("no SpyNet path given and spynet_path is None")
        self.spynet.load_pretrained(path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        problem = self._input_problem(tuple(x.shape))
        if problem:
            raise ValueError(f"VRT cannot take an input of shape {tuple(x.shape)} (n, t, c, h, w): {problem}; "
                             "pad the clip or use vsrt.archs.tiling (TileConfig.size_multiple)")
        if self.pa_frames:
            return self._forward_restoration(x)
        return self._forward_interpolation(x)

    def _input_problem(self, shape: tuple[int, ...]) -> str | None:
        """Why ``forward`` would fail on an input of ``shape``, or None if it runs."""
        if len(shape) != 5:
            return "expected 5 dimensions"
        _, t, c, h, w = shape
        channels = self.in_chans + int(self.nonblind_denoising)
        # without a noise map, pa_frames networks read only the first in_chans channels
        if c < channels or (c != channels and (self.nonblind_denoising or not self.pa_frames)):
            return f"c must be {channels}"
        min_h, min_w = self.min_size
        if h % 8 or w % 8 or h < min_h or w < min_w:
            return (f"h and w must be multiples of 8 (three 2x down-scalings) and at least "
                    f"{min_h}x{min_w} (8 x the spatial window)")
        if self.pa_frames and t < self.pa_frames // 2 + 1:
            return f"pa_frames={self.pa_frames} needs at least {self.pa_frames // 2 + 1} frames (t)"
        if not self.pa_frames and t != self.input_resolution[0]:
            return f"frame interpolation needs t == img_size[0] == {self.input_resolution[0]}"
        return None

    def _forward_restoration(self, x: torch.Tensor) -> torch.Tensor:
        """Super-resolution / deblurring / denoising: (n, d, c, h, w) -> (n, d, out, H, W)."""
        lq = x[:, :, :self.in_chans]
        backward, forward = spynet_flows(self.spynet, lq, self.pa_frames)
        # channels: [frame, next frame warped (4 reads), previous frame warped (4 reads), noise map]
        inputs = [lq, align_input_frames(lq, backward[0][0], forward[0][0])]
        if self.nonblind_denoising:
            inputs.append(x[:, :, self.in_chans:])
        feats = self.conv_first(rearrange(torch.cat(inputs, dim=2), "n d c h w -> n c d h w"))
        feats = rearrange(feats, "n c d h w -> n d h w c")
        feats = feats + self.conv_after_body(self.forward_features(feats, backward, forward))
        feats = rearrange(feats, "n d h w c -> n c d h w")
        if self.upscale == 1:
            return rearrange(self.conv_last(feats), "n c d h w -> n d c h w") + lq
        # per-frame layers: frame by frame on the CPU without gradients (inference_chunk), so that the
        # 4x-resolution temporaries (100 MB for 6 frames at 64x64) stay small; on two CPU threads each
        # takes half of the chunks (vsrt.archs.layers.threads)
        frames = feats.split(inference_chunk(feats, feats.shape[3] * feats.shape[4]) or feats.shape[2], dim=2)
        out = torch.cat(map_in_halves(feats, lambda f: self.conv_last(self.upsample(self.conv_before_upsample(f))),
                                      frames), dim=2)
        out = rearrange(out, "n c d h w -> n d c h w")
        # bilinear skip: the 5-D trilinear call keeps (d, c) and scales (h, w) (official form)
        skip = F.interpolate(lq, size=out.shape[2:], mode="trilinear", align_corners=False)
        return out + skip

    def _forward_interpolation(self, x: torch.Tensor) -> torch.Tensor:
        """Frame interpolation: (n, d, c, h, w) -> (n, out_chans // 3, 3, h, w)."""
        mean = x.mean(dim=(1, 3, 4), keepdim=True)  # (n, 1, c, 1, 1)
        feats = self.conv_first(rearrange(x - mean, "n d c h w -> n c d h w"))
        feats = rearrange(feats, "n c d h w -> n d h w c")
        feats = feats + self.conv_after_body(self.forward_features(feats, [], []))
        fused = rearrange(feats, "n d h w c -> n (d c) h w")  # frames concatenated frame-major
        fused = F.leaky_relu(self.linear_fuse(fused), 0.2)
        out = self.conv_last(F.pad(fused, (3, 3, 3, 3), mode="reflect"))
        return rearrange(out, "n (k c) h w -> n k c h w", c=3) + mean

    def forward_features(self, x: torch.Tensor, flows_backward: list[list[torch.Tensor]],
                         flows_forward: list[list[torch.Tensor]]) -> torch.Tensor:
        """The 7-stage U-net and stage 8: ``(n, d, h, w, c0) -> (n, d, h, w, c_last)``.

        ``flows_*[k]`` are the flows at scale ``2**k`` (empty lists without SpyNet).
        """
        def flows(scale: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
            if not self.pa_frames:
                return [], []
            k = FLOW_SCALE_INDEX[scale]
            return flows_backward[k], flows_forward[k]

        x1 = self.stage1(x, *flows(1))
        x2 = self.stage2(x1, *flows(2))
        x3 = self.stage3(x2, *flows(4))
        x4 = self.stage4(x3, *flows(8))
        x = self.stage5(x4, *flows(4))
        x = self.stage6(x + x3, *flows(2))
        x = self.stage7(x + x2, *flows(1))
        x = x + x1
        for layer in self.stage8:
            x = layer(x)
        return self.norm(x)
