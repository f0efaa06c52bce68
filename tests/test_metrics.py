"""Behaviour of the metrics, colour helpers, image I/O, losses and schedules beyond parity."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch

from vsrt.losses import build_loss
from vsrt.metrics import (
    METRIC_REGISTRY,
    calculate_metric,
    calculate_psnr,
    calculate_psnr_pt,
    calculate_ssim,
    calculate_ssim_pt,
    to_y_channel,
)
from vsrt.models.lr_scheduler import CosineAnnealingRestartLR, MultiStepRestartLR
from vsrt.utils import bgr2ycbcr, imfrombytes, imresize, imwrite, tensor2img, ycbcr2bgr


@pytest.fixture
def image() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(40, 48, 3), dtype=np.uint8)


@pytest.mark.parametrize("y", [False, True])
def test_identical_images(image: np.ndarray, y: bool) -> None:
    assert calculate_psnr(image, image, crop_border=4, test_y_channel=y) == float("inf")
    assert calculate_ssim(image, image, crop_border=4, test_y_channel=y) == 1.0
    tensor = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    psnr = calculate_psnr_pt(tensor, tensor, 0, test_y_channel=y)
    ssim = calculate_ssim_pt(tensor, tensor, 0, test_y_channel=y)
    assert psnr.dtype == ssim.dtype == torch.float64 and psnr.shape == ssim.shape == (1,)
    assert psnr.item() == pytest.approx(80.0) and ssim.item() == pytest.approx(1.0)


def test_hand_computed_psnr() -> None:
    img = np.zeros((8, 8, 3), dtype=np.uint8)
    img2 = img.copy()
    img2[0, 0, 0] = 16  # mse = 16^2 / 192 = 4/3
    assert calculate_psnr(img, img2, crop_border=0) == pytest.approx(10 * math.log10(255**2 / (4 / 3)))
    assert calculate_psnr(img, img2, crop_border=1) == float("inf")  # the pixel is in the border


def test_shape_mismatch_is_a_clear_error(image: np.ndarray) -> None:
    for metric in (calculate_psnr, calculate_ssim):
        with pytest.raises(ValueError, match="different shapes"):
            metric(image, image[:-1], crop_border=0)
    tensor = torch.rand(1, 3, 16, 16)
    with pytest.raises(ValueError, match="different shapes"):
        calculate_psnr_pt(tensor, tensor[..., :-1], crop_border=0)


def test_bad_input_order(image: np.ndarray) -> None:
    with pytest.raises(ValueError, match="input_order"):
        calculate_psnr(image, image, crop_border=0, input_order="NHWC")


def test_y_channel_range() -> None:
    black_white = np.array([[[0, 0, 0], [255, 255, 255]]], dtype=np.uint8)
    y = to_y_channel(black_white)
    assert y.shape == (1, 2, 1) and y.dtype == np.float32
    np.testing.assert_allclose(y.ravel(), [16.0, 235.0], atol=1e-4)
    assert bgr2ycbcr(black_white, y_only=True).tolist() == [[16, 235]]


def test_y_psnr_ignores_chroma(image: np.ndarray) -> None:
    # shifting Cb only changes the colour PSNR, not the luma PSNR
    ycbcr = bgr2ycbcr(image).astype(np.int16)
    ycbcr[..., 1] = np.clip(ycbcr[..., 1] + 10, 16, 240)
    recoloured = ycbcr2bgr(ycbcr.astype(np.uint8))
    psnr_y = calculate_psnr(image, recoloured, 0, test_y_channel=True)
    assert psnr_y > calculate_psnr(image, recoloured, 0) + 5


def test_colour_conversion_rejects_float64() -> None:
    with pytest.raises(TypeError, match="float64"):
        bgr2ycbcr(np.zeros((2, 2, 3)))


def test_calculate_metric_passes_options_through(image: np.ndarray) -> None:
    noisy = np.clip(image.astype(np.int16) + 3, 0, 255).astype(np.uint8)
    opt = {"type": "calculate_psnr", "crop_border": 2, "test_y_channel": True, "better": "higher"}
    expected = calculate_psnr(image, noisy, crop_border=2, test_y_channel=True)
    assert calculate_metric({"img": image, "img2": noisy}, opt) == expected
    assert opt["type"] == "calculate_psnr"  # the caller's dict is not consumed
    registered = set(METRIC_REGISTRY.keys())
    assert {"calculate_psnr", "calculate_ssim", "calculate_psnr_pt", "calculate_ssim_pt"} <= registered
    with pytest.raises(KeyError, match="calculate_psnr"):
        calculate_metric({"img": image, "img2": noisy}, {"type": "calculate_psnrr", "crop_border": 0})


def test_tensor2img_does_not_modify_its_input() -> None:
    tensor = torch.tensor([[[-0.5, 0.25], [1.5, 0.5]]])
    before = tensor.clone()
    assert tensor2img(tensor).tolist() == [[0, 64], [255, 128]]
    assert torch.equal(tensor, before)


def test_imwrite_round_trip_and_errors(tmp_path, image: np.ndarray) -> None:
    path = tmp_path / "sub" / "frame.png"
    imwrite(image, path)
    assert np.array_equal(imfrombytes(path.read_bytes()), image)
    with pytest.raises(OSError, match="no_extension"):
        imwrite(image, tmp_path / "no_extension")
    with pytest.raises(ValueError, match="decode"):
        imfrombytes(b"not an image")


def test_imresize_any_size_without_antialiasing() -> None:
    img = np.random.default_rng(0).random((96, 96), dtype=np.float32)  # BasicSR crashes on this one
    assert imresize(img, 0.25, antialiasing=False).shape == (24, 24)
    constant = np.full((20, 30, 3), 0.5, dtype=np.float32)
    np.testing.assert_allclose(imresize(constant, 1 / 3), 0.5, atol=1e-6)


def test_build_loss_and_bad_reduction() -> None:
    loss = build_loss({"type": "CharbonnierLoss", "loss_weight": 2.0, "eps": 1e-6})
    pred, target = torch.zeros(1, 2, 3, 4, 4), torch.zeros(1, 2, 3, 4, 4)
    assert loss(pred, target).item() == pytest.approx(2e-3)  # 2 * sqrt(1e-6)
    with pytest.raises(ValueError, match="'avg'"):
        build_loss({"type": "L1Loss", "reduction": "avg"})


def test_weighted_mean_counts_channels() -> None:
    pred, target = torch.ones(1, 3, 2, 2), torch.zeros(1, 3, 2, 2)
    weight = torch.zeros(1, 1, 2, 2)
    weight[..., 0, 0] = 1  # only one pixel counts, in all 3 channels
    assert build_loss({"type": "L1Loss"})(pred, target, weight).item() == pytest.approx(1.0)


@pytest.mark.parametrize("cls, kwargs", [
    (CosineAnnealingRestartLR, {"periods": [4, 4], "restart_weights": [1, 0.5], "eta_min": 1e-7}),
    (MultiStepRestartLR, {"milestones": [2, 3, 3], "gamma": 0.5, "restarts": [0, 5],
                          "restart_weights": [1, 0.5]}),
])
def test_scheduler_resume_equals_uninterrupted(cls, kwargs) -> None:
    def make():
        optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
        return optimizer, cls(optimizer, **kwargs)

    optimizer, scheduler = make()
    lrs = []
    for _ in range(8):
        optimizer.step()
        scheduler.step()
        lrs.append(optimizer.param_groups[0]["lr"])

    optimizer, scheduler = make()
    for _ in range(3):
        optimizer.step()
        scheduler.step()
    buffer = io.BytesIO()
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    optimizer, scheduler = make()
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    resumed = lrs[:3]
    for _ in range(5):
        optimizer.step()
        scheduler.step()
        resumed.append(optimizer.param_groups[0]["lr"])
    assert resumed == lrs


def test_cosine_past_the_end_is_a_clear_error() -> None:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    scheduler = CosineAnnealingRestartLR(optimizer, periods=[2])
    optimizer.step()
    scheduler.step()
    scheduler.step()
    with pytest.raises(ValueError, match="past the end"):
        scheduler.step()
