"""VRT (Video Restoration Transformer): TMSA blocks, multi-scale stages, the network."""

from vsrt.archs.vrt.vrt_arch import VRT

__all__ = ["VRT"]
