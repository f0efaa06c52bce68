"""Parameters of a pre-norm (shifted) 3-D window transformer block.

:class:`ShiftedWindowBlock` owns the parts that PSRT-recurrent and MIA/IIA-VSR
blocks have in common (keys ``norm1``, ``attn``, ``norm2``, ``mlp.fc1``,
``mlp.fc2``); each family writes its own ``forward``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from vsrt.archs.layers.attention import WindowAttention3D
from vsrt.archs.layers.mlp import DropPath, Mlp
from vsrt.archs.layers.window import Size3


class ShiftedWindowBlock(nn.Module):
    """Norms, window attention, MLP and stochastic depth of one Swin block (no forward).

    Args:
        dim: token channels.
        num_heads: attention heads.
        window_size: (frames, h, w) of a window.
        shifted: shift the windows by (ws0, ws1 // 2, ws2 // 2) over (frame, h, w).
        mlp_ratio: MLP hidden width / ``dim``.
        drop_path: stochastic depth rate of both residual branches.
        last_frame_queries: passed to :class:`WindowAttention3D`.
        use_checkpoint: recompute the block in the backward pass instead of keeping its
            activations (``torch.utils.checkpoint``; training with gradients only, no
            numerical effect: the RNG state of stochastic depth is replayed).
    """

    # what vsrt.utils.compile compiles: the pure block function, so that activation
    # checkpointing (run_checkpointed) and per-step state stay outside the graph
    compile_methods: ClassVar[tuple[str, ...]] = ("_forward",)

    def __init__(self, dim: int, num_heads: int, window_size: Size3, shifted: bool, mlp_ratio: float = 2.0,
                 drop_path: float = 0.0, last_frame_queries: bool = False, use_checkpoint: bool = False) -> None:
        super().__init__()
        self.use_checkpoint = use_checkpoint
        self.window_size = window_size
        self.shift_size = (window_size[0], window_size[1] // 2, window_size[2] // 2) if shifted else (0, 0, 0)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention3D(dim, window_size, num_heads, last_frame_queries=last_frame_queries)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    @property
    def shifted(self) -> bool:
        return any(s > 0 for s in self.shift_size)

    def run_checkpointed(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)``, under activation checkpointing when ``use_checkpoint`` applies.

        ``fn`` must be a pure function of ``args`` (no reads of state that changes
        between the forward and the backward pass), since it runs again in backward.
        """
        if self.use_checkpoint and self.training and torch.is_grad_enabled():
            return checkpoint(fn, *args, use_reentrant=False)
        return fn(*args)
