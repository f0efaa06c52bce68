"""SAVSR's implicit alignment: bidirectional sliding-window units and the fusion pyramid.

Level 1 (``WindowUnitL1``) runs once per window position in each direction and carries a hidden
state. Level 2 (``WindowUnitL2``) repeatedly fuses ``fusion_win`` neighbouring hidden features.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vsrt.archs.layers.nnpack_conv import Conv2d
from vsrt.archs.layers.threads import map_in_halves
from vsrt.archs.savsr.osconv import OSConv2d


def lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.2)


class MultiInputResidualBlock(nn.Module):
    """Residual block over ``num_inputs`` features that exchange information through a shared base.

    ``a_i = lrelu(conv0[i](x_i))``; ``base = lrelu(conv1(cat a))`` (plain) or
    ``lrelu(osconv(cat a, scale))`` (scale-adaptive); output ``x_i + lrelu(conv2[i](cat(base, a_i)))``.
    """

    def __init__(self, num_feat: int, num_inputs: int, use_osconv: bool) -> None:
        super().__init__()
        self.conv0 = nn.Sequential(*[Conv2d(num_feat, num_feat, 3, 1, 1) for _ in range(num_inputs)])
        if use_osconv:
            self.osconv = OSConv2d(num_feat * num_inputs, num_feat, kernel_size=3)
        else:
            self.conv1 = nn.Conv2d(num_feat * num_inputs, num_feat, 1)
        self.conv2 = nn.Sequential(*[Conv2d(num_feat * 2, num_feat, 3, 1, 1) for _ in range(num_inputs)])
        self.use_osconv = use_osconv

    def forward(self, feats: list[torch.Tensor], scale: tuple[float, float]) -> list[torch.Tensor]:
        """``num_inputs`` features ``(b, c, h, w)`` -> as many ``(b, c, h, w)``."""
        acts = [lrelu(conv(feat)) for conv, feat in zip(self.conv0, feats, strict=True)]
        merged = torch.cat(acts, dim=1)  # (b, num_inputs*c, h, w)
        base = lrelu(self.osconv(merged, scale) if self.use_osconv else self.conv1(merged))
        return [feat + lrelu(conv(torch.cat((base, act), dim=1)))
                for conv, feat, act in zip(self.conv2, feats, acts, strict=True)]


class WindowUnitL1(nn.Module):
    """One step of a level-1 recurrent branch (``f2p_win`` / ``p2f_win``).

    The window's centre frame and its support frames are embedded separately; with the previous
    hidden state they pass through ``num_block`` three-input residual blocks (the first plain, the
    others scale-adaptive), and ``merge`` (no activation) gives the new hidden state.
    """

    def __init__(self, num_in_ch: int = 3, num_feat: int = 64, win_size: int = 3, num_block: int = 4) -> None:
        super().__init__()
        self.conv_c = Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.conv_sup = Conv2d(num_in_ch * (win_size - 1), num_feat, 3, 1, 1)
        # Three inputs (centre, support, hidden state) whatever the window size.
        self.blocks = nn.ModuleList(
            [MultiInputResidualBlock(num_feat, 3, use_osconv=i > 0) for i in range(num_block)])
        self.merge = Conv2d(3 * num_feat, num_feat, 3, 1, 1)

    def forward(self, frames: torch.Tensor, hidden: torch.Tensor, scale: tuple[float, float]) -> torch.Tensor:
        """``frames`` ``(b, win, c, h, w)``, ``hidden`` ``(b, C, h, w)`` -> new hidden ``(b, C, h, w)``."""
        centre = frames.shape[1] // 2
        support = torch.cat((frames[:, :centre], frames[:, centre + 1:]), dim=1).flatten(1, 2)  # (b, (win-1)*c, h, w)
        feats = [lrelu(self.conv_c(frames[:, centre])), lrelu(self.conv_sup(support)), hidden]
        for block in self.blocks:
            feats = block(feats, scale)
        return self.merge(torch.cat(feats, dim=1))


class WindowUnitL2(nn.Module):
    """One level of the fusion pyramid: ``win_size`` features ``(b, 2C, h, w)`` ->
    ``win_size - fusion_win + 1`` features ``(b, 2C, h, w)``, each fusing ``fusion_win`` neighbours."""

    def __init__(self, num_feat: int = 64, win_size: int = 5, fusion_win: int = 3, num_block: int = 2) -> None:
        super().__init__()
        self.fusion_win = fusion_win
        self.conv_h = nn.Sequential(*[Conv2d(num_feat * 2, num_feat, 3, 1, 1) for _ in range(win_size)])
        self.blocks = nn.ModuleList(
            [MultiInputResidualBlock(num_feat, fusion_win, use_osconv=True) for _ in range(num_block)])
        self.merge = Conv2d(fusion_win * num_feat, num_feat * 2, 3, 1, 1)

    def forward(self, feats: list[torch.Tensor], scale: tuple[float, float]) -> list[torch.Tensor]:
        if len(feats) != len(self.conv_h):
            raise ValueError(f"expected {len(self.conv_h)} features, got {len(feats)}")
        # the features, then the windows, are independent: on two CPU threads each takes half of them
        reduced = map_in_halves(feats[0], lambda pair: lrelu(pair[0](pair[1])),  # each (b, C, h, w)
                                list(zip(self.conv_h, feats, strict=True)))

        def fuse(start: int) -> torch.Tensor:
            group = reduced[start:start + self.fusion_win]
            for block in self.blocks:
                group = block(group, scale)
            return self.merge(torch.cat(group, dim=1))

        return map_in_halves(feats[0], fuse, range(len(reduced) - self.fusion_win + 1))
