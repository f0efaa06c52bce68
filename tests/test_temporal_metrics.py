"""tOF and the warping error on constructed clips with known answers, and against a numpy re-computation."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from vsrt.metrics import (
    METRIC_REGISTRY,
    calculate_metric,
    calculate_tof,
    calculate_warping_error,
    is_clip_metric,
    metric_better,
)

H, W, FRAMES, MARGIN = 48, 64, 5, 16


def _texture(seed: int = 0) -> np.ndarray:
    """Smooth random texture (Gaussian blur, sigma 3), wider than a frame so that frames can pan over it."""
    noise = np.random.default_rng(seed).random((H, W + 2 * MARGIN)).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), 3)
    return (smooth - smooth.min()) / (smooth.max() - smooth.min())


TEXTURE = _texture()


def _frame(shift: int) -> np.ndarray:
    """uint8 BGR frame of the texture, content moved ``shift`` pixels to the right."""
    window = TEXTURE[:, MARGIN - shift:MARGIN - shift + W]
    gray = np.round(window * 255).astype(np.uint8)
    return np.repeat(gray[..., None], 3, axis=2)


def _clip(step: int) -> list[np.ndarray]:
    return [_frame(step * t) for t in range(FRAMES)]


def _flicker(frames: list[np.ndarray], amplitude: int) -> list[np.ndarray]:
    """Brightness alternating by -amplitude / +amplitude from frame to frame."""
    return [np.clip(f.astype(int) + (amplitude if t % 2 else -amplitude), 0, 255).astype(np.uint8)
            for t, f in enumerate(frames)]


def test_registered_as_clip_metrics() -> None:
    for name in ("calculate_tof", "calculate_warping_error"):
        assert name in METRIC_REGISTRY.keys() and is_clip_metric(name)
    assert not is_clip_metric("calculate_psnr")
    # validation keeps the best value of each metric: the lowest for these unless the block says otherwise
    assert metric_better({"type": "calculate_warping_error"}) == "lower"
    assert metric_better({"type": "calculate_psnr"}) == "higher"
    assert metric_better({"type": "calculate_ssim", "better": "lower"}) == "lower"
    clip = _clip(1)
    assert calculate_metric({"imgs": clip, "imgs2": _clip(0)}, {"type": "calculate_tof", "better": "lower"}) \
        == calculate_tof(clip, _clip(0))


def test_static_clip_scores_zero() -> None:
    static = _clip(0)
    assert calculate_tof(static, static) == 0.0  # the same flows on both sides
    # Farneback returns up to ~0.04 px of flow on identical frames; the warped frame then differs by at
    # most 0.04 px times the texture gradient (< 0.03 / px), so squared errors stay far below 1e-6
    assert calculate_warping_error(static, static) < 1e-6


@pytest.mark.parametrize("step", [1, 2, 3])
def test_constant_motion_against_static_gt_gives_the_shift(step: int) -> None:
    """Output panning ``step`` px per frame while the GT stands still: the flow difference is the shift.

    Measured inside an 8-pixel border (Farneback's 15-px windows are less accurate at the frame edge):
    within 0.01 px for integer shifts of a smooth texture; 0.02 px is the tolerance (1-2 % of the value)."""
    value = calculate_tof(_clip(step), _clip(0), crop_border=8)
    assert value == pytest.approx(step, abs=0.02)
    # the motion estimated on an output that follows the GT exactly cancels
    assert calculate_tof(_clip(step), _clip(step), crop_border=8) == 0.0


def test_flicker_on_static_gt_gives_the_known_warping_error() -> None:
    """Static GT, output flickering by +-8 grey levels: every pair differs by 16/255 everywhere."""
    static = _clip(0)
    flicker = _flicker(static, 8)
    assert calculate_warping_error(flicker, static) == pytest.approx((16 / 255) ** 2, rel=1e-3)


def test_flickering_copy_scores_worse() -> None:
    moving = _clip(2)
    flicker = _flicker(moving, 8)
    assert calculate_warping_error(moving, moving) < 1e-4
    assert calculate_warping_error(flicker, moving) > 30 * calculate_warping_error(moving, moving)
    assert calculate_warping_error(flicker, moving) == pytest.approx((16 / 255) ** 2, rel=0.05)
    assert calculate_tof(flicker, moving) > calculate_tof(moving, moving) == 0.0


def _numpy_warping_error(frames: list[np.ndarray], references: list[np.ndarray]) -> float:
    """Independent E_warp: numpy bilinear sampling, the forward-backward test written out per pixel."""
    def bilinear(image: np.ndarray, px: np.ndarray, py: np.ndarray) -> np.ndarray:
        x0, y0 = np.floor(px).astype(int), np.floor(py).astype(int)
        fx, fy = (px - x0)[..., None], (py - y0)[..., None]
        x0c, x1c = np.clip(x0, 0, W - 1), np.clip(x0 + 1, 0, W - 1)
        y0c, y1c = np.clip(y0, 0, H - 1), np.clip(y0 + 1, 0, H - 1)
        return ((1 - fy) * ((1 - fx) * image[y0c, x0c] + fx * image[y0c, x1c])
                + fy * ((1 - fx) * image[y1c, x0c] + fx * image[y1c, x1c]))

    params = (0.5, 3, 15, 3, 5, 1.2, 0)  # TecoGAN's Farneback arguments
    gray = [cv2.cvtColor(r, cv2.COLOR_BGR2GRAY) for r in references]
    errors = []
    for t in range(1, len(frames)):
        back = cv2.calcOpticalFlowFarneback(gray[t], gray[t - 1], None, *params).astype(np.float64)
        fwd = cv2.calcOpticalFlowFarneback(gray[t - 1], gray[t], None, *params).astype(np.float64)
        ys, xs = np.mgrid[0:H, 0:W].astype(np.float64)
        px, py = xs + back[..., 0], ys + back[..., 1]
        inside = (px >= 0) & (px <= W - 1) & (py >= 0) & (py <= H - 1)
        fwd_at = bilinear(fwd, px, py)
        gap = ((back + fwd_at) ** 2).sum(-1)
        valid = inside & (gap <= 0.01 * ((back ** 2).sum(-1) + (fwd_at ** 2).sum(-1)) + 0.5)
        warped = bilinear(frames[t - 1].astype(np.float64) / 255, px, py)
        squared = ((frames[t].astype(np.float64) / 255 - warped) ** 2).mean(-1)
        errors.append(squared[valid].mean())
    return float(np.mean(errors))


def test_warping_error_matches_a_numpy_computation() -> None:
    references = _clip(2)
    rng = np.random.default_rng(1)
    noisy = [np.clip(f.astype(int) + rng.integers(-6, 7, f.shape), 0, 255).astype(np.uint8) for f in references]
    # an occluding square that jumps around: the consistency mask must drop part of the frame
    for t, frame in enumerate(references):
        frame[10 + 5 * (t % 2):26 + 5 * (t % 2), 20 + 7 * t:36 + 7 * t] = 255
    expected = _numpy_warping_error(noisy, references)
    assert calculate_warping_error(noisy, references) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_tof_matches_a_numpy_computation() -> None:
    outputs, references = _flicker(_clip(1), 20), _clip(2)
    params = (0.5, 3, 15, 3, 5, 1.2, 0)
    pairs = []
    for t in range(1, FRAMES):
        flows = [cv2.calcOpticalFlowFarneback(cv2.cvtColor(c[t - 1], cv2.COLOR_BGR2GRAY),
                                              cv2.cvtColor(c[t], cv2.COLOR_BGR2GRAY), None, *params)
                 for c in (outputs, references)]
        pairs.append(np.hypot(*np.moveaxis(flows[0] - flows[1], -1, 0))[4:-4, 4:-4].mean())
    assert calculate_tof(outputs, references, crop_border=4) == pytest.approx(np.mean(pairs), rel=1e-6)


def test_bad_inputs_are_clear_errors() -> None:
    clip = _clip(0)
    with pytest.raises(ValueError, match="imgs has 5 frames but imgs2 has 4"):
        calculate_tof(clip, clip[:4])
    with pytest.raises(ValueError, match="at least 2 frames"):
        calculate_warping_error(clip[:1], clip[:1])
    with pytest.raises(ValueError, match="uint8"):
        calculate_tof([f.astype(np.float32) for f in clip], clip)
    with pytest.raises(ValueError, match="frame 2"):
        calculate_tof(clip, clip[:2] + [f[:-1] for f in clip[2:]])
    with pytest.raises(ValueError, match="not a clip"):
        calculate_tof(clip[0], clip[0])
    with pytest.raises(ValueError, match="lower-is-better"):
        calculate_tof(clip, clip, better="higher")
    with pytest.raises(TypeError):
        calculate_metric({"imgs": clip, "imgs2": clip}, {"type": "calculate_tof", "crop_boder": 4})
