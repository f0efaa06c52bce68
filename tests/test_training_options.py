"""Options that change training: accumulate_grad, perceptual_opt, wandb / tensorboard, dist_params."""

from __future__ import annotations

import importlib.machinery
import sys
import types
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from helpers import tiny_train_options, write_options
from vsrt import train
from vsrt.losses import perceptual_loss
from vsrt.losses.perceptual_loss import PerceptualLoss, VGGFeatureExtractor, vgg_layers
from vsrt.models import build_model
from vsrt.options import load_options

SGD = {"train.optim_g": {"type": "SGD", "lr": 0.5}, "train.ema_decay": 0, "train.fix_flow": 0,
       "train.flow_lr_mul": 1, "train.scheduler": None, "train.warmup_iter": -1}


def tiny_model(tmp_path: Path, **changes):
    opt, _ = load_options(write_options(tmp_path / "o.yml", tiny_train_options(tmp_path, **changes)),
                          is_train=True, root=tmp_path)
    torch.manual_seed(3)
    return build_model(opt)


def clip_batch(seed: int, n: int = 1) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {"lq": torch.rand(n, 3, 3, 8, 8, generator=generator),
            "gt": torch.rand(n, 3, 3, 32, 32, generator=generator)}


# ------------------------------------------------------------ accumulate_grad

def test_accumulated_micro_batches_give_the_update_of_one_large_batch(tmp_path):
    """Two micro-batches of 1 clip (loss / 2 each, one SGD step) = one batch of the 2 clips (BasicVSR has no
    batch statistics); one micro-batch alone gives another update, so the comparison can fail."""
    small = [clip_batch(1), clip_batch(2)]
    large = {key: torch.cat([b[key] for b in small]) for key in small[0]}
    accumulated, whole, single = (tiny_model(tmp_path, **SGD) for _ in range(3))
    assert all(torch.equal(a, b) for a, b in zip(accumulated.net_g.parameters(), whole.net_g.parameters()))
    accumulated.train_step(small, current_iter=1)
    whole.train_step([large], current_iter=1)
    single.train_step(small[:1], current_iter=1)
    for (name, a), b in zip(accumulated.net_g.named_parameters(), whole.net_g.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
    assert any(not torch.allclose(a, c, atol=1e-5) for a, c in zip(accumulated.net_g.parameters(),
                                                                    single.net_g.parameters()))
    assert accumulated.log_dict["l_pix"] == pytest.approx(whole.log_dict["l_pix"], rel=1e-5)


class NoSyncSpy(nn.Module):
    """Stands in for DistributedDataParallel: records whether each forward ran inside ``no_sync()``."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module
        self.syncing = True
        self.forwards: list[bool] = []

    def no_sync(self):
        spy = self

        class Context:
            def __enter__(self):
                spy.syncing = False

            def __exit__(self, *exc):
                spy.syncing = True

        return Context()

    def forward(self, *args, **kwargs):
        self.forwards.append(self.syncing)
        return self.module(*args, **kwargs)


def test_gradients_are_synchronised_only_in_the_last_micro_step(tmp_path):
    model = tiny_model(tmp_path, **SGD)
    model.net_g = NoSyncSpy(model.net_g)
    model.train_step([clip_batch(1), clip_batch(2), clip_batch(3)], current_iter=1)
    assert model.net_g.forwards == [False, False, True]


def test_accumulation_through_real_ddp_matches_the_plain_model(tmp_path, monkeypatch):
    """The ``no_sync`` path with torch's DistributedDataParallel (a one-process gloo group) gives the
    update of the unwrapped model."""
    import socket

    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        monkeypatch.setenv("MASTER_PORT", str(sock.getsockname()[1]))
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    batches = [clip_batch(1), clip_batch(2)]
    plain, wrapped = tiny_model(tmp_path, **SGD), tiny_model(tmp_path, **SGD)
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        wrapped.net_g = DistributedDataParallel(wrapped.net_g)
        wrapped.train_step(batches, current_iter=1)
    finally:
        dist.destroy_process_group()
    plain.train_step(batches, current_iter=1)
    for (name, a), b in zip(plain.net_g.named_parameters(), wrapped.net_g.module.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7, msg=name)


def test_accumulate_grad_counts_optimizer_steps(tmp_path):
    """8 samples / batch 2 = 4 batches per epoch = 2 iterations of 2 batches: the state at iteration 4 is
    at the end of epoch 1 and the schedule has stepped once per optimizer step."""
    opt = tiny_train_options(tmp_path, **{"train.accumulate_grad": 2, "train.total_iter": 4,
                                          "val.val_freq": None})
    root = Path(train.main(["-opt", str(write_options(tmp_path / "o.yml", opt))]))
    state = torch.load(root / "training_states" / "4.state", weights_only=True)
    assert (state["epoch"], state["batch_in_epoch"]) == (1, 4)
    assert state["schedulers"][0]["last_epoch"] == 3  # stepped from iteration 2 on
    assert "2 iterations per epoch (2 batch(es) each)" in next(root.glob("train_*.log")).read_text()


def test_resume_in_the_middle_of_an_epoch_with_accumulation_matches_the_uninterrupted_run(tmp_path):
    """2 iterations of 2 batches per epoch; stopped after iteration 1 (batch 2 of 4) and resumed."""
    opt = tiny_train_options(tmp_path, **{"train.accumulate_grad": 2, "train.total_iter": 3, "val.val_freq": None,
                                          "logger.save_checkpoint_freq": 1})
    opt_path = write_options(tmp_path / "o.yml", opt)
    reference = Path(train.main(["-opt", str(opt_path), "--force_yml", "name=reference"]))
    train.main(["-opt", str(opt_path), "--force_yml", "name=resumed", "train.total_iter=1"])
    resumed = Path(train.main(["-opt", str(opt_path), "--force_yml", "name=resumed", "--auto_resume"]))
    assert torch.load(resumed / "training_states" / "1.state", weights_only=True)["batch_in_epoch"] == 2
    expected = torch.load(reference / "models" / "net_g_latest.pth", weights_only=True)
    got = torch.load(resumed / "models" / "net_g_latest.pth", weights_only=True)
    for key in ("params", "params_ema"):
        for name, value in expected[key].items():
            torch.testing.assert_close(got[key][name], value, rtol=0, atol=0, msg=f"{key}.{name}")


# ------------------------------------------------------------- perceptual_opt

TINY_VGG = (4, "M", 6)  # conv1_1 relu1_1 pool1 conv2_1 relu2_1


@pytest.fixture
def tiny_vgg(tmp_path, monkeypatch) -> Path:
    """A two-convolution stand-in for VGG19 and a torchvision-style weights file for it."""
    monkeypatch.setitem(perceptual_loss.VGG_LAYOUTS, "vgg_tiny", TINY_VGG)
    generator = torch.Generator().manual_seed(0)
    weights = {"features.0.weight": torch.randn(4, 3, 3, 3, generator=generator) * 0.3,
               "features.0.bias": torch.randn(4, generator=generator) * 0.1,
               "features.3.weight": torch.randn(6, 4, 3, 3, generator=generator) * 0.3,
               "features.3.bias": torch.randn(6, generator=generator) * 0.1,
               "classifier.0.weight": torch.zeros(2, 2)}  # ignored, as in torchvision's files
    torch.save(weights, tmp_path / "vgg_tiny.pth")
    return tmp_path / "vgg_tiny.pth"


def test_perceptual_and_style_losses_match_their_formulas(tiny_vgg):
    w = torch.load(tiny_vgg, weights_only=True)
    loss = PerceptualLoss({"relu1_1": 0.5, "conv2_1": 2.0}, vgg_type="vgg_tiny", perceptual_weight=0.7,
                          style_weight=3.0, criterion="l1", pretrained=str(tiny_vgg))
    x, gt = torch.rand(2, 3, 3, 12, 12), torch.rand(2, 3, 3, 12, 12)  # (n, t, c, h, w): 6 frames

    def features(clip):
        frames = clip.reshape(6, 3, 12, 12)
        frames = (frames - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / \
            torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        relu1 = F.relu(F.conv2d(frames, w["features.0.weight"], w["features.0.bias"], padding=1))
        conv2 = F.conv2d(F.max_pool2d(relu1, 2), w["features.3.weight"], w["features.3.bias"], padding=1)
        return relu1, conv2

    def gram(f):
        n, c, h, width = f.shape
        flat = f.reshape(n, c, h * width)
        return torch.einsum("nis,njs->nij", flat, flat) / (c * h * width)

    (x1, x2), (g1, g2) = features(x), features(gt)
    perceptual, style = loss(x, gt)
    expected = 0.7 * (0.5 * (x1 - g1).abs().mean() + 2.0 * (x2 - g2).abs().mean())
    expected_style = 3.0 * (0.5 * (gram(x1) - gram(g1)).abs().mean() + 2.0 * (gram(x2) - gram(g2)).abs().mean())
    torch.testing.assert_close(perceptual, expected)
    torch.testing.assert_close(style, expected_style)
    fro = PerceptualLoss({"conv2_1": 1.0}, vgg_type="vgg_tiny", criterion="fro", pretrained=str(tiny_vgg))
    assert fro(x, gt)[1] is None  # style_weight 0: no style term
    torch.testing.assert_close(fro(x, gt)[0], torch.sqrt(((x2 - g2) ** 2).sum()))


def test_vgg_layers_line_up_with_torchvision():
    """Names map onto torchvision's ``features`` indices, so its weight files load (vgg19 and vgg19_bn)."""
    import torchvision

    for vgg_type, last in (("vgg19", "pool5"), ("vgg19_bn", "pool5")):
        names, _ = vgg_layers(vgg_type)
        with torch.device("meta"):
            reference = getattr(torchvision.models, vgg_type)(weights=None).features.state_dict()
            ours = VGGFeatureExtractor([last], vgg_type, requires_grad=True).vgg_net.state_dict()
        assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in reference.items()}
    names, _ = vgg_layers("vgg19")
    assert (names.index("conv5_4"), names.index("relu5_4"), len(names)) == (34, 35, 37)
    assert vgg_layers("vgg19_bn")[0].index("conv5_4") == 49


def perceptual_options(tmp_path, weights, **extra):
    return tiny_model(tmp_path, **SGD, **{"train.perceptual_opt": {
        "type": "PerceptualLoss", "layer_weights": {"conv2_1": 1.0}, "vgg_type": "vgg_tiny",
        "style_weight": 1.0, **({"pretrained": str(weights)} if weights else {}), **extra}})


def test_perceptual_loss_trains_every_frame(tmp_path, tiny_vgg):
    model = perceptual_options(tmp_path, tiny_vgg)
    before = [p.clone() for p in model.net_g.parameters()]
    model.train_step([clip_batch(1)], current_iter=1)
    assert set(model.log_dict) == {"l_pix", "l_percep", "l_style"} and model.log_dict["l_percep"] > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, model.net_g.parameters()))
    assert not any(p.requires_grad for p in model.cri_perceptual.parameters())
    assert not any(k.startswith("vgg") for k in model.net_g.state_dict())  # not saved with the network


def test_perceptual_loss_without_weights_or_with_a_bad_layer_is_a_clear_error(tmp_path, tiny_vgg):
    with pytest.raises(ValueError, match="train.perceptual_opt: pretrained: the path of the VGG weights"):
        perceptual_options(tmp_path, None)
    with pytest.raises(FileNotFoundError, match="train.perceptual_opt: pretrained: VGG weights .*nope.pth"):
        perceptual_options(tmp_path, tmp_path / "nope.pth")
    with pytest.raises(ValueError, match=r"train.perceptual_opt: layer_weights: \['conv3_1'\]"):
        perceptual_options(tmp_path, tiny_vgg, layer_weights={"conv3_1": 1.0})
    with pytest.raises(ValueError, match="train.perceptual_opt: perceptual_weight and style_weight are both 0"):
        perceptual_options(tmp_path, tiny_vgg, perceptual_weight=0, style_weight=0)
    with pytest.raises(ValueError, match="train.perceptual_opt: criterion 'l3' is not one of l1, l2, fro"):
        perceptual_options(tmp_path, tiny_vgg, criterion="l3")


# ------------------------------------------------------ wandb and tensorboard

class FakeRun:
    def __init__(self, calls: list) -> None:
        self.calls, self.id = calls, "fake-run"

    def log(self, data, step=None):
        self.calls.append(("log", data, step))

    def finish(self):
        self.calls.append(("finish",))


def fake_wandb(calls: list) -> types.ModuleType:
    module = types.ModuleType("wandb")
    module.__spec__ = importlib.machinery.ModuleSpec("wandb", None)

    def init(**kwargs):
        calls.append(("init", kwargs))
        return FakeRun(calls)

    module.init = init
    return module


def test_wandb_receives_the_logged_scalars_and_tensorboard_writes_in_the_experiment(tmp_path, monkeypatch):
    calls: list = []
    monkeypatch.setitem(sys.modules, "wandb", fake_wandb(calls))
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    opt = tiny_train_options(tmp_path, **{"train.total_iter": 2, "val.val_freq": 2, "logger.use_tb_logger": True,
                                          "logger.wandb": {"project": "vsrt-tests", "entity": "lab",
                                                           "resume_id": "abc123", "mode": "offline"}})
    root = Path(train.main(["-opt", str(write_options(tmp_path / "o.yml", opt))]))
    init = calls[0][1]
    assert calls[0][0] == "init" and calls[-1] == ("finish",)
    assert {k: init[k] for k in ("project", "entity", "id", "resume", "name", "mode", "dir")} == {
        "project": "vsrt-tests", "entity": "lab", "id": "abc123", "resume": "allow", "name": "tiny",
        "mode": "offline", "dir": str(root)}
    logged = {(tag, step) for kind, *rest in calls if kind == "log" for tag, step in [(next(iter(rest[0])), rest[1])]}
    assert {("losses/l_pix", 1), ("losses/l_pix", 2), ("metrics/psnr", 2)} <= logged
    assert list((root / "tb_logger").glob("events.out.tfevents.*"))
    assert not list((tmp_path / "elsewhere").iterdir()), "nothing is written to the current folder"


def test_a_resumed_run_continues_its_wandb_run(tmp_path, monkeypatch):
    calls: list = []
    monkeypatch.setitem(sys.modules, "wandb", fake_wandb(calls))
    opt = tiny_train_options(tmp_path, **{"train.total_iter": 2, "val.val_freq": None,
                                          "logger.save_checkpoint_freq": 2, "logger.wandb": {"project": "p"}})
    opt_path = write_options(tmp_path / "o.yml", opt)
    root = Path(train.main(["-opt", str(opt_path)]))
    train.main(["-opt", str(opt_path), "--auto_resume", "--force_yml", "train.total_iter=3"])
    inits = [kwargs for kind, *rest in calls if kind == "init" for kwargs in rest]
    assert [(k["id"], k["resume"]) for k in inits] == [(None, None), ("fake-run", "allow")]
    assert (root / "wandb_id").read_text() == "fake-run"


def test_wandb_asked_for_but_not_installed_fails_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb -> ImportError
    opt = tiny_train_options(tmp_path, **{"logger.wandb": {"project": "p"}})
    with pytest.raises(ImportError, match="logger.wandb.project is 'p' but the wandb package is not installed"):
        train.main(["-opt", str(write_options(tmp_path / "o.yml", opt))])
    assert not (tmp_path / "experiments").exists()


# ---------------------------------------------------------------- dist_params

def test_dist_params_under_torchrun_backend_used_and_port_mismatch_warned(tmp_path, monkeypatch, vsrt_log):
    """``--launcher pytorch`` in a one-process group: ``dist_params.backend`` picks the backend; a
    ``dist_params.port`` other than torchrun's ``MASTER_PORT`` is reported instead of silently ignored."""
    import socket

    import torch.distributed as dist

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    for key, value in {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
                       "MASTER_PORT": str(port)}.items():
        monkeypatch.setenv(key, value)
    backends = []
    real_init = dist.init_process_group
    monkeypatch.setattr(dist, "init_process_group", lambda backend=None, **kw: (backends.append(backend),
                                                                                real_init(backend=backend, **kw)))
    opt = tiny_train_options(tmp_path, **{"train.total_iter": 1, "val.val_freq": None,
                                          "dist_params": {"backend": "gloo", "port": port + 1}})
    train.main(["-opt", str(write_options(tmp_path / "o.yml", opt)), "--launcher", "pytorch"])
    assert backends == ["gloo"] and not dist.is_initialized()
    assert f"dist_params.port {port + 1} is not used under torchrun, which listens on MASTER_PORT={port}" \
        in vsrt_log.text
