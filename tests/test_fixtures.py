"""The vendored golden fixtures: every main path is covered, they stay small, and they equal ../shared's.

A user's clone has only ``tests/fixtures``; ``VSRT_NO_SHARED=1`` runs the suite that way here.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from helpers import REPO_ROOT, USE_SHARED_PARITY, VENDORED_PARITY, load_script

MAX_BYTES = 20_000_000


def load(relative: str) -> dict:
    return torch.load(VENDORED_PARITY / relative, map_location="cpu", weights_only=True)


def test_vendored_fixtures_stay_under_20_mb() -> None:
    total = sum(path.stat().st_size for path in (REPO_ROOT / "tests" / "fixtures").rglob("*") if path.is_file())
    assert total <= MAX_BYTES, f"tests/fixtures holds {total / 1e6:.1f} MB (limit {MAX_BYTES / 1e6:.0f} MB)"


@pytest.mark.parametrize(("relative", "network", "what"), [
    ("vrt/vrt_sr_reds6_pa2_dg12.pt", "VRT", "x4 SR, REDS 6-frame family, whole clip"),
    ("vrt/vrt_testvideo_sr_tiled.pt", "VRT", "x4 SR through the tiled test_video procedure"),
    ("vrt/vrt_sr_vimeo_pa4_dg16.pt", "VRT", "x4 SR with pa_frames=4 (two-frame composed flows)"),
    ("psrt_recurrent/psrt_recurrent_t3_64x66.pt", "BasicRecurrentSwin", "PSRT-recurrent"),
    ("iia_vsr/iia_vsr_t3_64x64.pt", "IIAVSR", "IIA-VSR (released frame order)"),
    ("mia_vsr/mia_vsr_t3_64x68.pt", "MIAVSR", "MIA-VSR with masks"),
    ("savsr/savsr_t7_x1.5_x3.8.pt", "SAVSR", "SAVSR, official frame sampling, asymmetric scale"),
])
def test_every_architecture_has_a_vendored_golden_case(relative: str, network: str, what: str) -> None:
    case = load(relative)
    assert case["official_class"] == network, what
    assert case["state_dict"] and all(v.dtype != torch.float16 for v in case["state_dict"].values()), what
    assert case["outputs"]["out"].numel() > 1000, what
    if network == "VRT" and "tiled" in relative:
        assert case["procedure"] and case["forward_kwargs"]["tile"][1] < case["inputs"]["lq"].shape[-1]
    if network == "MIAVSR":
        assert case["kwargs"]["use_mask"] and case["aux"]["keep_fraction"].shape == (4, 2, 4)
    if network == "SAVSR":
        s_h, s_w = case["forward_kwargs"]["__set_scale__"]
        assert s_h != s_w and case["kwargs"]["interval"] == 0


def test_vendored_core_cases_include_antialiased_resize_and_flow_warp() -> None:
    resize = torch.load(VENDORED_PARITY / "core" / "imresize.pt", weights_only=True)
    downscales = [case for case in resize if case["args"][1] < 1 and case["kwargs"].get("antialiasing", True)]
    assert {round(case["args"][1], 4) for case in downscales} >= {0.25, 0.3333, 0.4}
    warps = torch.load(VENDORED_PARITY / "core" / "flow_warp.pt", weights_only=True)
    modes = {(case["kwargs"]["interp_mode"], case["kwargs"]["padding_mode"]) for case in warps}
    assert modes >= {("bilinear", "zeros"), ("bilinear", "border"), ("bilinear", "reflection"),
                     ("nearest", "zeros")}


def test_vendored_output_subsets_keep_every_upsampler_phase() -> None:
    """A stride coprime to the x4 pixel shuffle keeps all 16 sub-pixel phases of the output."""
    for path in VENDORED_PARITY.glob("*/*.pt"):
        if path.parent.name in ("core", "savsr_resize"):
            continue
        stride = torch.load(path, map_location="cpu", weights_only=True).get("output_stride", 1)
        rows = {(i * stride) % 4 for i in range(8)}
        assert rows == {0, 1, 2, 3}, f"{path.name}: output_stride {stride} drops sub-pixel phases"


@pytest.mark.skipif(not USE_SHARED_PARITY, reason="needs ../shared/parity (absent or VSRT_NO_SHARED set)")
def test_vendored_fixtures_are_the_shared_ones() -> None:
    """Each vendored file is exactly what scripts/vendor_parity_fixtures.py makes from ../shared."""
    script = load_script(REPO_ROOT / "scripts" / "vendor_parity_fixtures.py")
    assert script.main(["--check"]) == 0
    listed = {Path(name) for name in script.NETWORK_CASES} | {Path("core", f"{n}.pt") for n in script.CORE_CASES}
    present = {path.relative_to(VENDORED_PARITY) for path in VENDORED_PARITY.rglob("*.pt")}
    assert present == listed, f"vendored but not listed in the script: {sorted(present - listed)}"
