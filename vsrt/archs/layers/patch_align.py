"""Shell of the per-step "patch alignment" transformer of PSRT-recurrent and MIA-VSR.

Both official repositories call it ``SwinIRFM``; its state-dict layout is the
same in both (only the blocks differ), so the shell and the residual group are
shared here and each family supplies its block class:

``conv_first``, ``conv_first_feat`` (see :meth:`PatchAlignTransformer.embed_input`),
``patch_embed.norm``, ``layers.{i}.residual_group.blocks.{j}.*``,
``layers.{i}.conv``, ``norm``, ``conv_after_body`` and the never-used
``conv_before_upsample`` (kept so that official checkpoints load strictly).

The 3x3 convolutions used in forward are :class:`vsrt.archs.layers.nnpack_conv.Conv2d` (same keys): CPU float32
inference takes Winograd's transform there (float32 rounding only; the fixtures stay within 1.3e-6 of
the official outputs).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from einops import rearrange
from torch import nn

from vsrt.archs.layers.attention import truncated_normal_
from vsrt.archs.layers.nnpack_conv import Conv2d

# block factory: (index inside its group, heads, drop-path rate) -> block module
BlockFactory = Callable[[int, int, float], nn.Module]

# the official transformers hard-code a 64-channel feature input conv
OFFICIAL_FEAT_CHANNELS = 64


class BlockList(nn.Module):
    """Holder giving the blocks their official key prefix ``residual_group.blocks``."""

    def __init__(self, blocks: Sequence[nn.Module]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)


class ResidualSwinGroup(nn.Module):
    """Blocks, then a 3x3 conv on every frame, plus the group input (official ``RSTB``).

    Works on channels-last tokens ``(n, h, w, c)`` or ``(n, t, h, w, c)``; extra
    keyword arguments are handed to every block.
    """

    def __init__(self, blocks: Sequence[nn.Module], dim: int) -> None:
        super().__init__()
        self.residual_group = BlockList(blocks)
        self.conv = Conv2d(dim, dim, 3, 1, 1)

    def forward(self, x: torch.Tensor, **block_kwargs: Any) -> torch.Tensor:
        shortcut = x
        for block in self.residual_group.blocks:
            x = block(x, **block_kwargs)
        lead_shape, (h, w) = x.shape[:-3], x.shape[-3:-1]
        frames = rearrange(x.reshape(-1, h, w, x.shape[-1]), "b h w c -> b c h w")
        frames = rearrange(self.conv(frames), "b c h w -> b h w c")
        # shortcut first: the sum takes its (channels-last) layout, whatever layout the conv returned
        return shortcut + frames.reshape(*lead_shape, h, w, -1)


class TokenNorm(nn.Module):
    """LayerNorm over channels under the official name ``patch_embed.norm``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x)


class PatchAlignTransformer(nn.Module):
    """Parameters shared by PSRT's and MIA-VSR's per-step transformer.

    Subclasses define ``forward``. Args follow the official ``SwinIRFM``;
    ``drop_path_rate`` rises linearly from 0 over all blocks.
    """

    def __init__(self, in_chans: int, embed_dim: int, depths: Sequence[int], num_heads: Sequence[int],
                 make_block: BlockFactory, drop_path_rate: float = 0.1) -> None:
        super().__init__()
        if len(depths) != len(num_heads):
            raise ValueError(f"depths {list(depths)} and num_heads {list(num_heads)} differ in length")
        self.embed_dim = embed_dim
        self.conv_first = Conv2d(in_chans, embed_dim, 3, 1, 1)
        self.conv_first_feat = Conv2d(OFFICIAL_FEAT_CHANNELS, embed_dim, 3, 1, 1)
        self.patch_embed = TokenNorm(embed_dim)
        rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        self.layers = nn.ModuleList()
        start = 0
        for depth, heads in zip(depths, num_heads):
            blocks = [make_block(j, heads, rates[start + j]) for j in range(depth)]
            self.layers.append(ResidualSwinGroup(blocks, embed_dim))
            start += depth
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = Conv2d(embed_dim, embed_dim, 3, 1, 1)
        # never used in forward; present in every official checkpoint
        self.conv_before_upsample = nn.Conv2d(embed_dim, OFFICIAL_FEAT_CHANNELS, 3, 1, 1)
        self.apply(_init_weights)

    def blocks(self) -> list[nn.Module]:
        """All blocks in order (layer by layer)."""
        return [b for layer in self.layers for b in layer.residual_group.blocks]

    def embed_input(self, cond: torch.Tensor) -> torch.Tensor:
        """The official channel-count test on the stacked input ``(n, t, c, h, w)``.

        Kept for checkpoint parity: a 3-channel input goes through ``conv_first``
        and a 64-channel input through ``conv_first_feat``, so a model with
        ``embed_dim`` 3 or 64 silently applies that conv to its own features.
        """
        n, t, c, h, w = cond.shape
        if c == 3:
            cond = self.conv_first(cond.reshape(n * t, c, h, w)).reshape(n, t, -1, h, w)
        if c == OFFICIAL_FEAT_CHANNELS:
            cond = self.conv_first_feat(cond.reshape(n * t, c, h, w)).reshape(n, t, -1, h, w)
        return cond


def _init_weights(module: nn.Module) -> None:
    """Official initialisation: N(0, 0.02) linears truncated to [-2, 2], unit LayerNorms."""
    if isinstance(module, nn.Linear):
        truncated_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
