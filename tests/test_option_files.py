"""Every committed option file parses, validates and names registered, correctly configured components."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest

from helpers import REPO_ROOT
from vsrt.archs import ARCH_REGISTRY, check_network_options
from vsrt.archs.vrt.inference import OFFICIAL_TEST_TILES
from vsrt.archs.vrt.vrt_arch import OFFICIAL_CONFIGS, VRT
from vsrt.data import DATASET_REGISTRY
from vsrt.models import MODEL_REGISTRY
from vsrt.models.video_recurrent_model import tile_config_from_options
from vsrt.options import load_options, load_yaml

OPTION_FILES = sorted((REPO_ROOT / "options").rglob("*.yml")) + sorted((REPO_ROOT / "options").rglob("*.yaml"))
# constructor arguments that only affect training (memory / initialisation), not the network's values
VRT_TRAINING_KEYS = ("spynet_path", "use_checkpoint_attn", "use_checkpoint_ffn", "no_checkpoint_attn_blocks",
                     "no_checkpoint_ffn_blocks")


def relative(path: Path) -> str:
    return str(path.relative_to(REPO_ROOT))


def strings(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [s for value in node.values() for s in strings(value)]
    if isinstance(node, (list, tuple)):
        return [s for value in node for s in strings(value)]
    return [node] if isinstance(node, str) else []


def vrt_arguments(kwargs: dict[str, Any]) -> dict[str, Any]:
    """All constructor arguments (defaults filled in, sequences as lists) except the training-only ones."""
    defaults = {name: p.default for name, p in inspect.signature(VRT.__init__).parameters.items() if name != "self"}
    merged = {**defaults, **{k: v for k, v in kwargs.items() if k != "type"}}
    return {k: list(v) if isinstance(v, (list, tuple)) else v for k, v in merged.items() if k not in VRT_TRAINING_KEYS}


def official_vrt_task(opt: dict[str, Any]) -> str | None:
    """The released VRT configuration an option file is named after (``001_VRT_...``), if any."""
    return next((task for task in OFFICIAL_CONFIGS if task in opt["name"]), None)


def test_option_files_are_found() -> None:
    families = {load_yaml(p)["network_g"]["type"] for p in OPTION_FILES}
    assert {"VRT", "SAVSR", "BasicVSR"} <= families, families


@pytest.mark.parametrize("path", OPTION_FILES, ids=relative)
def test_option_file_parses_and_names_registered_components(path: Path, tmp_path: Path) -> None:
    raw = load_yaml(path)
    is_train = "train" in path.relative_to(REPO_ROOT / "options").parts[0]
    opt, _ = load_options(path, is_train=is_train, root=tmp_path)

    network_opt = dict(opt["network_g"])
    check_network_options(ARCH_REGISTRY.get(network_opt.pop("type")), network_opt, f"{relative(path)}: network_g")
    assert opt["model_type"] in MODEL_REGISTRY, opt["model_type"]
    for phase, dataset_opt in opt["datasets"].items():
        assert dataset_opt["type"] in DATASET_REGISTRY, f"datasets.{phase}.type {dataset_opt['type']}"
    if is_train:
        assert "train" in opt["datasets"] and opt["train"]["pixel_opt"]
    else:
        assert any(key.split("_")[0] in ("test", "val") for key in opt["datasets"])
    tile_config_from_options((opt.get("val") or {}).get("tile"), opt["network_g"])  # raises if invalid

    absolute = [s for s in strings(raw) if s.startswith(("/", "~")) or (len(s) > 2 and s[1:3] == ":\\")]
    assert not absolute, f"absolute paths in a committed option file: {absolute}"


VRT_OFFICIAL_FILES = [p for p in OPTION_FILES if official_vrt_task(load_yaml(p))]


def test_every_released_vrt_task_has_train_and_test_files() -> None:
    covered = {(p.relative_to(REPO_ROOT / "options").parts[0], official_vrt_task(load_yaml(p)))
               for p in VRT_OFFICIAL_FILES}
    for task in OFFICIAL_CONFIGS:
        assert ("train", task) in covered and ("test", task) in covered, task


@pytest.mark.parametrize("path", VRT_OFFICIAL_FILES, ids=relative)
def test_vrt_files_use_the_released_network_and_official_tiles(path: Path) -> None:
    opt = load_yaml(path)
    task = official_vrt_task(opt)
    assert vrt_arguments(opt["network_g"]) == vrt_arguments(OFFICIAL_CONFIGS[task]), \
        f"{task}: network_g differs from main_test_vrt.py"
    interpolation = OFFICIAL_CONFIGS[task]["pa_frames"] == 0
    if interpolation:  # 009 is tested whole (--tile 0 0 0), from the GT frames im1, im3, im5, im7
        assert "tile" not in opt["val"] and not opt["val"].get("pad_seq")
        assert opt["scale"] == 1 and all(d.get("temporal_scale") == 2 for d in opt["datasets"].values()
                                         if d["type"] == "VideoTestVimeo90KDataset")
    else:
        tiles = tile_config_from_options(opt["val"]["tile"], opt["network_g"])
        assert tiles.size_multiple == tuple(OFFICIAL_CONFIGS[task]["window_size"])
    if "train" in path.parts:
        return
    assert opt["path"]["pretrain_network_g"].endswith(f"VRT/{task}.pth")
    assert opt["path"]["strict_load_g"] is True
    if interpolation:
        return
    vimeo = any(d["type"] == "VideoTestVimeo90KDataset" for d in opt["datasets"].values())
    tile, overlap = ([8, 0, 0], [0, 20, 20]) if vimeo else OFFICIAL_TEST_TILES[task]
    want = {"temporal_chunk": tile[0], "temporal_overlap": overlap[0] if tile[0] else 0,
            "tile": (tile[1], tile[1]), "tile_overlap": (overlap[1], overlap[1]) if tile[1] else (0, 0)}
    got = {"temporal_chunk": tiles.temporal_chunk, "temporal_overlap": tiles.temporal_overlap,
           "tile": tiles.tile, "tile_overlap": tiles.tile_overlap}
    assert got == want, f"{task}: README --tile {tile} --tile_overlap {overlap}"
    assert bool(opt["val"].get("pad_seq")) == vimeo  # Vimeo-90K-T: 7 frames padded to 8, as officially
