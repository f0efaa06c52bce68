"""torch.compile: every architecture's blocks compile as one graph each and match eager.

Most tests use dynamo with the ``eager`` backend (the graph capture, which is what fails
on a graph break, without code generation) so that they take seconds; one test runs a
real inductor compile of a small block when ``VSRT_TEST_INDUCTOR=1``.
"""

from __future__ import annotations

import copy
import os

import pytest
import torch
import torch._dynamo

from vsrt.archs import ARCH_REGISTRY
from vsrt.utils.compile import CompileSettings, compile_network, compile_targets, parse_compile_option

GRAPHS: list[str] = []


@torch._dynamo.register_backend
def vsrt_counting_eager(gm: torch.fx.GraphModule, example_inputs: list) -> object:
    """``eager`` that records every graph it is given (so a test sees that blocks were compiled)."""
    GRAPHS.append(gm.code)
    return gm.forward


def tiny_network(name: str) -> tuple[torch.nn.Module, torch.Tensor]:
    cls = ARCH_REGISTRY.get(name)
    torch.manual_seed(0)
    net = cls(**cls.tiny_config).eval()
    n, t, c, h, w = getattr(cls, "tiny_input_shape", (1, 3, 3, 16, 16))
    return net, torch.rand(n, t, c, h, w)


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    GRAPHS.clear()
    yield
    torch._dynamo.reset()


@pytest.mark.parametrize("name", sorted(ARCH_REGISTRY.keys()))
def test_blocks_compile_fullgraph_and_match_eager(name):
    net, lq = tiny_network(name)
    with torch.no_grad():
        expected = net(lq)
        count = compile_network(net, CompileSettings(backend="vsrt_counting_eager", fullgraph=True))
        assert count > 0, f"{name} declares no compile_blocks"
        out = net(lq)
    assert GRAPHS, "no block went through dynamo"
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=0)


def test_compiled_blocks_train_with_activation_checkpointing():
    """Training forward + backward through compiled, checkpointed PSRT blocks: same loss and gradients."""
    cls = ARCH_REGISTRY.get("BasicRecurrentSwin")
    torch.manual_seed(0)
    net = cls(**cls.tiny_config, use_checkpoint=True).train()
    lq = torch.rand(1, 3, 3, 16, 16)

    def loss_and_grads() -> tuple[torch.Tensor, list[torch.Tensor]]:
        net.zero_grad(set_to_none=False)
        torch.manual_seed(1)  # stochastic depth draws
        loss = net(lq).square().mean()
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in net.parameters() if p.grad is not None]

    for p in net.parameters():
        p.grad = torch.zeros_like(p)
    loss, grads = loss_and_grads()
    compile_network(net, CompileSettings(backend="vsrt_counting_eager"))
    compiled_loss, compiled_grads = loss_and_grads()
    assert GRAPHS
    torch.testing.assert_close(compiled_loss, loss, atol=1e-6, rtol=0)
    for got, want in zip(compiled_grads, grads):  # the traced attention backward may pick another SDPA kernel
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_compile_keeps_state_dict_keys_and_is_idempotent():
    net, _ = tiny_network("BasicVSR")
    keys = list(net.state_dict())
    settings = CompileSettings(backend="eager")
    assert compile_network(net, settings) == compile_network(net, settings) == len(compile_targets(net))
    assert list(net.state_dict()) == keys
    block, method = compile_targets(net)[0]
    assert getattr(block, method).__func__ is not getattr(type(block), method)
    copied_block, _ = compile_targets(copy.deepcopy(net))[0]  # e.g. an EMA copy made after compiling
    bound = getattr(copied_block, method)
    assert bound.__self__ is copied_block and bound.__func__ is getattr(block, method).__func__


@pytest.mark.parametrize(("value", "expected"), [
    (False, None), (None, None), (True, CompileSettings()),
    ({"backend": "aot_eager", "mode": "max-autotune", "dynamic": False},
     CompileSettings(backend="aot_eager", mode="max-autotune", dynamic=False)),
])
def test_parse_compile_option(value, expected):
    assert parse_compile_option(value) == expected


@pytest.mark.parametrize(("value", "message"), [
    ({"bakend": "eager"}, "compile: unknown key 'bakend'. Did you mean 'backend'"),
    ({"mode": "fast"}, "compile: compile.mode 'fast' is not one of default, reduce-overhead"),
    ({"dynamic": "yes"}, "compile.dynamic must be true, false or ~"),
    ("inductor", "compile must be true, false or a mapping"),
])
def test_bad_compile_option_is_a_clear_error(value, message):
    with pytest.raises(ValueError, match=message):
        parse_compile_option(value)


def test_unknown_backend_is_named():
    net, _ = tiny_network("BasicVSR")
    with pytest.raises(ValueError, match="compile.backend 'indutor' is not a torch.compile backend. "
                                         "Did you mean 'inductor'"):
        compile_network(net, CompileSettings(backend="indutor"))


@pytest.mark.skipif(os.environ.get("VSRT_TEST_INDUCTOR") != "1",
                    reason="a cold inductor compile takes ~40 s on the 2-core machine; VSRT_TEST_INDUCTOR=1 runs it")
def test_inductor_compiles_a_residual_block():
    net, lq = tiny_network("BasicVSR")
    trunk = net.backward_trunk
    x = torch.rand(1, trunk.main[0].in_channels, 16, 16)
    with torch.no_grad():
        expected = trunk(x)
        compile_network(net, CompileSettings(backend="inductor"))
        torch.testing.assert_close(trunk(x), expected, atol=1e-4, rtol=0)


def test_training_with_compile_option_runs_compiled_blocks(tmp_path):
    """``compile:`` in an option file: two training iterations through compiled blocks; the
    checkpoint keeps the eager network's keys (it loads strictly into an uncompiled network)."""
    from pathlib import Path

    from tests.helpers import tiny_train_options, write_options
    from vsrt import train
    from vsrt.archs import build_network

    opt = tiny_train_options(tmp_path, **{"train.total_iter": 2, "logger.print_freq": 1,
                                          "compile": {"backend": "vsrt_counting_eager"}})
    root = Path(train.main(["-opt", str(write_options(tmp_path / "c.yml", opt))]))
    assert GRAPHS, "training did not go through the compiled blocks"
    log = next(root.glob("train_*.log")).read_text()
    assert "torch.compile" in log and "iter:       2" in log and "l_pix:" in log
    state = torch.load(root / "models" / "net_g_latest.pth", weights_only=True)
    build_network(opt["network_g"]).load_state_dict(state["params"], strict=True)


def test_vsrt_test_compile_flag_matches_eager(tmp_path):
    from tests.helpers import make_clips, write_options
    from vsrt import test as vsrt_test
    from vsrt.archs import build_network

    make_clips(tmp_path / "clips", ["a"], num_frames=3, size=32, seed=4)
    torch.manual_seed(0)
    network_g = {"type": "BasicVSR", "num_feat": 8, "num_block": 1, "spynet_path": None}
    torch.save({"params": build_network(network_g).state_dict()}, tmp_path / "net.pth")
    opt = {"name": "tiny_test", "model_type": "VideoRecurrentModel", "scale": 4, "num_gpu": 0,
           "datasets": {"test": {"name": "clips", "type": "VideoFolderDataset",
                                 "dataroot_gt": str(tmp_path / "clips"), "test_mode": True}},
           "network_g": network_g,
           "path": {"pretrain_network_g": str(tmp_path / "net.pth"), "results_root": str(tmp_path / "r")},
           "val": {"metrics": {"psnr": {"type": "calculate_psnr", "crop_border": 0, "test_y_channel": False}}}}
    path = str(write_options(tmp_path / "t.yml", opt))
    eager = vsrt_test.main(["-opt", path])["clips"]["average"]["psnr"]
    assert not GRAPHS
    compiled = vsrt_test.main(["-opt", path, "--compile", "--force_yml", "compile={backend: vsrt_counting_eager}"])
    assert GRAPHS
    assert compiled["clips"]["average"]["psnr"] == pytest.approx(eager, abs=1e-4)


def test_inference_compile_flag_compiles_the_runner_network(monkeypatch):
    from vsrt.inference.cli import add_model_arguments
    from vsrt.inference.runner import ClipRunner
    from vsrt.inference.spec import describe_network

    parser = __import__("argparse").ArgumentParser()
    add_model_arguments(parser)
    args = parser.parse_args(["--model", "basicvsr_reds", "--compile", "--no-tf32"])
    assert args.compile and not args.tf32
    calls = []
    monkeypatch.setattr("vsrt.utils.compile.compile_network", lambda net, settings: calls.append((net, settings)))
    net, _ = tiny_network("BasicVSR")
    network_g = {"type": "BasicVSR", **net.tiny_config}
    runner = ClipRunner(net, describe_network(network_g, net), torch.device("cpu"), compile=args.compile,
                        tf32=args.tf32)
    assert calls == [(runner.net, CompileSettings())]
