"""Optical flow: SpyNet and the warps that use its flows."""
