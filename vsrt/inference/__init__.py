"""Inference for people: loading (option file / zoo / weights), clip running with precision and
tiling, benchmark scoring and reports, and the streaming video upscaler (``python -m vsrt upscale``).

Nothing heavy is imported here; use the submodules.
"""
