"""IIA-VSR: MIA-VSR's intra- and inter-frame attention without token masks.

Paper: "Video Super-Resolution Transformer with Masked Inter&Intra-Frame
Attention", Zhou et al., CVPR 2024, arXiv:2401.06312 (the unmasked "IIAB"
model). Official code: LabShuHangGU/MIA-VSR (``IIAVSR`` in
``archs/iia_vsr_arch.py``, transformer in ``archs/iia_sliding_arch.py``). Keys are
MIA-VSR's minus every ``attn.predmask.*``. No official checkpoint exists.

By default this follows the paper: MIA-VSR's propagation (backward branches
visit frames t-1..0, forward branches 0..t-1) and attention, without the mask
predictor. The official release differs in two ways: its transformer raises a
NameError on every call (the line defining ``n, t, c, h, w`` is commented out;
the parity fixtures were made with those names restored), and its ``propagate``
runs *all four* branches in reverse frame order with flow index = frame index
(so forward branches use ``flows_forward[:, f]``), re-reversing only the
backward branches' lists. ``official_release_order=True`` reproduces that order
(and so the shared parity fixtures); it is off by default because it is a bug.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from vsrt.archs.layers.recurrent import BranchSchedule, standard_schedule
from vsrt.archs.mia_vsr_arch import IntraInterFrameNet
from vsrt.registry import ARCH_REGISTRY


@ARCH_REGISTRY.register()
class IIAVSR(IntraInterFrameNet):
    """IIA-VSR, x4. Args as the official ``IIAVSR`` (= :class:`MIAVSR` without ``use_mask``), plus

    official_release_order: reproduce the released code's frame order (all
        branches backwards in time, see the module docstring). Default False.
    use_checkpoint: activation checkpointing of every transformer block while training.
    """

    scale = 4
    tiny_config: ClassVar[dict] = {"mid_channels": 8, "embed_dim": 12, "depths": (2,), "num_heads": (2,)}

    def __init__(self, in_channels: int = 3, mid_channels: int = 64, embed_dim: int = 120,
                 depths: Sequence[int] = (6, 6, 6, 6, 6, 6), num_heads: Sequence[int] = (6, 6, 6, 6, 6, 6),
                 window_size: Sequence[int] = (3, 8, 8), num_frames: int = 3, img_size: int = 64,
                 patch_size: int = 1, cpu_cache_length: int = 100, is_low_res_input: bool = True,
                 spynet_path: str | None = None, official_release_order: bool = False,
                 use_checkpoint: bool = True) -> None:
        super().__init__(in_channels, mid_channels, embed_dim, depths, num_heads, window_size, num_frames,
                         img_size, patch_size, cpu_cache_length, is_low_res_input, spynet_path,
                         mask_predictor=False, use_mask=False, use_checkpoint=use_checkpoint)
        self.official_release_order = official_release_order

    def schedule(self, name: str, num_frames: int) -> BranchSchedule:
        if not self.official_release_order:
            return standard_schedule(name, num_frames)
        visit = list(range(num_frames - 1, -1, -1))
        return BranchSchedule(visit, visit, name.startswith("backward"))


def iia_vsr_official_release(**kwargs: Any) -> IIAVSR:
    """``IIAVSR(official_release_order=True, **kwargs)``: the released code's behaviour.

    A ``module:callable`` for the shared parity checker, which builds candidates from the
    official keyword arguments alone:
    ``python ../shared/parity/check.py FIXTURE --candidate vsrt.archs.iia_vsr_arch:iia_vsr_official_release``.
    """
    return IIAVSR(**kwargs, official_release_order=True)
