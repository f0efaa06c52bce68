"""Image utilities shared by data, models and metrics.

Only numpy, OpenCV and torch are imported here; anything heavier is imported
where it is used.
"""

from vsrt.utils.color import bgr2ycbcr, rgb2ycbcr, rgb2ycbcr_pt, ycbcr2bgr, ycbcr2rgb
from vsrt.utils.img_util import (
    imfrombytes,
    img2tensor,
    imwrite,
    tensor2img,
    tensor2img_fast,
)
from vsrt.utils.matlab_resize import imresize

__all__ = [
    "bgr2ycbcr",
    "imfrombytes",
    "img2tensor",
    "imresize",
    "imwrite",
    "rgb2ycbcr",
    "rgb2ycbcr_pt",
    "tensor2img",
    "tensor2img_fast",
    "ycbcr2bgr",
    "ycbcr2rgb",
]
