"""Registry: discovery, aliases, errors with suggestions, network option checks."""

import pytest
import torch

from vsrt.archs import ARCH_REGISTRY, build_network
from vsrt.registry import Registry, import_user_modules


def test_unknown_type_lists_close_matches():
    with pytest.raises(KeyError, match="Did you mean 'BasicVSR'"):
        ARCH_REGISTRY.get("BasicVRS")


def test_duplicate_name_is_an_error():
    registry = Registry("thing")

    @registry.register(aliases=("Other",))
    class Thing:
        pass

    assert registry.get("Other") is Thing
    with pytest.raises(KeyError, match="already registered"):
        registry.register(type("Thing", (), {}))


def test_build_network_rejects_unknown_kwargs():
    with pytest.raises(TypeError, match="'num_feats' is not an argument of BasicVSR. Did you mean 'num_feat'"):
        build_network({"type": "BasicVSR", "num_feats": 8})


def test_out_of_tree_module_registers_through_imports(tmp_path, monkeypatch):
    (tmp_path / "my_lab_arch_mod.py").write_text(
        "import torch\nfrom vsrt.registry import ARCH_REGISTRY\n"
        "@ARCH_REGISTRY.register()\nclass MyLabNet(torch.nn.Module):\n"
        "    def __init__(self, width: int = 2):\n        super().__init__()\n"
        "        self.conv = torch.nn.Conv2d(3, width, 1)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import_user_modules(["my_lab_arch_mod"])
    net = build_network({"type": "MyLabNet", "width": 4})
    assert net.conv.out_channels == 4
    with pytest.raises(ImportError, match="no_such_module"):
        import_user_modules(["no_such_module"])


def test_importing_archs_does_not_import_heavy_io():
    import subprocess
    import sys

    code = ("import sys, vsrt.archs; bad = [m for m in ('cv2', 'lmdb', 'tensorboard', 'av') if m in sys.modules];"
            "print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", ARCH_REGISTRY.keys())
def test_every_registered_arch_runs_and_round_trips_its_state_dict(name):
    cls = ARCH_REGISTRY.get(name)
    tiny = getattr(cls, "tiny_config", None)
    assert tiny is not None, f"{name} must declare a tiny_config for the registry-wide tests"
    torch.manual_seed(0)
    net = cls(**tiny).eval()
    clone = cls(**tiny).eval()
    clone.load_state_dict(net.state_dict(), strict=True)
    for key, value in net.state_dict().items():
        assert torch.equal(value, clone.state_dict()[key]), key
    n, t, c, h, w = getattr(cls, "tiny_input_shape", (1, 3, 3, 16, 16))
    lqs = torch.rand(n, t, c, h, w, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out, again = net(lqs), clone(lqs)
    assert out.shape[-2:] == (4 * h, 4 * w) and out.shape[0] == n and out.shape[-3] == 3
    assert out.dim() == 4 or out.shape[1] == t  # SAVSR returns the centre frame only
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, again)  # same weights, same input -> same output (no state on self)


def test_registered_architectures_are_attributes_of_vsrt_archs():
    """``from vsrt.archs import MIAVSR`` (and ``vsrt.archs:MIAVSR`` for the shared parity checkers)."""
    import vsrt.archs as archs
    from vsrt.archs import PSRTRecurrent, iia_vsr_arch

    for name in ARCH_REGISTRY.keys():
        assert getattr(archs, name) is ARCH_REGISTRY.get(name) and name in dir(archs)
    assert PSRTRecurrent is ARCH_REGISTRY.get("BasicRecurrentSwin")
    assert iia_vsr_arch.iia_vsr_official_release(**ARCH_REGISTRY.get("IIAVSR").tiny_config).official_release_order
    with pytest.raises(AttributeError, match="no attribute 'MIAVRS'"):
        archs.MIAVRS  # noqa: B018

    import vsrt.losses as losses
    from vsrt.losses import CharbonnierLoss
    from vsrt.registry import LOSS_REGISTRY

    assert CharbonnierLoss is LOSS_REGISTRY.get("CharbonnierLoss") and "L1Loss" in dir(losses)

    from vsrt.data import DATASET_REGISTRY, REDSRecurrentDataset
    from vsrt.models import MODEL_REGISTRY, RecurrentMixPrecisionRTModel

    assert REDSRecurrentDataset is DATASET_REGISTRY.get("REDSRecurrentDataset")
    assert RecurrentMixPrecisionRTModel is MODEL_REGISTRY.get("RecurrentMixPrecisionRTModel")
