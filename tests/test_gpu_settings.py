"""GPU knobs that can be checked on the CPU: no host sync in a training step, fused optimizers,
TF32 / cudnn.benchmark options, and the device-side training log."""

from __future__ import annotations

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils._python_dispatch import TorchDispatchMode

from tests.helpers import tiny_train_options, write_options
from vsrt.models import build_model
from vsrt.models.base_model import build_optimizer
from vsrt.models.runtime import RuntimeSettings, apply_backend_settings, can_fuse, runtime_settings, set_tf32
from vsrt.models.train_log import TrainLog
from vsrt.options import load_options
from vsrt.utils.compile import CompileSettings

HOST_READS = {torch.ops.aten._local_scalar_dense.default, torch.ops.aten.item.default,
              torch.ops.aten.is_nonzero.default, torch.ops.aten.equal.default}


class HostReads(TorchDispatchMode):
    """Records the ops that copy a tensor value to the host (a device sync on CUDA)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in HOST_READS:
            self.seen.append(str(func))
        return func(*args, **(kwargs or {}))


def tiny_model(tmp_path, **changes):
    opt, _ = load_options(write_options(tmp_path / "o.yml", tiny_train_options(tmp_path, **changes)),
                          is_train=True, root=tmp_path)
    return build_model(opt)


def test_training_steps_read_nothing_on_the_host_until_the_log_is_read(tmp_path):
    # SGD: the CPU Adam reads its step count on the host (CUDA's fused Adam does not)
    model = tiny_model(tmp_path, **{"train.grad_clip": 1.0, "train.optim_g": {"type": "SGD", "lr": 1e-3,
                                                                                "momentum": 0.9}})
    model.train_log = TrainLog(check_every_step=False)  # what a CUDA run does
    batches = [{"lq": torch.rand(1, 3, 3, 8, 8), "gt": torch.rand(1, 3, 3, 32, 32)} for _ in range(2)]
    with HostReads() as reads:
        for it, batch in enumerate(batches, start=3):  # fix_flow: 2 -> SpyNet trains too
            model.train_step([batch], current_iter=it)
    assert reads.seen == []
    with HostReads() as reads:
        log = model.get_current_log()
    assert reads.seen, "reading the log is where the host sync happens"
    assert set(log) == {"l_pix"} and log["l_pix"] > 0
    assert model.get_current_log() == {}  # averages since the last read


def test_log_is_the_mean_since_the_last_read_and_a_nan_names_its_iteration():
    log = TrainLog(check_every_step=False)
    for it, value in enumerate([1.0, 2.0, 6.0], start=1):
        log.add({"l_pix": torch.tensor(value), "scale": 2.5}, current_iter=it)
    assert log.read() == {"l_pix": pytest.approx(3.0)}
    for it, value in [(10, 1.0), (11, float("nan")), (12, float("inf"))]:
        log.add({"l_pix": torch.tensor(value)}, current_iter=it)  # no error yet: nothing was read
    with pytest.raises(FloatingPointError, match=r"Non-finite loss \(l_pix=nan\) at iteration 11"):
        log.read()
    eager = TrainLog(check_every_step=True)
    with pytest.raises(FloatingPointError, match="at iteration 4"):
        eager.add({"l_pix": torch.tensor(float("nan"))}, current_iter=4)


def test_fused_optimizer_only_for_cuda_floating_parameters():
    cpu = [torch.nn.Parameter(torch.rand(3))]
    assert not can_fuse(torch.optim.AdamW, cpu)
    assert not build_optimizer([{"params": cpu}], {"type": "AdamW", "lr": 1e-3}).defaults["fused"]
    assert not can_fuse(torch.optim.Adadelta, cpu)  # no fused kernel
    with FakeTensorMode(allow_non_fake_inputs=True):  # CUDA tensors without a GPU
        cuda = [torch.nn.Parameter(torch.empty(3, device="cuda")), torch.nn.Parameter(torch.empty(2, device="cuda"))]
        assert can_fuse(torch.optim.AdamW, cuda) and can_fuse(torch.optim.Adam, cuda)
        assert not can_fuse(torch.optim.AdamW, [*cuda, *cpu])  # mixed devices
        assert build_optimizer([{"params": cuda}], {"type": "AdamW", "lr": 1e-3}).defaults["fused"] is True
        explicit = build_optimizer([{"params": cuda}], {"type": "Adam", "lr": 1e-3, "foreach": True})
        assert not explicit.defaults["fused"]  # the option file's choice wins


def test_runtime_options_defaults_and_errors():
    assert runtime_settings({}) == RuntimeSettings(compile=None, tf32=True, cudnn_benchmark=True)
    assert runtime_settings({"compile": {"backend": "eager"}, "tf32": False}).compile == CompileSettings("eager")
    with pytest.raises(ValueError, match="o.yml: tf32 must be true or false, got 'yes'"):
        runtime_settings({"tf32": "yes", "opt_path": "o.yml"})
    with pytest.raises(ValueError, match="o.yml: compile: unknown key 'mod'. Did you mean 'mode'"):
        runtime_settings({"compile": {"mod": "max-autotune"}, "opt_path": "o.yml"})


def test_tf32_and_cudnn_benchmark_are_set_for_cuda_only():
    matmul = torch.backends.cuda.matmul
    before = (matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision, torch.backends.cudnn.benchmark)
    try:
        set_tf32(False)
        torch.backends.cudnn.benchmark = False
        apply_backend_settings(RuntimeSettings(tf32=True, cudnn_benchmark=True), torch.device("cpu"))
        assert matmul.fp32_precision == "ieee" and not torch.backends.cudnn.benchmark  # CPU: untouched
        apply_backend_settings(RuntimeSettings(tf32=True, cudnn_benchmark=True), torch.device("cuda", 0))
        assert matmul.fp32_precision == torch.backends.cudnn.conv.fp32_precision == "tf32"
        assert torch.backends.cudnn.benchmark
        apply_backend_settings(RuntimeSettings(tf32=False, cudnn_benchmark=False), torch.device("cuda", 0))
        assert matmul.fp32_precision == "ieee" and not torch.backends.cudnn.benchmark
    finally:
        matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision, torch.backends.cudnn.benchmark = before


def test_mia_training_step_reads_nothing_on_the_host_on_the_sync_free_path(tmp_path):
    """MIA-VSR with token masks: the sparsity loss and kept_ratio stay on the device too."""
    from vsrt.archs.layers.execution import force_sync_free
    from vsrt.options import load_yaml

    opt = load_yaml("options/train/MIAVSR/train_MIAVSR_tiny_cpu.yml")
    opt["train"]["optim_g"] = {"type": "SGD", "lr": 1e-3}
    opt["path"] = {"experiments_root": str(tmp_path / "experiments")}
    opt, _ = load_options(write_options(tmp_path / "mia.yml", opt), is_train=True, root=tmp_path)
    model = build_model(opt)
    model.train_log = TrainLog(check_every_step=False)
    batch = {"lq": torch.rand(1, 4, 3, 16, 16), "gt": torch.rand(1, 4, 3, 64, 64)}
    with force_sync_free(), HostReads() as reads:  # the CUDA path: no mirror check, dense masks
        model.train_step([batch], current_iter=1)
    assert reads.seen == []
    log = model.get_current_log()
    assert {"l_pix", "l_spa", "kept_ratio"} <= set(log) and 0 <= log["kept_ratio"] <= 1
