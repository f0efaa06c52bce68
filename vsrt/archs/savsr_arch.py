"""SAVSR: arbitrary-scale video super-resolution with a learned scale-adaptive network.

Paper: "SAVSR: Arbitrary-Scale Video Super-Resolution via A Learned Scale-Adaptive Architecture",
Chen et al., AAAI 2024 (https://ojs.aaai.org/index.php/AAAI/article/view/28114; the official README
lists no arXiv version). Official code: Weepingchestnut/SAVSR, ``lbasicsr/archs/savsr_arch.py``. The
constructor keywords and state-dict keys are the official ones, so official checkpoints load with
``strict=True`` and give the official outputs.

The network reads ``num_frame`` LR frames and returns the SR of frame ``center_frame_idx`` only:
``(b, t, c, h, w)`` -> ``(b, c, round(h * s_h), round(w * s_w))`` (Python ``round``: halves to even).

Deliberate differences from the official code:

* the scale may be passed per call, ``forward(x, scale=(s_h, s_w))`` or ``forward(x, scale=s)``.
  ``set_scale`` still works as officially: ``forward(x)`` without ``scale`` uses the last scale set
  (default ``(4, 4)``). A bare number is accepted everywhere (the official code raises a TypeError);
* inputs are checked: ``t`` must equal ``num_frame`` (officially extra frames were silently ignored
  and the centre was not re-centred) and ``h, w >= 2``;
* constructor configurations that crash in the official forward are rejected in ``__init__``;
* the hidden state and all coordinates follow the input dtype (officially float32 was hard-coded, so
  ``.double()`` crashed);
* the BatchNorms fall back to their running statistics when a training batch has one value per
  channel (officially training at batch size 1 crashed);
* STAUpsample's expert mixture is re-associated into 1x1 convolutions (same maths, less memory);
  on the CPU its scale embedding runs once per distinct HR sub-pixel position instead of per HR pixel;
* in CPU float32 inference the 3x3 convolutions use Winograd's transform (``vsrt.archs.layers.nnpack_conv``,
  about 2x faster than oneDNN's direct convolution). This changes float32 rounding only: the official
  fixtures stay within 4e-7 of the official outputs. ``torch.backends.nnpack.flags(enabled=False)``
  turns it off;
* on two CPU threads the two level-1 branches (independent of each other) run side by side, one thread
  each (``vsrt.archs.layers.threads``): they are about 70 % of a frame.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from vsrt.archs.layers.nnpack_conv import Conv2d
from vsrt.archs.layers.threads import run_concurrently
from vsrt.archs.savsr.blocks import OSAdapt, ResidualGroup
from vsrt.archs.savsr.scale import Scale, as_scale_pair, sr_size
from vsrt.archs.savsr.upsample import STAUpsample
from vsrt.archs.savsr.window import WindowUnitL1, WindowUnitL2, lrelu
from vsrt.registry import ARCH_REGISTRY


def branch_frame_indices(num_frame: int, interval: int) -> tuple[list[int], list[int]]:
    """Frames seen by the forward (past-to-future) and backward branches, as the official ``frame_sample``.

    With ``interval > 0`` the two branches see interleaved subsets that both contain the centre
    frame, e.g. 7 frames, interval 1: forward ``[0, 2, 3, 4, 6]``, backward ``[0, 1, 3, 5, 6]``.
    """
    frames = list(range(num_frame))
    if interval == 0:
        return frames, frames
    centre, stride = num_frame // 2, interval + 1
    if centre % 2 == 0:
        forward, backward = frames[1::stride], frames[::stride]
        forward.insert(centre // 2, centre)
    else:
        forward, backward = frames[::stride], frames[1::stride]
        forward.insert(centre // 2 + 1, centre)
        if len(forward) != len(backward):
            backward = [forward[0], *backward, forward[-1]]
    return forward, backward


def pad_to_even(x: torch.Tensor) -> torch.Tensor:
    """Reflect-pad ``(n, t, c, h, w)`` at the bottom and right to even ``h`` and ``w`` (OSAdapt pools by 2)."""
    n, t, c, h, w = x.shape
    if h % 2 == 0 and w % 2 == 0:
        return x
    padded = F.pad(x.view(n * t, c, h, w), [0, w % 2, 0, h % 2], mode="reflect")
    return padded.view(n, t, c, h + h % 2, w + w % 2)


@ARCH_REGISTRY.register()
class SAVSR(nn.Module):
    """SAVSR network (official keyword arguments; ``downsample_scale`` is stored but unused, as officially).

    ``num_feat`` must be at least 16 (C/16, C/8 and C/4 channel branches). ``interval > 0`` lets
    the two level-1 branches see interleaved frame subsets (:func:`branch_frame_indices`).
    """

    arbitrary_scale: ClassVar[bool] = True  # forward(x, scale=(s_h, s_w)) takes any scale
    tiny_config: ClassVar[dict] = {"num_feat": 16, "num_frame": 5, "fusion_win": 3, "w1_num_block": 1,
                                   "w2_num_block": 1, "n_resgroups": 1, "n_resblocks": 1}
    tiny_input_shape: ClassVar[tuple[int, ...]] = (1, 5, 3, 16, 16)  # (n, t, c, h, w) for tiny_config
    # the RCAN trunk (see vsrt.utils.compile); the scale-conditioned modules take Python floats
    # that would recompile for every training scale
    compile_blocks: ClassVar[tuple[type[nn.Module], ...]] = (ResidualGroup,)

    def __init__(self, num_in_ch: int = 3, num_feat: int = 64, num_frame: int = 7, slid_win: int = 3,
                 fusion_win: int = 5, interval: int = 0, w1_num_block: int = 4, w2_num_block: int = 2,
                 n_resgroups: int = 4, n_resblocks: int = 8, downsample_scale: int = 2,
                 center_frame_idx: int | None = None) -> None:
        super().__init__()
        self.num_feat = num_feat
        self.num_frame = num_frame
        self.slid_win = slid_win
        self.interval = interval
        self.downsample_scale = downsample_scale
        self.center_frame_idx = num_frame // 2 if center_frame_idx is None else center_frame_idx
        self.scale: tuple[float, float] = (4.0, 4.0)
        if interval == 0:
            self.iter_win = num_frame
        else:  # enough frames of each interleaved subset to reach the centre frame
            self.iter_win = self.center_frame_idx + (1 if self.center_frame_idx % 2 == 0 else 2)
        self.forward_frames, self.backward_frames = branch_frame_indices(num_frame, interval)
        fusion_sizes = self._check_config(fusion_win)

        # 1. implicit alignment: two recurrent branches, then the fusion pyramid
        self.f2p_win = WindowUnitL1(num_in_ch, num_feat, win_size=slid_win, num_block=w1_num_block)
        self.p2f_win = WindowUnitL1(num_in_ch, num_feat, win_size=slid_win, num_block=w1_num_block)
        self.h_win = nn.ModuleList([WindowUnitL2(num_feat, win_size=size, fusion_win=fusion_win,
                                                 num_block=w2_num_block) for size in fusion_sizes])
        self.h_win_conv_h = Conv2d(num_feat * 2, num_feat, 3, 1, 1)
        # 2. reconstruction trunk (an OSAdapt after every residual group)
        self.RG = nn.ModuleList([ResidualGroup(num_feat, n_resblocks) for _ in range(n_resgroups)])
        self.adapt = nn.ModuleList([OSAdapt(num_feat) for _ in range(n_resgroups)])
        self.gamma = nn.Parameter(torch.ones(1))
        self.conv_last = Conv2d(num_feat, num_feat, 3, 1, 1)
        # 3. arbitrary-scale upsampling
        self.upsample = STAUpsample(num_feat)
        self.tail = Conv2d(num_feat, num_in_ch, 3, 1, 1)

    def _check_config(self, fusion_win: int) -> list[int]:
        """Reject configurations that crash in the official forward; return the level-2 window sizes."""
        if self.num_feat < 16:
            raise ValueError(f"num_feat must be at least 16, got {self.num_feat}")
        if self.slid_win < 3 or self.slid_win % 2 == 0:
            raise ValueError(f"slid_win must be odd and at least 3, got {self.slid_win}")
        if not 0 <= self.center_frame_idx < self.num_frame:
            raise ValueError(f"center_frame_idx {self.center_frame_idx} is outside 0..{self.num_frame - 1}")
        if min(len(self.forward_frames), len(self.backward_frames)) < self.iter_win:
            raise ValueError(f"interval={self.interval} leaves fewer than {self.iter_win} frames per branch "
                             f"out of num_frame={self.num_frame}")
        num_states = self.iter_win - self.slid_win + 1
        if num_states < 1:
            raise ValueError(f"slid_win={self.slid_win} is larger than the {self.iter_win} frames iterated over")
        # Official pyramid: unit i takes num_states - 2i features and fuses fusion_win neighbours, so
        # it only chains when fusion_win == 3; with no unit the first hidden feature is used as is.
        sizes = [num_states - 2 * i for i in range((self.iter_win - fusion_win + 1) // 2)]
        if sizes and (fusion_win < 2 or min(sizes) < fusion_win or (len(sizes) > 1 and fusion_win != 3)):
            raise ValueError(
                f"unsupported combination num_frame={self.num_frame}, slid_win={self.slid_win}, "
                f"fusion_win={fusion_win}, interval={self.interval}: the fusion pyramid would take "
                f"{sizes} features per level (the official code crashes here)")
        return sizes

    def set_scale(self, scale: Scale) -> None:
        """Set the scale that ``forward`` uses when it gets none (official API)."""
        self.scale = as_scale_pair(scale)

    def forward(self, x: torch.Tensor, scale: Scale | None = None) -> torch.Tensor:
        """``x`` ``(b, num_frame, c, h, w)`` -> SR of the centre frame ``(b, c, round(h s_h), round(w s_w))``.

        ``scale`` (``s`` or ``(s_h, s_w)``) defaults to the one given to :meth:`set_scale`.
        """
        scale = self.scale if scale is None else as_scale_pair(scale)
        t, h, w = x.shape[1], x.shape[-2], x.shape[-1]
        if t != self.num_frame:
            raise ValueError(f"SAVSR was built for num_frame={self.num_frame} frames, got {t}")
        if h < 2 or w < 2:
            raise ValueError(f"frames must be at least 2x2, got {h}x{w}")
        out_size = sr_size(h, w, scale)
        centre = x[:, self.center_frame_idx]

        align_feat = self.align(pad_to_even(x), scale)  # (b, C, h_pad, w_pad)
        feat = self.reconstruct(align_feat, scale)
        sr = self.tail(self.upsample(feat[..., :h, :w], scale, align_feat[..., :h, :w]))
        # The skip maps coordinates with the ratio h/H (size given), not 1/s_h as the upsampler does.
        return sr + F.interpolate(centre, size=out_size, mode="bilinear", align_corners=False)

    def align(self, x: torch.Tensor, scale: tuple[float, float]) -> torch.Tensor:
        """Padded frames ``(b, t, c, h, w)`` -> aligned feature ``(b, C, h, w)`` of the centre frame."""
        frames_forward = x if self.interval == 0 else x[:, self.forward_frames]
        frames_backward = x if self.interval == 0 else x[:, self.backward_frames]
        # the two branches are independent: on two CPU threads they run side by side (vsrt.archs.layers.threads)
        states_backward, states_forward = run_concurrently(
            x, lambda: self._branch_states(self.f2p_win, frames_backward, scale, backward=True),
            lambda: self._branch_states(self.p2f_win, frames_forward, scale, backward=False))

        # each (b, 2C, h, w), backward state first
        feats = [torch.cat(pair, dim=1) for pair in zip(states_backward, states_forward, strict=True)]
        for unit in self.h_win:
            feats = unit(feats, scale)
        return lrelu(self.h_win_conv_h(feats[0]))

    def _branch_states(self, unit: WindowUnitL1, frames: torch.Tensor, scale: tuple[float, float],
                       backward: bool) -> list[torch.Tensor]:
        """Hidden states ``(b, C, h, w)`` of one level-1 branch; ``states[i]`` belongs to the window
        ``frames[:, i : i + slid_win]``. The backward branch walks from the last window to the first."""
        b, _, _, h, w = frames.shape
        num_states = self.iter_win - self.slid_win + 1
        hidden = frames.new_zeros(b, self.num_feat, h, w)
        states: list[torch.Tensor] = [hidden] * num_states
        for start in reversed(range(num_states)) if backward else range(num_states):
            hidden = unit(frames[:, start:start + self.slid_win], hidden, scale)
            states[start] = hidden
        return states

    def reconstruct(self, align_feat: torch.Tensor, scale: tuple[float, float]) -> torch.Tensor:
        """Residual groups, each followed by OSAdapt and a ``gamma``-weighted skip from ``align_feat``."""
        feat = align_feat
        for group, adapt in zip(self.RG, self.adapt, strict=True):
            feat = adapt(group(feat), scale) + self.gamma * align_feat
        return self.conv_last(feat) + align_feat
