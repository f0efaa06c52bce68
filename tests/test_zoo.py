"""Model zoo: the preset table, the CLI, and offline checkpoint resolution with checksums.

Presets never download here: tests use tiny checkpoints written to tmp and a monkeypatched table.
"""

from __future__ import annotations

import shutil

import pytest
import torch

from vsrt import zoo
from vsrt.archs import ARCH_REGISTRY, check_network_options
from vsrt.inference.loading import load_model

REQUIRED = ("basicvsr_reds", "mia_vsr_reds", "mia_vsr_vimeo", "psrt_recurrent_reds", "psrt_recurrent_vimeo",
            "vrt_x4_reds_6f", "vrt_x4_reds_16f", "vrt_x4_vimeo_bi", "vrt_x4_vimeo_bd", "vrt_deblur_gopro",
            "vrt_denoise_davis", "savsr_vimeo")
TINY = {"type": "BasicVSR", "num_feat": 8, "num_block": 1}


@pytest.fixture
def tiny_checkpoint(tmp_path):
    torch.manual_seed(0)
    net = ARCH_REGISTRY.get("BasicVSR")(num_feat=8, num_block=1)
    path = tmp_path / "tiny_basicvsr.pth"
    torch.save({"params": net.state_dict()}, path)
    return net, path


@pytest.fixture
def tiny_preset(monkeypatch, tiny_checkpoint, tmp_path):
    """A preset table holding one tiny preset whose checksum is the real one; torch hub dir in tmp."""
    _, path = tiny_checkpoint
    preset = zoo.Preset("tiny", dict(TINY), path.name, None, zoo.sha256_of(path),
                        download_page="https://example.invalid/tiny")
    monkeypatch.setattr(zoo, "PRESETS", {"tiny": preset})
    hub = tmp_path / "hub"
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    return preset


def test_required_presets_exist_and_their_configs_are_valid():
    assert set(REQUIRED) <= set(zoo.PRESETS)
    for preset in zoo.PRESETS.values():
        options = dict(preset.network_g)
        check_network_options(ARCH_REGISTRY.get(options.pop("type")), options, where=preset.name)
        assert preset.file_name.endswith(".pth") and preset.scores
        assert preset.sha256 is None or all(c in "0123456789abcdef" for c in preset.sha256)
        assert preset.url or preset.download_page


def test_zoo_list_shows_every_preset(capsys):
    from vsrt.__main__ import main

    main(["zoo", "list"])
    out = capsys.readouterr().out
    for name in zoo.PRESETS:
        assert name in out


def test_zoo_show_and_unknown_name(capsys):
    zoo.main(["show", "vrt_x4_vimeo_bd"])
    out = capsys.readouterr().out
    assert "004_VRT_videosr_bd_Vimeo_7frames.pth" in out and "deformable_groups: 16" in out
    assert "udm10 41.05/0.9737 (Y)" in out
    with pytest.raises(SystemExit) as err:
        zoo.main(["show", "mia_vsr_red"])
    assert err.value.code == 2
    assert "mia_vsr_reds" in capsys.readouterr().err


def test_preset_loads_from_local_file_and_verifies_checksum(tiny_preset, tiny_checkpoint):
    net, path = tiny_checkpoint
    loaded = load_model(model="tiny", weights=path, allow_download=False)
    assert loaded.checksum_verified and loaded.weights == path
    for key, value in net.state_dict().items():
        assert torch.equal(loaded.net.state_dict()[key], value)


def test_checksum_mismatch_names_file_and_both_hashes(tiny_preset, tiny_checkpoint, monkeypatch):
    _, path = tiny_checkpoint
    wrong = "0" * 64
    monkeypatch.setitem(zoo.PRESETS, "tiny", zoo.Preset("tiny", dict(TINY), path.name, None, wrong))
    with pytest.raises(zoo.ChecksumError) as err:
        load_model(model="tiny", weights=path, allow_download=False)
    message = str(err.value)
    assert str(path) in message and wrong in message and zoo.sha256_of(path) in message


def test_checksum_prefix_and_unknown_checksum(tiny_checkpoint, monkeypatch):
    _, path = tiny_checkpoint
    warnings = []
    # the 'vsrt' logger may not propagate (training tests configure it), so record calls directly
    monkeypatch.setattr(zoo.logger, "warning", lambda message, *args: warnings.append(message % args))
    digest = zoo.sha256_of(path)
    assert zoo.verify_checksum(path, digest[:8])  # BasicSR file-name convention
    with pytest.raises(zoo.ChecksumError):
        zoo.verify_checksum(path, "ffffffff" if not digest.startswith("ffffffff") else "00000000")
    assert zoo.verify_checksum(path, None) is False
    assert "without verification" in warnings[0] and str(path) in warnings[0]


def test_preset_found_in_torch_hub_cache_offline(tiny_preset, tiny_checkpoint):
    _, path = tiny_checkpoint
    with pytest.raises(FileNotFoundError, match="example.invalid/tiny"):
        load_model(model="tiny", allow_download=False)
    zoo.cache_dir().mkdir(parents=True)
    shutil.copy(path, zoo.cache_dir() / path.name)
    loaded = load_model(model="tiny", allow_download=False)
    assert loaded.weights == zoo.cache_dir() / path.name and loaded.checksum_verified


def test_download_goes_through_torch_hub_with_hash_check(tiny_preset, tiny_checkpoint, monkeypatch):
    """With a URL, a missing file is fetched by torch.hub.download_url_to_file (stubbed: no network)."""
    _, path = tiny_checkpoint
    calls = []

    def fake_download(url, dst, hash_prefix=None, progress=True):
        calls.append((url, dst, hash_prefix))
        shutil.copy(path, dst)

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    preset = zoo.Preset("tiny", dict(TINY), path.name, "https://example.invalid/tiny.pth", zoo.sha256_of(path))
    monkeypatch.setitem(zoo.PRESETS, "tiny", preset)
    with pytest.raises(FileNotFoundError):
        load_model(model="tiny", allow_download=False)
    assert not calls
    loaded = load_model(model="tiny")
    assert calls == [("https://example.invalid/tiny.pth", str(zoo.cache_dir() / path.name), preset.sha256)]
    assert loaded.checksum_verified


def test_preset_names_known_without_building_are_the_presets():
    assert tuple(zoo.PRESETS) == zoo.PRESET_NAMES
    zoo.check_preset_name("vrt_x4_reds_6f")
    with pytest.raises(KeyError, match="Did you mean 'vrt_x4_reds_6f'"):
        zoo.check_preset_name("vrt_x4_red")
