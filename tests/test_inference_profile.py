"""scripts/profile_model.py: one markdown row with parameters, FLOPs, latency and memory."""

from __future__ import annotations

import pytest
import torch
import yaml

from helpers import REPO_ROOT, load_script
from vsrt.archs import build_network

SCRIPT = REPO_ROOT / "scripts" / "profile_model.py"


def test_profile_row_counts_params_and_flops(tmp_path, capsys):
    network_g = {"type": "BasicVSR", "num_feat": 8, "num_block": 1}
    opt = tmp_path / "tiny.yml"
    opt.write_text(yaml.safe_dump({"name": "tiny", "network_g": network_g}))
    row = load_script(SCRIPT).main(["--opt", str(opt), "--frames", "3", "--size", "16", "16", "--device", "cpu",
                              "--warmup", "0", "--runs", "1", "--header"])
    cells = [c.strip() for c in row.strip("|").split("|")]
    params = sum(p.numel() for p in build_network(network_g).parameters())
    assert cells[0] == "tiny" and cells[1] == "3×16×16" and cells[2] == "CPU" and cells[3] == "fp32"
    assert float(cells[4]) == round(params / 1e6, 2)
    assert float(cells[5]) > 0 and abs(float(cells[6]) - float(cells[5]) / 2) <= 0.1  # MACs = FLOPs / 2
    out = capsys.readouterr().out
    assert out.startswith("| model |") and "FlopCounterMode" in out and "RSS" in out


def test_flop_counter_counts_a_conv_exactly():
    """The documented convention: 2 FLOPs per multiply-add."""
    conv = torch.nn.Conv2d(3, 4, 3, padding=1, bias=False)
    flops = load_script(SCRIPT).count_flops(conv, torch.rand(1, 3, 8, 8), torch.device("cpu"), "fp32")
    assert flops == 2 * (4 * 8 * 8) * (3 * 3 * 3)


def test_train_step_profile_and_network_overrides(tmp_path, capsys):
    """--train counts forward + backward; --set changes network_g (here PSRT's activation checkpointing)."""
    network_g = {"type": "BasicRecurrentSwin", "mid_channels": 8, "embed_dim": 12, "depths": [2], "num_heads": [2]}
    opt = tmp_path / "tiny_psrt.yml"
    opt.write_text(yaml.safe_dump({"name": "tiny", "network_g": network_g}))
    script = load_script(SCRIPT)
    common = ["--opt", str(opt), "--frames", "2", "--size", "16", "16", "--device", "cpu", "--warmup", "0",
              "--runs", "1"]

    def flops(row: str) -> float:
        return float([c.strip() for c in row.strip("|").split("|")][5])

    inference = script.main(common)
    plain = script.main([*common, "--train", "--set", "use_checkpoint=false"])
    checkpointed = script.main([*common, "--train"])
    assert "use_checkpoint=false (train step)" in plain and "(train step)" in checkpointed
    assert flops(plain) > 2 * flops(inference)  # the backward pass costs about twice the forward
    assert flops(checkpointed) > flops(plain)  # the blocks' forward runs again in backward
    with pytest.raises(SystemExit, match="KEY=VALUE"):
        script.main([*common, "--set", "use_checkpoint"])
    with pytest.raises(TypeError, match="use_checkpointing"):
        script.main([*common, "--set", "use_checkpointing=false"])
