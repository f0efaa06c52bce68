"""Training PSRT-recurrent and MIA-VSR: sparsity loss, option files, tiny CPU runs (single and distributed)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import REPO_ROOT, make_clips, run_launcher, write_options
from vsrt import train
from vsrt.archs import ARCH_REGISTRY, check_network_options
from vsrt.losses import build_loss
from vsrt.losses.sparsity_loss import (
    SparsityLoss,
    build_sparsity_loss,
    kept_token_ratio,
)
from vsrt.models import build_model
from vsrt.options import load_options, load_yaml

TINY = {"PSRT": REPO_ROOT / "options/train/PSRT/train_PSRT_tiny_cpu.yml",
        "MIAVSR": REPO_ROOT / "options/train/MIAVSR/train_MIAVSR_tiny_cpu.yml"}
OPTION_FILES = sorted(p for arch in ("PSRT", "MIAVSR") for p in (REPO_ROOT / "options").glob(f"*/{arch}/*.yml"))


# ------------------------------------------------------------------ activation checkpointing

@pytest.mark.parametrize("name", ["BasicRecurrentSwin", "MIAVSR", "IIAVSR"])
def test_activation_checkpointing_recomputes_blocks_with_identical_gradients(name, monkeypatch):
    """use_checkpoint recomputes every block in backward (drop path and Gumbel noise replayed) and
    changes neither the loss nor any gradient; MIA's masks and their sparsity loss included."""
    cls = ARCH_REGISTRY.get(name)
    block_cls = type(cls(**cls.tiny_config).patch_align["forward_1"].blocks()[0])
    calls = []
    original = block_cls._forward
    monkeypatch.setattr(block_cls, "_forward", lambda self, *a: calls.append(1) or original(self, *a))
    lqs = torch.rand(1, 3, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    results = {}
    for use_checkpoint in (False, True):
        torch.manual_seed(0)
        net = cls(**cls.tiny_config, use_checkpoint=use_checkpoint).train()
        for module in net.modules():  # exercise stochastic depth inside the recomputed blocks
            if module.__class__.__name__ == "DropPath":
                module.drop_prob = 0.5
        calls.clear()
        torch.manual_seed(1)
        if name == "MIAVSR":
            out, masks = net(lqs, return_masks=True)
            loss = out.mean() + SparsityLoss(loss_weight=1e-2)(masks)
        else:
            out = net(lqs)
            loss = out.mean()
        forward_calls = len(calls)
        loss.backward()
        results[use_checkpoint] = (loss.detach(), forward_calls, len(calls),
                                   {k: p.grad.clone() for k, p in net.named_parameters() if p.grad is not None})
    loss_plain, fwd_plain, total_plain, grads_plain = results[False]
    loss_ckpt, fwd_ckpt, total_ckpt, grads_ckpt = results[True]
    assert fwd_plain == fwd_ckpt == total_plain > 0
    assert total_ckpt == 2 * fwd_ckpt  # every block ran again in backward
    torch.testing.assert_close(loss_ckpt, loss_plain, rtol=0, atol=0)
    assert grads_plain.keys() == grads_ckpt.keys()
    for key in grads_plain:
        torch.testing.assert_close(grads_ckpt[key], grads_plain[key], rtol=1e-5, atol=1e-7, msg=key)


def test_activation_checkpointing_is_off_without_gradients():
    cls = ARCH_REGISTRY.get("MIAVSR")
    net = cls(**cls.tiny_config).eval()
    assert all(block.use_checkpoint for block in net.patch_align["forward_1"].blocks())
    with torch.no_grad():
        out = net(torch.rand(1, 2, 3, 8, 8))
    assert out.shape == (1, 2, 3, 32, 32)


# ------------------------------------------------------------------ training-mode randomness

def test_training_keep_mask_is_straight_through_gumbel_at_temperature_two_thirds():
    """Forward: hard 0/1 from the noisy logit; backward: the gradient of sigmoid((logit + g1 - g2) / (2/3)),
    with g1, g2 the two Gumbel draws of the official ``Gumbel`` module (eps 1e-8)."""
    from vsrt.archs.mia_vsr_arch import gumbel_sigmoid_keep

    logit = torch.linspace(-3, 3, 64, requires_grad=True)
    torch.manual_seed(5)
    hard = gumbel_sigmoid_keep(logit, training=True)
    hard.sum().backward()
    torch.manual_seed(5)  # the same two uniform draws, by hand
    u1, u2 = torch.rand(64), torch.rand(64)
    noisy = logit.detach() - torch.log(-torch.log(u1 + 1e-8) + 1e-8) + torch.log(-torch.log(u2 + 1e-8) + 1e-8)
    soft = torch.sigmoid(noisy / (2 / 3))
    torch.testing.assert_close(hard.detach(), (soft >= 0.5).float(), rtol=0, atol=0)
    torch.testing.assert_close(logit.grad, soft * (1 - soft) / (2 / 3))
    assert 0 < hard.detach().mean() < 1 and not torch.equal(hard.detach(), (logit >= 0).float())  # noise acts


def test_drop_path_drops_whole_samples_and_rescales_the_rest():
    from vsrt.archs.layers.mlp import DropPath

    layer = DropPath(0.5).train()
    torch.manual_seed(0)
    out = layer(torch.ones(64, 3, 4, 5))
    per_sample = out.flatten(1)
    assert torch.equal(per_sample.min(1).values, per_sample.max(1).values)  # each sample all 0 or all 2
    assert set(per_sample[:, 0].tolist()) == {0.0, 2.0}
    assert torch.equal(layer.eval()(out), out)


# ------------------------------------------------------------------ the loss

def official_sparsity_loss(masks: list) -> torch.Tensor:
    """The official formula, written out: 1e-4 * sum of entries / (branches * (steps - 1) * blocks)."""
    total = torch.zeros(())
    for branch in masks:
        for step in branch:
            for kept in step:
                if kept is not None:
                    total = total + kept
    return 1e-4 * total / (len(masks) * (len(masks[0]) - 1) * len(masks[0][0]))


def hand_made_masks(num_branches: int = 4, num_steps: int = 3, num_blocks: int = 2) -> list:
    generator = torch.Generator().manual_seed(0)
    return [[[None] * num_blocks] + [[torch.rand((), generator=generator).requires_grad_() for _ in range(num_blocks)]
                                     for _ in range(num_steps - 1)] for _ in range(num_branches)]


def entries(masks: list) -> list[torch.Tensor]:
    return [m for branch in masks for step in branch for m in step if m is not None]


def test_sparsity_loss_reproduces_the_official_formula():
    masks = hand_made_masks()
    loss = build_loss({"type": "SparsityLoss"})(masks)
    expected = official_sparsity_loss(masks)
    torch.testing.assert_close(loss, expected, rtol=1e-6, atol=0)
    loss.backward()
    for kept in entries(masks):  # d loss / d entry = 1e-4 / (4 branches * 2 recurrent steps * 2 blocks)
        torch.testing.assert_close(kept.grad, torch.tensor(1e-4 / 16))
    ratio = kept_token_ratio(masks)
    torch.testing.assert_close(ratio, torch.stack(entries(masks)).mean())


def test_sparsity_target_is_a_hinge_on_the_kept_ratio():
    masks = hand_made_masks()
    ratio = float(kept_token_ratio(masks).detach())
    below = SparsityLoss(loss_weight=2.0, target=ratio - 0.1)(masks)
    torch.testing.assert_close(below, torch.tensor(2.0 * 0.1), rtol=1e-5, atol=0)
    above = SparsityLoss(loss_weight=2.0, target=ratio + 0.1)(masks)
    above.backward()
    assert float(above.detach()) == 0.0
    assert all(float(m.grad) == 0.0 for m in entries(masks))
    torch.testing.assert_close(SparsityLoss(target=0.0)(masks), official_sparsity_loss(masks))
    with pytest.raises(ValueError, match="at least 2 frames"):
        kept_token_ratio([[[None, None]]] * 4)
    with pytest.raises(ValueError, match="target is a kept-token fraction"):
        SparsityLoss(target=70)


@pytest.mark.parametrize(("train_opt", "weight", "target"), [
    ({}, 1e-4, None),                                                   # the official model always builds it
    ({"sparsity_target": {"type": "SparsityLoss"}}, 1e-4, None),        # official REDS file: a spec
    ({"sparsity_target": [0.7]}, 1e-4, 0.7),                            # official Vimeo parsity_target, renamed
    ({"sparsity_target": 0.5, "sparsity_opt": {"type": "SparsityLoss", "loss_weight": 1}}, 1.0, 0.5),
    ({"sparsity_opt": {"type": "SparsityLoss", "target": [0.25]}}, 1e-4, 0.25),
])
def test_build_sparsity_loss_option_shapes(train_opt, weight, target):
    loss = build_sparsity_loss(train_opt)
    assert isinstance(loss, SparsityLoss) and loss.loss_weight == weight and loss.target == target


@pytest.mark.parametrize(("train_opt", "error", "match"), [
    ({"sparsity_opt": {"type": "SparsityCriterion", "parsity_target": [0.7]}}, KeyError, "SparsityCriterion"),
    ({"sparsity_target": {"type": "SparsityLoss"}, "sparsity_opt": {"type": "SparsityLoss"}}, ValueError, "keep one"),
    ({"sparsity_target": 0.5, "sparsity_opt": {"type": "SparsityLoss", "target": 0.6}}, ValueError, "differs"),
    ({"sparsity_target": [0.5, 0.6]}, ValueError, "one kept-token fraction"),
    ({"sparsity_opt": {"type": "SparsityLoss", "weight": 1}}, TypeError, "weight"),
])
def test_build_sparsity_loss_errors(train_opt, error, match):
    with pytest.raises(error, match=match):
        build_sparsity_loss(train_opt, "x.yml")


def test_misspelt_official_target_key_reaches_the_loss(tmp_path):
    opt = load_yaml(TINY["MIAVSR"])
    del opt["train"]["sparsity_opt"]
    opt["train"]["parsity_target"] = [0.7]
    opt, notices = load_options(write_options(tmp_path / "o.yml", opt), is_train=True, root=tmp_path)
    assert any("parsity_target" in n for n in notices)
    assert build_sparsity_loss(opt["train"]).target == 0.7


# ------------------------------------------------------------- option files

# (file stem, network type, train dataset, num_frame, batch, total_iter, lr, fix_flow, flow_lr_mul)
OFFICIAL_RECIPES = [
    ("train_PSRT_REDS_16frames_600K", "BasicRecurrentSwin", "REDSRecurrentDataset", 16, 1, 600000, 2e-4, 5000, 0.125),
    ("train_PSRT_Vimeo90K_14frames_300K", "BasicRecurrentSwin", "Vimeo90KRecurrentDataset", -1, 1, 300000, 1e-4, -1,
     0.25),
    ("train_MIAVSR_REDS_16frames_600K", "MIAVSR", "REDSRecurrentDataset", 16, 3, 600000, 2e-4, 5000, 0.125),
    ("train_MIAVSR_Vimeo90K_14frames_300K", "MIAVSR", "Vimeo90KRecurrentDataset", -1, 3, 300000, 1e-4, -1, 0.25),
]


@pytest.mark.parametrize("path", OPTION_FILES, ids=lambda p: p.stem)
def test_option_files_load(path, tmp_path):
    is_train = path.parent.parent.name == "train"
    opt, notices = load_options(path, is_train=is_train, root=tmp_path)
    assert not notices
    network_opt = dict(opt["network_g"])
    check_network_options(ARCH_REGISTRY.get(network_opt.pop("type")), network_opt)
    raw = load_yaml(path)
    for dataset_opt in raw["datasets"].values():
        for key in ("dataroot_gt", "dataroot_lq", "meta_info_file"):
            value = dataset_opt.get(key)
            assert value is None or not os.path.isabs(value), f"{key}: {value}"
            if value and value.startswith("vsrt/"):
                assert (REPO_ROOT / value).is_file(), value
    if is_train and raw["network_g"]["type"] == "MIAVSR":
        assert isinstance(build_sparsity_loss(opt["train"]), SparsityLoss)
    if not is_train:
        pretrained = raw["path"]["pretrain_network_g"]
        assert pretrained.startswith("experiments/pretrained_models/") and raw["path"]["strict_load_g"] is True


@pytest.mark.parametrize("recipe", OFFICIAL_RECIPES, ids=lambda r: r[0])
def test_official_recipes_keep_the_official_values(recipe):
    stem, net_type, dataset, num_frame, batch, total_iter, lr, fix_flow, flow_lr_mul = recipe
    opt = load_yaml(REPO_ROOT / "options" / "train" / ("PSRT" if "PSRT" in stem else "MIAVSR") / f"{stem}.yml")
    train_set, train_opt = opt["datasets"]["train"], opt["train"]
    assert (opt["model_type"], opt["network_g"]["type"], train_set["type"]) == \
        ("RecurrentMixPrecisionRTModel", net_type, dataset)
    assert (train_set["num_frame"], train_set["batch_size_per_gpu"], train_set["gt_size"]) == (num_frame, batch, 256)
    assert train_set.get("flip_sequence", False) is (dataset == "Vimeo90KRecurrentDataset")
    assert (train_opt["total_iter"], train_opt["optim_g"]["lr"], train_opt["fix_flow"], train_opt["flow_lr_mul"]) == \
        (total_iter, lr, fix_flow, flow_lr_mul)
    assert train_opt["scheduler"]["periods"] == [total_iter] and train_opt["ema_decay"] == 0.999
    assert opt["network_g"]["depths"] == ([6] * 4 if net_type == "MIAVSR" else [6] * 3)


# ---------------------------------------------------------- tiny CPU runs

@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("clips")
    make_clips(root / "train", ["a", "b"], num_frames=3, size=48, seed=0)
    make_clips(root / "val", ["v"], num_frames=3, size=48, seed=100)
    return root


def data_overrides(clips: Path, experiments: Path) -> list[str]:
    return [f"datasets.train.dataroot_gt={clips / 'train'}", f"datasets.val.dataroot_gt={clips / 'val'}",
            f"path.experiments_root={experiments}"]


def logged(log: str, key: str) -> np.ndarray:
    return np.array([float(v) for v in re.findall(rf"{key}: ([-0-9.e+]+)", log)])


def train_tiny(arch: str, clips: Path, tmp_path: Path, *overrides: str) -> str:
    root = Path(train.main(["-opt", str(TINY[arch]), "--force_yml", *data_overrides(clips, tmp_path), *overrides]))
    assert (root / "models" / "net_g_latest.pth").is_file()
    return next(root.glob("train_*.log")).read_text()


def test_tiny_psrt_trains_on_cpu(clips, tmp_path):
    log = train_tiny("PSRT", clips, tmp_path)
    l_pix = logged(log, "l_pix")
    assert len(l_pix) == 24 and "kept_ratio" not in log and "l_spa" not in log
    assert l_pix[-5:].mean() < 0.85 * l_pix[:5].mean(), l_pix
    assert "Freeze the flow network at iteration 1" in log and "Train the flow network" not in log  # fix_flow -1
    assert "# psnr:" in log


def test_tiny_mia_trains_and_kept_ratio_falls_to_the_target(clips, tmp_path):
    log = train_tiny("MIAVSR", clips, tmp_path)
    l_pix, kept, l_spa = logged(log, "l_pix"), logged(log, "kept_ratio"), logged(log, "l_spa")
    assert len(l_pix) == len(kept) == len(l_spa) == 24
    assert l_pix[-5:].mean() < 0.85 * l_pix[:5].mean(), l_pix
    target = 0.3  # train.sparsity_opt.target of the tiny file
    assert kept[:3].mean() > 0.45, kept  # an untrained mask predictor keeps about half of the tokens
    assert abs(kept[-5:].mean() - target) < 0.05, kept
    # hinge: l_spa = loss_weight * max(0, kept - target), the ratio logged being the same quantity
    np.testing.assert_allclose(l_spa, 20 * np.clip(kept - target, 0, None), atol=2e-3)
    assert "SparsityLoss(loss_weight=20.0, target=0.3)" in log and "# psnr:" in log


@pytest.mark.parametrize("network_opt", [
    {"type": "BasicRecurrentSwin"}, {"type": "MIAVSR", "use_mask": False}, {"type": "IIAVSR"}, {"type": "MIAVSR"},
], ids=["psrt", "mia_without_masks", "iia", "mia"])
def test_sparsity_loss_only_when_the_network_returns_masks(network_opt, tmp_path):
    opt = load_yaml(TINY["MIAVSR"])
    opt["network_g"] = {**opt["network_g"], "use_mask": True, **network_opt}
    if network_opt["type"] != "MIAVSR":
        del opt["network_g"]["use_mask"]
    opt["train"]["sparsity_opt"] = None
    opt["train"]["sparsity_target"] = {"type": "SparsityLoss"}  # the official REDS shape
    opt, _ = load_options(write_options(tmp_path / "o.yml", opt), is_train=True, root=tmp_path)
    model = build_model(opt)
    model.feed_data({"lq": torch.rand(1, 3, 3, 8, 8), "gt": torch.rand(1, 3, 3, 32, 32)})
    model.optimize_parameters(current_iter=1)
    log = model.get_current_log()
    has_masks = network_opt == {"type": "MIAVSR"}
    assert model.net_returns_token_masks is (network_opt["type"] != "BasicRecurrentSwin")
    assert ("l_spa" in log) is has_masks and ("kept_ratio" in log) is has_masks
    if has_masks:
        assert log["l_spa"] == pytest.approx(1e-4 * log["kept_ratio"], rel=1e-5)


@pytest.mark.parametrize("arch", ["PSRT", "MIAVSR"])
def test_dist_train_sh_two_cpu_processes(arch, clips, tmp_path):
    run_launcher("dist_train.sh", str(TINY[arch]), "--force_yml", *data_overrides(clips, tmp_path),
                 "train.total_iter=4", "val.val_freq=~")
    root = tmp_path / f"{arch}_tiny_cpu"
    assert (root / "models" / "net_g_latest.pth").is_file()
    log = next(root.glob("train_*.log")).read_text()
    assert "2 process(es)" in log and len(logged(log, "l_pix")) == 4
    assert (len(logged(log, "kept_ratio")) == 4) is (arch == "MIAVSR")
