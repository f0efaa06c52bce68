"""MIA-VSR: recurrent video SR with masked intra- and inter-frame attention.

Paper: "Video Super-Resolution Transformer with Masked Inter&Intra-Frame
Attention", Zhou et al., CVPR 2024, arXiv:2401.06312. Official code:
LabShuHangGU/MIA-VSR (``MIAVSR`` in ``archs/mia_vsr_arch.py``, its transformer
``SwinIRFM`` in ``archs/mia_sliding_arch.py``). State-dict keys are identical,
so official checkpoints load with ``strict=True``.

Each propagation step stacks [output two steps back, previous output (both
patch-warped; at the first recurrent step both are the previous output),
current frame]. In every block only the current frame's tokens are queries;
keys/values are the tokens of all three frames (the two neighbours stay fixed
through all blocks). From the second step of a branch on, a per-token mask
predictor compares the block's normalised input with the previous step's: tokens
that changed little reuse the previous step's attention projection and MLP
output instead of computing them.

Deliberate differences from the official code:
* the four transformers are built on every device (official: only with CUDA),
  the all-ones mask is not created with ``.cuda()``, ``torch._six`` is not used;
* eval with masks works for any batch size (official: batch 1 only) and has two
  execution paths with the same result (``mask_execution``, chosen per forward by
  :func:`vsrt.archs.layers.execution.sync_free`): ``gather`` (default on the CPU)
  computes only the kept tokens, including their attention query rows (kept
  queries are gathered into dense per-window batches; windows without kept
  tokens skip q, k and v), in the blocks that keep few enough tokens for it to
  pay (:data:`GATHER_ATTENTION_UP_TO`, :data:`GATHER_MLP_UP_TO`); ``dense``
  (default on CUDA) computes every token and
  selects with ``torch.where``, without any host-device synchronisation. The
  official computes every attention row and skips only the output projection and
  the MLP, through data-dependent indexing;
* inference gathers the two neighbours' windows once per step and window shift
  (:class:`vsrt.archs.layers.window.StepWindows`) instead of in every block;
* masks: ``forward(lqs)`` returns the HR clip only; ``return_masks=True`` also
  returns ``[branch][step][block]`` kept-token fractions (0-d tensors, None at each
  branch's first step) in training *and* eval (official eval returns only Nones);
* ``spynet_path`` is read only by :meth:`load_spynet`; ``window_size`` may be a
  list or tuple and must have 3 frames; see :mod:`vsrt.archs.layers.recurrent`
  for mirror detection, ``cpu_cache_length`` and freed features.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import ClassVar

import torch
from einops import rearrange
from torch import nn

from vsrt.archs.layers.execution import autocast_off, check_execution_mode, sync_free
from vsrt.archs.layers.patch_align import PatchAlignTransformer
from vsrt.archs.layers.recurrent import RecurrentPatchAlignNet, StepFn
from vsrt.archs.layers.swin_block import ShiftedWindowBlock
from vsrt.archs.layers.window import (
    Size3,
    StepWindows,
    WindowIndex,
    as_size3,
    pad_to_windows,
    shifted_window_mask,
    take_tokens,
    window_index,
)
from vsrt.registry import ARCH_REGISTRY

GUMBEL_TEMPERATURE = 2.0 / 3.0


def gumbel_sigmoid_keep(logit: torch.Tensor, training: bool, temperature: float = GUMBEL_TEMPERATURE,
                        eps: float = 1e-8) -> torch.Tensor:
    """0/1 keep decision from a logit; straight-through Gumbel-sigmoid in training.

    Eval: ``sigmoid(logit / temperature) >= 0.5`` (official test, i.e. logit >= 0 up
    to float rounding). Training: logistic noise (difference of two Gumbel samples)
    is added, and the hard value carries the gradient of the soft one.
    """
    if not training:
        return (torch.sigmoid(logit / temperature) >= 0.5).to(logit.dtype)
    gumbel_1 = -torch.log(-torch.log(torch.rand_like(logit) + eps) + eps)
    gumbel_2 = -torch.log(-torch.log(torch.rand_like(logit) + eps) + eps)
    soft = torch.sigmoid((logit + gumbel_1 - gumbel_2) / temperature)
    return ((soft >= 0.5).to(soft.dtype) - soft).detach() + soft


class TokenKeepPredictor(nn.Module):
    """Linear score of how much a token changed since the previous step (key ``predmask.rnn``)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.rnn = nn.Linear(dim, 1)

    def forward(self, change: torch.Tensor) -> torch.Tensor:
        """``(..., dim)`` absolute token change -> ``(..., 1)`` keep mask in {0, 1} (``change``'s dtype)."""
        # fp32 even under autocast: a bf16/fp16 logit near 0 would flip the keep decision
        with autocast_off(change.device.type):
            logit = self.rnn(change.to(self.rnn.weight.dtype))
            return gumbel_sigmoid_keep(logit, self.training).to(change.dtype)


class StepMemory:
    """What each block of one branch saw and produced at the previous step.

    ``gather``: eval computes only the kept tokens (data-dependent shapes) instead of
    computing every token and selecting with ``torch.where``.
    """

    def __init__(self, gather: bool = True) -> None:
        self.previous: dict[nn.Module, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
        self.kept: list[torch.Tensor | None] = []  # per block, for the current step
        self.gather = gather


# The gathered eval path computes only the kept tokens where at most these fractions of a block's tokens
# are kept; above them, computing every token and selecting is as fast or faster on the CPU (the kept
# path still needs every k/v of the windows it touches, plus its gathers). Either way gives the same output.
# Raised from 0.5 / 0.45 once the kept-token products left oneDNN's per-shape kernels (ragged_rows): see
# docs/performance.md, "MIA-VSR and IIA-VSR glue (session 7)".
GATHER_ATTENTION_UP_TO = 0.6
GATHER_MLP_UP_TO = 0.6


def apply_to_kept(fn: Callable[[torch.Tensor, bool], torch.Tensor], x: torch.Tensor, keep: torch.Tensor,
                  fallback: torch.Tensor, gather_up_to: float = 1.0) -> torch.Tensor:
    """``where(keep, fn(x), fallback)`` row-wise, evaluating ``fn`` only on kept rows.

    ``x`` ``(..., c)``, ``keep`` ``(..., 1)`` in {0, 1}, ``fallback`` ``(..., c_out)``. Where more than
    ``gather_up_to`` of the rows are kept, ``fn`` runs on every row and the kept ones are selected.
    ``fn(rows, ragged_rows)`` is row-wise; ``ragged_rows`` is True when it gets the kept rows (a
    data-dependent count, see :func:`vsrt.archs.layers.linear.linear`).
    """
    rows = keep.reshape(-1).nonzero().squeeze(1)
    if rows.numel() > gather_up_to * keep.numel():
        return torch.where(keep > 0, fn(x, False), fallback)
    out = fallback.reshape(-1, fallback.shape[-1]).clone()
    out[rows] = fn(x.reshape(-1, x.shape[-1])[rows], True).to(out.dtype)
    return out.view(fallback.shape)


class IntraInterFrameBlock(ShiftedWindowBlock):
    """MIA-VSR's masked block (``MaskSwinTransformerBlock``; IIA-VSR's without predictor).

    ``forward(x, neighbours, attn_mask, memory)``: ``x`` ``(n, h, w, c)`` current
    frame tokens, ``neighbours`` ``(n, 2, h, w, c)`` (already normalised by
    ``patch_embed``), ``attn_mask`` ``(nW, wh*ww, N)`` current-frame rows of the
    shifted mask. ``memory`` is None (no masking: IIA-VSR, ``use_mask=False``) or the
    branch's :class:`StepMemory`; tokens are masked from the second step of a branch on.
    """

    def __init__(self, dim: int, num_heads: int, window_size: Size3, shifted: bool, mlp_ratio: float = 2.0,
                 drop_path: float = 0.0, mask_predictor: bool = True, use_checkpoint: bool = False) -> None:
        super().__init__(dim, num_heads, window_size, shifted, mlp_ratio, drop_path, last_frame_queries=True,
                         use_checkpoint=use_checkpoint)
        if mask_predictor:  # official key attn.predmask.rnn (present even with use_mask=False)
            self.attn.predmask = TokenKeepPredictor(dim)

    @staticmethod
    def _to_pixels(windows: torch.Tensor, index: WindowIndex, n: int, h: int, w: int) -> torch.Tensor:
        """Current-frame windows ``(n*nW, wh*ww, c)`` -> ``(n, h, w, c)`` (un-shifted, cropped)."""
        return take_tokens(windows.reshape(n, -1, windows.shape[-1]), index.scatter).view(n, h, w, -1)

    def forward(self, x: torch.Tensor, neighbours: torch.Tensor, attn_mask: torch.Tensor,
                memory: StepMemory | None, step_windows: StepWindows | None = None) -> torch.Tensor:
        prev = memory.previous.get(self) if memory is not None else None
        gather = memory is not None and memory.gather
        windows = None  # (inference) the step's windows, only the current frame's slots refreshed
        if step_windows is not None:
            windows = step_windows.normalised(x, self._window_index(x, neighbours.shape[1] + 1), self.window_size,
                                              self.shift_size, self.norm1)
        # the step memory is read and written out here, so that the block itself is a pure
        # function of its inputs and can be recomputed by activation checkpointing
        out, queries, attn_out, hidden, keep_map = self.run_checkpointed(
            self._forward, x, neighbours, attn_mask, prev, gather, windows)
        if memory is not None:
            # clone: the query slice would otherwise keep all three frames' windows alive
            memory.previous[self] = (queries.detach().clone(), attn_out.detach(), hidden.detach())
            # fraction over real pixels (padding excluded), differentiable in training
            memory.kept.append(None if keep_map is None else keep_map.mean())
        return out

    def _window_index(self, x: torch.Tensor, num_frames: int) -> WindowIndex:
        """Roll + window partition of the padded ``num_frames`` stack and window reverse + roll back + crop
        of the current (last) frame: one gather each (windows without shift mask first; ``attn_mask`` is in
        that order, see :meth:`IntraInterFrameNet.shift_mask`)."""
        _, h, w, _ = x.shape
        wd, wh, ww = self.window_size
        padded = (-(-num_frames // wd) * wd, -(-h // wh) * wh, -(-w // ww) * ww)
        return window_index(padded, self.window_size, self.shift_size, (num_frames - 1, num_frames), (h, w),
                            self.attn.num_queries, x.device)

    def _forward(self, x: torch.Tensor, neighbours: torch.Tensor, attn_mask: torch.Tensor,
                 prev: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None, gather: bool,
                 windows: torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """One block step; ``prev`` = (queries, attention output, MLP output) of the previous step.

        In eval, ``gather`` computes the kept tokens only; otherwise every token is computed and
        the kept ones selected with ``torch.where`` (no data-dependent shapes). ``windows``: the
        normalised windows ``(n*nW, N, c)`` when the caller has them (:class:`StepWindows`).

        Returns the block output ``(n, h, w, c)``, this step's queries ``(n*nW, wh*ww, c)``,
        attention output (same shape), MLP branch ``(n, h, w, c)`` and keep map
        ``(n, h, w, 1)`` (None without a previous step).
        """
        n, h, w, c = x.shape
        num_frames, num_queries = neighbours.shape[1] + 1, self.attn.num_queries
        index = self._window_index(x, num_frames)
        num_tokens = num_frames * num_queries
        if windows is None:
            tokens = pad_to_windows(self.norm1(torch.cat([neighbours, x.unsqueeze(1)], dim=1)), self.window_size)
            windows = take_tokens(tokens.reshape(n, -1, c), index.gather).view(-1, num_tokens, c)  # (n*nW, N, c)
        queries = windows[:, -num_queries:]  # current frame tokens (n*nW, wh*ww, c)
        keep = None if prev is None else self.attn.predmask((queries - prev[0]).abs())  # (n*nW, wh*ww, 1)

        mask = attn_mask if self.shifted else None
        if keep is None:
            attn_out = self.attn(windows, mask, index.num_unmasked)
        elif self.training:
            attn_out = self.attn(windows, mask, index.num_unmasked) * keep + prev[1] * (1 - keep)
        elif gather and float(keep.mean()) <= GATHER_ATTENTION_UP_TO:  # attention rows and proj of kept tokens
            attn_out = self.attn.forward_kept(windows, keep.squeeze(-1) > 0, prev[1], mask, index.num_unmasked)
        else:  # every token, then the previous step's output where not kept
            attn_out = torch.where(keep > 0, self.attn(windows, mask, index.num_unmasked), prev[1])
        x = x + self.drop_path(self._to_pixels(attn_out, index, n, h, w))

        keep_map = None if keep is None else self._to_pixels(keep, index, n, h, w)  # (n, h, w, 1)
        if keep_map is None:
            hidden = self.drop_path(self.mlp(self.norm2(x)))
        elif self.training:
            hidden = self.drop_path(self.mlp(self.norm2(x))) * keep_map + prev[2] * (1 - keep_map)
        elif gather:
            hidden = apply_to_kept(lambda z, ragged: self.mlp(self.norm2(z), ragged_rows=ragged), x, keep_map,
                                   prev[2], GATHER_MLP_UP_TO)
        else:
            hidden = torch.where(keep_map > 0, self.mlp(self.norm2(x)), prev[2])
        return x + hidden, queries, attn_out, hidden, keep_map


class IntraInterFrameTransformer(PatchAlignTransformer):
    """MIA/IIA ``SwinIRFM``: ``(n, 3, c, h, w)`` [nb2, nb1, current] -> ``(n, c, h, w)``."""

    def __init__(self, in_chans: int, embed_dim: int, depths: Sequence[int], num_heads: Sequence[int],
                 window_size: Size3, mask_predictor: bool, mlp_ratio: float = 2.0,
                 drop_path_rate: float = 0.1, use_checkpoint: bool = False) -> None:
        def make_block(index: int, heads: int, drop_path: float) -> nn.Module:
            return IntraInterFrameBlock(embed_dim, heads, window_size, shifted=index % 2 == 1, mlp_ratio=mlp_ratio,
                                        drop_path=drop_path, mask_predictor=mask_predictor,
                                        use_checkpoint=use_checkpoint)

        super().__init__(in_chans, embed_dim, depths, num_heads, make_block, drop_path_rate)

    def forward(self, cond: torch.Tensor, attn_mask: torch.Tensor, memory: StepMemory | None = None) -> torch.Tensor:
        cond = self.embed_input(cond)
        center = cond[:, -1]  # (n, c, h, w)
        tokens = self.patch_embed(rearrange(cond, "n t c h w -> n t h w c"))
        neighbours, x = tokens[:, :-1], tokens[:, -1]
        # inference: the neighbours' windows are gathered once per step (StepWindows), not in every block
        step_windows = None if torch.is_grad_enabled() else StepWindows(neighbours)
        for layer in self.layers:
            x = layer(x, neighbours=neighbours, attn_mask=attn_mask, memory=memory, step_windows=step_windows)
        x = self.norm(x)
        return self.conv_after_body(rearrange(x, "n h w c -> n c h w")) + center


class IntraInterFrameNet(RecurrentPatchAlignNet):
    """Shared body of :class:`MIAVSR` and :class:`IIAVSR` (see the module docstring)."""

    compile_blocks: ClassVar[tuple[type[nn.Module], ...]] = (IntraInterFrameBlock,)  # see vsrt.utils.compile

    def __init__(self, in_channels: int, mid_channels: int, embed_dim: int, depths: Sequence[int],
                 num_heads: Sequence[int], window_size: Sequence[int], num_frames: int, img_size: int,
                 patch_size: int, cpu_cache_length: int, is_low_res_input: bool, spynet_path: str | None,
                 mask_predictor: bool, use_mask: bool, use_checkpoint: bool, mask_execution: str = "auto") -> None:
        window = as_size3(window_size)
        if window[0] != 3:
            raise ValueError(f"window_size must span the 3 stacked frames (window_size[0] == 3); got {window}")

        def make_aligner() -> nn.Module:
            return IntraInterFrameTransformer(in_channels, embed_dim, depths, num_heads, window,
                                              mask_predictor=mask_predictor, use_checkpoint=use_checkpoint)

        super().__init__(in_channels, mid_channels, embed_dim, cpu_cache_length, is_low_res_input,
                         spynet_path, make_aligner)
        self.window_size = window
        self.num_frames = num_frames  # official bookkeeping only
        self.img_size = img_size
        self.patch_size = patch_size
        self.use_mask = use_mask and mask_predictor
        self.mask_execution = check_execution_mode(mask_execution)

    @property
    def skip_masked_tokens(self) -> bool:
        """Deprecated: ``mask_execution != 'dense'``."""
        return self.mask_execution != "dense"

    @skip_masked_tokens.setter
    def skip_masked_tokens(self, value: bool) -> None:
        warnings.warn("skip_masked_tokens is deprecated: set mask_execution to 'gather' (True) or 'dense' "
                      "(False) instead", DeprecationWarning, stacklevel=2)
        self.mask_execution = "gather" if value else "dense"

    def shift_mask(self, h: int, w: int, device: torch.device) -> torch.Tensor:
        """Rows of the current (last) frame, ``(nW, wh*ww, N)``, windows in :func:`window_index` order."""
        wd, wh, ww = self.window_size
        padded = (wd, -(-h // wh) * wh, -(-w // ww) * ww)
        shift = (wd, wh // 2, ww // 2)
        order = window_index(padded, self.window_size, shift, (0, 1), (1, 1), 1, device).order
        return shifted_window_mask(padded, self.window_size, shift, device, order=order, num_queries=wh * ww)

    def make_step(self, name: str, attn_mask: torch.Tensor, records: list) -> StepFn:
        aligner = self.patch_align[name]
        memory = StepMemory(gather=not sync_free(attn_mask, self.mask_execution)) if self.use_mask else None

        def step(current: torch.Tensor, aligned_1: torch.Tensor | None,
                 aligned_2: torch.Tensor | None) -> torch.Tensor:
            if aligned_1 is None:  # first step: the current frame three times
                cond = torch.stack([current, current, current], dim=1)
            else:  # at the first recurrent step the official repeats the previous output
                aligned_2 = aligned_1 if aligned_2 is None else aligned_2
                cond = torch.stack([aligned_2, aligned_1, current], dim=1)  # (n, 3, c, h, w)
            if memory is not None:
                memory.kept = []
            out = aligner(cond, attn_mask.to(current.dtype), memory)
            records.append(memory.kept if memory is not None else None)
            return out

        return step

    def forward(self, lqs: torch.Tensor, return_masks: bool = False
                ) -> torch.Tensor | tuple[torch.Tensor, list | None]:
        """``(n, t, 3, h, w)`` -> ``(n, t, 3, 4h, 4w)`` (not clamped).

        With ``return_masks=True`` returns ``(out, masks)``; ``masks`` is None without
        mask prediction, else ``masks[branch][step][block]`` = fraction of the frame's
        pixels whose attention projection and MLP were computed (0-d tensor, padding
        excluded, differentiable in training: the official sparsity loss averages these;
        None at each branch's first step, where every token is computed).
        Branches in the order backward_1, forward_1, backward_2, forward_2; steps in
        processing order.
        """
        out, records = self.run(lqs)
        if not return_masks:
            return out
        masks = [records[name] for name in self.branch_names] if self.use_mask else None
        return out, masks


@ARCH_REGISTRY.register()
class MIAVSR(IntraInterFrameNet):
    """MIA-VSR, x4. Args as the official ``MIAVSR`` (see :class:`BasicRecurrentSwin`), plus

    use_mask: predict token masks and skip unchanged tokens (False: compute every
        token; the ``predmask`` parameters exist either way).
    mask_execution: how eval skips the unchanged tokens (same outputs): ``gather`` computes
        only the kept tokens (data-dependent shapes, fastest on the CPU), ``dense`` computes
        every token and selects with ``torch.where`` (no host-device synchronisation, for
        GPUs and ``torch.compile``), ``auto`` (default) picks ``gather`` for CPU inputs and
        ``dense`` otherwise, at every forward. (Replaces the ``skip_masked_tokens``
        attribute: True is ``gather``, False ``dense``.)
    use_checkpoint: activation checkpointing of every transformer block while training
        (the official code always does it; False trades memory for speed).
    """

    scale = 4
    tiny_config: ClassVar[dict] = {"mid_channels": 8, "embed_dim": 12, "depths": (2,), "num_heads": (2,)}

    def __init__(self, in_channels: int = 3, mid_channels: int = 64, embed_dim: int = 120,
                 depths: Sequence[int] = (6, 6, 6, 6, 6, 6), num_heads: Sequence[int] = (6, 6, 6, 6, 6, 6),
                 window_size: Sequence[int] = (3, 8, 8), num_frames: int = 3, img_size: int = 64,
                 patch_size: int = 1, cpu_cache_length: int = 100, is_low_res_input: bool = True,
                 use_mask: bool = True, spynet_path: str | None = None, use_checkpoint: bool = True,
                 mask_execution: str = "auto") -> None:
        super().__init__(in_channels, mid_channels, embed_dim, depths, num_heads, window_size, num_frames,
                         img_size, patch_size, cpu_cache_length, is_low_res_input, spynet_path,
                         mask_predictor=True, use_mask=use_mask, use_checkpoint=use_checkpoint,
                         mask_execution=mask_execution)
