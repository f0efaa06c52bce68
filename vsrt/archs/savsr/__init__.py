"""Building blocks of SAVSR (the network itself is ``vsrt.archs.savsr_arch.SAVSR``)."""

from vsrt.archs.savsr.blocks import OSAdapt, ResidualGroup
from vsrt.archs.savsr.osconv import OSConv2d, ScaleAttention, SingleValueSafeBatchNorm2d
from vsrt.archs.savsr.scale import Scale, as_scale_pair, sr_size
from vsrt.archs.savsr.upsample import STAUpsample
from vsrt.archs.savsr.window import MultiInputResidualBlock, WindowUnitL1, WindowUnitL2

__all__ = [
    "MultiInputResidualBlock", "OSAdapt", "OSConv2d", "ResidualGroup", "STAUpsample", "Scale", "ScaleAttention",
    "SingleValueSafeBatchNorm2d", "WindowUnitL1", "WindowUnitL2", "as_scale_pair", "sr_size",
]
