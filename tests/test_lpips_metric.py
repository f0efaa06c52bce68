"""LPIPS through the lpips package with a local backbone file: clear errors, and the backbone really loaded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vsrt.metrics import calculate_lpips, calculate_metric, metric_better


def test_missing_backbone_path_is_a_clear_error() -> None:
    image = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(ValueError, match="needs backbone_path.*alexnet-owt-7be5be79.pth.*never downloads"):
        calculate_metric({"img": image, "img2": image}, {"type": "calculate_lpips"})
    with pytest.raises(FileNotFoundError, match="backbone_path /nowhere/alex.pth is not a file"):
        calculate_lpips(image, image, backbone_path="/nowhere/alex.pth")
    with pytest.raises(ValueError, match="net must be one of"):
        calculate_lpips(image, image, backbone_path="/nowhere/alex.pth", net="resnet")
    assert metric_better({"type": "calculate_lpips"}) == "lower"


def test_missing_package_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import sys

    from vsrt.metrics.lpips_metric import load_lpips

    monkeypatch.setitem(sys.modules, "lpips", None)  # import lpips raises ImportError
    load_lpips.cache_clear()
    with pytest.raises(ImportError, match="pip install lpips"):
        calculate_lpips(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8, 3), np.uint8), backbone_path=str(tmp_path))


@pytest.fixture(scope="module")
def alexnet_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.nn.Module]:
    """A torchvision AlexNet checkpoint (random weights, fixed seed) in torchvision's key layout; only the
    convolutional ``features.*`` (what LPIPS uses), not the 230 MB classifier."""
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    net = torchvision.models.alexnet(weights=None).eval()
    path = tmp_path_factory.mktemp("lpips") / "alexnet.pth"
    torch.save({k: v for k, v in net.state_dict().items() if k.startswith("features.")}, path)
    return path, net


def test_wrong_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    pytest.importorskip("lpips")
    path = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(1)}, path)
    with pytest.raises(KeyError, match="has no 'features.0.weight'; it is not torchvision's alex"):
        calculate_lpips(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8, 3), np.uint8), backbone_path=str(path))


def test_lpips_uses_the_given_backbone(alexnet_file: tuple[Path, torch.nn.Module]) -> None:
    """Equal to lpips.LPIPS whose backbone layers are the torchvision model's own modules, fed RGB in [0, 1]
    with normalize=True: the weights, channel order and value range are what lpips expects."""
    lpips = pytest.importorskip("lpips")
    path, tv_net = alexnet_file
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    img2 = np.clip(img.astype(int) + rng.integers(-40, 41, img.shape), 0, 255).astype(np.uint8)
    reference = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False).eval()
    for block in reference.net.children():  # put the torchvision layers themselves in place
        for name, _ in list(block.named_children()):
            setattr(block, name, tv_net.features[int(name)])
    to_rgb = [torch.from_numpy(x[..., ::-1].copy()).permute(2, 0, 1)[None].float() / 255 for x in (img, img2)]
    with torch.no_grad():
        expected = reference(*to_rgb, normalize=True).item()
    value = calculate_lpips(img, img2, backbone_path=str(path))
    assert value == pytest.approx(expected, rel=1e-5) and value > 1e-3
    assert calculate_lpips(img, img, backbone_path=str(path)) == 0.0
    # a different backbone gives a different distance: the file is really used
    torch.manual_seed(1)
    other = path.parent / "other_alexnet.pth"
    torch.save({k: v for k, v in type(tv_net)().state_dict().items() if k.startswith("features.")}, other)
    assert calculate_lpips(img, img2, backbone_path=str(other)) != pytest.approx(value, rel=1e-3)
