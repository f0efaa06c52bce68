"""Copy the vendored golden subset of ``../shared/parity`` into ``tests/fixtures/parity``.

A user's clone has no ``../shared``; the subset written here gives every architecture's inference path and
the core functions a golden check there (``tests/fixtures/README.md``). Network cases keep the official
state dict (fp32, official keys), inputs and kwargs unchanged. Two reductions keep the folder under 20 MB:

* the unchecked ``intermediates`` entry is dropped;
* for the cases in ``OUTPUT_STRIDE`` only every ``s``-th output row and column is kept (``outputs['out'][...,
  ::s, ::s]``, and the case gets ``output_stride = s``). The network still runs on the whole input, so the
  kept values are exact; with ``s = 3`` (coprime to the x2/x4 pixel-shuffle factors) every sub-pixel phase
  of the upsampler is still compared.

Core files (lists of cases) keep the case ids listed in ``CORE_CASES`` (``None``: every case).

    python scripts/vendor_parity_fixtures.py [--shared ../shared/parity] [--check]

``--check`` writes nothing and fails if a vendored file differs from what this script would write.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
VENDORED = REPO_ROOT / "tests" / "fixtures" / "parity"

# family/file -> kept output stride (1: the whole output)
NETWORK_CASES: dict[str, int] = {
    "vrt/vrt_sr_reds6_pa2_dg12.pt": 3,
    "vrt/vrt_testvideo_sr_tiled.pt": 3,
    "vrt/vrt_denoise_pa2_dg16.pt": 1,
    "vrt/vrt_sr_vimeo_pa4_dg16.pt": 3,  # pa_frames 4: the composed two-frame flows
    "vrt/vrt_vfi_4frames.pt": 1,
    "psrt_recurrent/psrt_recurrent_t3_64x66.pt": 3,
    "mia_vsr/mia_vsr_t3_64x68.pt": 3,
    "mia_vsr/mia_vsr_nomask_t2_64x64.pt": 3,
    "iia_vsr/iia_vsr_t3_64x64.pt": 3,
    "savsr/savsr_t7_interval1_fw3_x2.9_x1.9.pt": 1,
    "savsr/savsr_t7_x1.5_x3.8.pt": 1,
    "savsr_resize/savsr_resize_raw_core_x2_45x75.pt": 1,
    "savsr_resize/savsr_resize_test_core_x1.5_x3.8.pt": 1,
    "savsr_resize/savsr_resize_test_torch_x1.5_x3.8.pt": 1,
}

CORE_CASES: dict[str, list[str] | None] = {
    "bgr2ycbcr": ["uint8_y1", "float32_y0", "float64_raises"],
    "calculate_psnr": ["building_noise8/hwc_crop4_y1", "home_gray_jpeg50/gray2d_crop4_y0",
                       "home_gray_jpeg50/gray2d_crop4_y1"],
    "calculate_psnr_pt": ["baboon_bicx4+apple_jpeg30/f64_crop4_y1", "baboon_bicx4/identical"],
    "calculate_ssim": ["building_noise8/hwc_crop4_y1", "home_gray_jpeg50/gray2d_crop4_y0",
                       "home_gray_jpeg50/gray2d_crop4_y1"],
    "calculate_ssim_pt": ["baboon_bicx4+apple_jpeg30/f64_crop4_y1", "baboon_bicx4/identical"],
    "duf_downsample": ["b2t2_x4", "t2_x3"],
    "flow_warp": ["farneback_bilinear_zeros", "big_bilinear_border", "big_bilinear_reflection",
                  "big_nearest_zeros", "big_bilinear_zeros_alignFalse", "batch2_c8_bilinear_zeros",
                  "float64_bilinear_border", "width1_bilinear_zeros"],
    "generate_frame_indices": None,
    "generate_gaussian_kernel": None,
    "img2tensor": ["uint8_default", "float64_bgr2rgb_nofloat", "gray_hw1", "list"],
    "imresize": None,
    "losses": ["L1Loss_none_w0.5", "MSELoss_none_w0.5", "MSELoss_mean_weighted", "CharbonnierLoss_none_w0.5"],
    "lr_scheduler": None,
    "mod_crop": None,
    "reorder_image": None,
    "rgb2ycbcr": ["uint8_y0", "float64_raises"],
    "rgb2ycbcr_pt": None,
    "tensor2img": ["chw_default", "chw_float32", "gray_1hw", "batch3_grid", "list"],
    "tensor2img_fast": ["1chw"],
    "to_y_channel": None,
    "ycbcr2bgr": ["uint8"],
    "ycbcr2rgb": ["uint8"],
}


def vendored_network_case(case: dict[str, Any], stride: int) -> dict[str, Any]:
    """The case as vendored: no ``intermediates``; outputs ``[..., ::stride, ::stride]`` when ``stride > 1``."""
    if "intermediates" in case:
        case = {key: value for key, value in case.items() if key != "intermediates"}
        case["notes"] = (f"{case.get('notes', '')} [vsrt: vendored copy without the unchecked `intermediates`; "
                         "all other entries unchanged.]")
    if stride > 1:
        # (..., H, W) -> (..., ceil(H / s), ceil(W / s)); clone so that only the kept values are saved
        case["outputs"] = {**case["outputs"], "out": case["outputs"]["out"][..., ::stride, ::stride].clone()}
        case["output_stride"] = stride
        case["notes"] = (f"{case['notes']} [vsrt: vendored subset: outputs['out'] keeps every "
                         f"{stride}th row and column of the official output (output_stride); the rest unchanged.]")
    return case


def vendored_core_cases(cases: list[dict[str, Any]], ids: list[str] | None) -> list[dict[str, Any]]:
    """The listed cases (ids without the ``shared/<family>/`` prefix), in the listed order."""
    if ids is None:
        return cases
    by_suffix = {case["id"].split("/", 2)[-1]: case for case in cases}
    missing = [case_id for case_id in ids if case_id not in by_suffix]
    if missing:
        raise KeyError(f"core cases not in the shared file: {missing}")
    return [by_suffix[case_id] for case_id in ids]


def planned_files(shared: Path) -> dict[Path, Any]:
    """Vendored path -> the object to save there."""
    planned: dict[Path, Any] = {}
    for name, stride in NETWORK_CASES.items():
        case = torch.load(shared / name, map_location="cpu", weights_only=True)
        planned[VENDORED / name] = vendored_network_case(case, stride)
    for name, ids in CORE_CASES.items():
        cases = torch.load(shared / "core" / f"{name}.pt", map_location="cpu", weights_only=True)
        planned[VENDORED / "core" / f"{name}.pt"] = vendored_core_cases(cases, ids)
    return planned


def same(a: Any, b: Any) -> bool:
    """Exact structural equality (tensors: dtype, shape and values, NaNs equal)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.dtype == b.dtype
                and a.shape == b.shape and torch.equal(torch.nan_to_num(a), torch.nan_to_num(b)))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[key], b[key]) for key in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=REPO_ROOT.parent / "shared" / "parity",
                        help="the shared parity folder (default: ../shared/parity)")
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    if not args.shared.is_dir():
        parser.error(f"--shared {args.shared}: no such folder")
    differing = []
    for path, obj in planned_files(args.shared).items():
        if path.is_file() and same(torch.load(path, map_location="cpu", weights_only=True), obj):
            continue  # unchanged files keep their bytes
        if args.check:
            differing.append(str(path.relative_to(REPO_ROOT)))
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(obj, path)
    total = sum(p.stat().st_size for p in VENDORED.rglob("*") if p.is_file())
    print(f"tests/fixtures/parity: {total / 2**20:.1f} MiB")
    for name in differing:
        print(f"DIFFERS: {name}")
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
