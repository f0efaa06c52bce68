"""How each benchmark test set is scored, and its clips' names: light (no torch), so that the scripts can
check their arguments before the slow imports."""

from __future__ import annotations

from dataclasses import dataclass

REDS4_CLIPS = ("000", "011", "015", "020")
# what the results table calls each test set
DATASET_TITLES = {"reds4": "REDS4", "vimeo90k": "Vimeo-90K-T", "vid4": "Vid4", "udm10": "UDM10"}


@dataclass(frozen=True)
class Protocol:
    """How a test set is scored (see docs/metrics.md)."""

    dataset: str
    test_y_channel: bool
    crop_border: int = 0
    centre_frame_only: bool = False

    @property
    def channel(self) -> str:
        return "Y" if self.test_y_channel else "RGB"


PROTOCOLS = {
    "reds4": Protocol("reds4", test_y_channel=False),
    "vimeo90k": Protocol("vimeo90k", test_y_channel=True, centre_frame_only=True),
    # frame interpolation (VRT task 009): the one new frame, RGB, as the VRT paper reports it
    "vimeo90k_interpolation": Protocol("vimeo90k", test_y_channel=False),
    "vid4": Protocol("vid4", test_y_channel=True),
    "udm10": Protocol("udm10", test_y_channel=True),
}
