"""BasicSR parity of the metrics, colour conversions, resize, tensor/image conversions,
pixel losses and lr schedules.

Golden values come from upstream BasicSR (format: ``shared/parity/core/README.md``).
Every case of the vendored subset in ``tests/fixtures/parity/core`` runs always;
every case of ``../shared/parity/core`` runs too when that folder exists.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from helpers import decode_core_fixture, parity_folders
from vsrt.archs.flow.warp import flow_warp
from vsrt.losses.basic_loss import CharbonnierLoss, L1Loss, MSELoss
from vsrt.metrics import (
    calculate_psnr,
    calculate_psnr_pt,
    calculate_ssim,
    calculate_ssim_pt,
    reorder_image,
    to_y_channel,
)
from vsrt.models.lr_scheduler import CosineAnnealingRestartLR, MultiStepRestartLR
from vsrt.utils import (
    bgr2ycbcr,
    img2tensor,
    imresize,
    rgb2ycbcr,
    rgb2ycbcr_pt,
    tensor2img,
    tensor2img_fast,
    ycbcr2bgr,
    ycbcr2rgb,
)

VENDORED = Path(__file__).resolve().parent / "fixtures" / "parity" / "core"

# recorded upstream name (last dotted component) -> vsrt implementation
IMPLEMENTATIONS: dict[str, Callable[..., Any]] = {
    "calculate_psnr": calculate_psnr, "calculate_ssim": calculate_ssim,
    "calculate_psnr_pt": calculate_psnr_pt, "calculate_ssim_pt": calculate_ssim_pt,
    "to_y_channel": to_y_channel, "reorder_image": reorder_image,
    "bgr2ycbcr": bgr2ycbcr, "rgb2ycbcr": rgb2ycbcr, "rgb2ycbcr_pt": rgb2ycbcr_pt,
    "ycbcr2bgr": ycbcr2bgr, "ycbcr2rgb": ycbcr2rgb, "imresize": imresize,
    "img2tensor": img2tensor, "tensor2img": tensor2img, "tensor2img_fast": tensor2img_fast,
    "L1Loss": L1Loss, "MSELoss": MSELoss, "CharbonnierLoss": CharbonnierLoss,
    "CosineAnnealingRestartLR": CosineAnnealingRestartLR, "MultiStepRestartLR": MultiStepRestartLR,
    "flow_warp": flow_warp,
}
FIXTURE_FILES = (
    "calculate_psnr", "calculate_ssim", "calculate_psnr_pt", "calculate_ssim_pt", "to_y_channel",
    "reorder_image", "bgr2ycbcr", "rgb2ycbcr", "rgb2ycbcr_pt", "ycbcr2bgr", "ycbcr2rgb", "imresize",
    "img2tensor", "tensor2img", "tensor2img_fast", "losses", "lr_scheduler", "flow_warp",
)


def run_lr_schedule(cls: type, case: dict[str, Any]) -> list[list[float]]:
    """One param group per base lr; the lrs at construction and after each step."""
    harness = case["harness_args"]
    groups = [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": lr} for lr in harness["base_lrs"]]
    optimizer = torch.optim.Adam(groups, lr=harness["base_lrs"][0])
    scheduler = cls(optimizer, **decode_core_fixture(case.get("init_kwargs", {})))
    lrs = [[group["lr"] for group in optimizer.param_groups]]
    for _ in range(harness["num_steps"]):
        optimizer.step()
        scheduler.step()
        lrs.append([group["lr"] for group in optimizer.param_groups])
    return lrs


def run_case(fn: Callable[..., Any], case: dict[str, Any]) -> Any:
    case = copy.deepcopy(case)
    harness = case.get("harness", "call")
    args, kwargs = decode_core_fixture(case.get("args", [])), decode_core_fixture(case.get("kwargs", {}))
    if harness == "call":
        return fn(*args, **kwargs)
    if harness == "construct_call":
        module = fn(**decode_core_fixture(case.get("init_kwargs", {})))
        with torch.no_grad():
            return module(*args, **kwargs)
    if harness == "lr_schedule":
        return run_lr_schedule(fn, case)
    raise ValueError(f"unknown harness {harness!r}")


def assert_matches(got: Any, want: Any, rtol: float, atol: float, where: str = "result") -> None:
    """Integers exactly; floats within ``atol + rtol * |want|``; same types, dtypes and shapes."""
    if isinstance(want, (list, tuple)):
        assert isinstance(got, (list, tuple)) and len(got) == len(want), f"{where}: {got!r}"
        for i, (g, w) in enumerate(zip(got, want)):
            assert_matches(g, w, rtol, atol, f"{where}[{i}]")
        return
    if isinstance(want, torch.Tensor):
        assert isinstance(got, torch.Tensor), f"{where}: expected a tensor, got {type(got).__name__}"
        assert got.dtype == want.dtype, f"{where}: dtype {got.dtype} != {want.dtype}"
        got, want = got.detach().cpu().numpy(), want.numpy()
    elif isinstance(want, np.ndarray):
        assert isinstance(got, np.ndarray), f"{where}: expected ndarray, got {type(got).__name__}"
        assert got.dtype == want.dtype, f"{where}: dtype {got.dtype} != {want.dtype}"
    else:  # a python / numpy scalar
        got = got.item() if isinstance(got, torch.Tensor) else got
        if math.isinf(float(want)) or math.isnan(float(want)):
            assert float(got) == float(want) or (math.isnan(float(want)) and math.isnan(float(got)))
        else:
            error = abs(float(got) - float(want))
            assert error <= atol + rtol * abs(float(want)), f"{where}: {got} != {want}"
        return
    assert got.shape == want.shape, f"{where}: shape {got.shape} != {want.shape}"
    if want.dtype.kind in "biu":
        np.testing.assert_array_equal(got, want, err_msg=where)
    else:
        np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=rtol, atol=atol,
                                   err_msg=where)


def _cases() -> list[Any]:
    params = []
    for tag, folder in parity_folders("core"):
        for name in FIXTURE_FILES:
            path = folder / f"{name}.pt"
            if path.is_file():
                params += [pytest.param(case, id=f"{tag}:{case['id']}")
                           for case in torch.load(path, map_location="cpu", weights_only=True)]
    return params


@pytest.mark.parametrize("case", _cases())
def test_core_parity(case: dict[str, Any]) -> None:
    fn = IMPLEMENTATIONS[case["function"].rsplit(".", 1)[-1]]
    want = decode_core_fixture(case["result"])
    if isinstance(want, dict) and "__raises__" in want:
        with pytest.raises(Exception) as info:
            run_case(fn, case)
        names = [cls.__name__ for cls in type(info.value).__mro__]
        assert want["__raises__"] in names, f"raised {names[0]}, expected {want['__raises__']}"
        return
    tol = {"rtol": 1e-6, "atol": 1e-6, **case.get("tol", {})}
    assert_matches(run_case(fn, case), want, tol["rtol"], tol["atol"])


def test_every_vendored_fixture_is_present() -> None:
    missing = [name for name in FIXTURE_FILES if not (VENDORED / f"{name}.pt").is_file()]
    assert not missing, f"vendored fixtures missing: {missing}"


def naive_flow_warp(x: np.ndarray, flow: np.ndarray, padding_mode: str) -> np.ndarray:
    """Bilinear sampling of ``x`` (c, h, w) at ``(col + dx, row + dy)``, one pixel at a time.

    ``zeros``: taps outside the image count as 0; ``border``: the position is clamped to the image first.
    """
    c, h, w = x.shape
    out = np.zeros_like(x)
    for row in range(h):
        for col in range(w):
            px, py = col + flow[row, col, 0], row + flow[row, col, 1]
            if padding_mode == "border":
                px, py = min(max(px, 0.0), w - 1.0), min(max(py, 0.0), h - 1.0)
            x0, y0 = math.floor(px), math.floor(py)
            for ty, wy in ((y0, 1 - (py - y0)), (y0 + 1, py - y0)):
                for tx, wx in ((x0, 1 - (px - x0)), (x0 + 1, px - x0)):
                    if 0 <= ty < h and 0 <= tx < w:
                        out[:, row, col] += wy * wx * x[:, ty, tx]
    return out


@pytest.mark.parametrize("padding_mode", ["zeros", "border"])
def test_flow_warp_equals_naive_bilinear_sampling(padding_mode: str) -> None:
    """Random sub-pixel flows reaching 3 px beyond the borders, against the per-pixel formula."""
    rng = np.random.default_rng(0)
    x = rng.random((2, 3, 7, 9))
    flow = rng.uniform(-3.0, 3.0, (2, 7, 9, 2))
    got = flow_warp(torch.from_numpy(x), torch.from_numpy(flow), padding_mode=padding_mode).numpy()
    want = np.stack([naive_flow_warp(x[i], flow[i], padding_mode) for i in range(2)])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_flow_warp_integer_flow_is_a_shift() -> None:
    """dx = 2, dy = -1: out[y, x] = in[y - 1, x + 2], zeros from outside (dx is channel 0)."""
    x = torch.arange(2 * 5 * 6, dtype=torch.float64).view(1, 2, 5, 6)
    flow = torch.zeros(1, 5, 6, 2, dtype=torch.float64)
    flow[..., 0], flow[..., 1] = 2.0, -1.0
    want = torch.zeros_like(x)
    want[:, :, 1:, :4] = x[:, :, :4, 2:]
    torch.testing.assert_close(flow_warp(x, flow), want, rtol=0, atol=1e-12)
    torch.testing.assert_close(flow_warp(x, flow, interp_mode="nearest"), want, rtol=0, atol=0)
