"""Training behaviour: resume after kill -9, precision, fix_flow, errors, distributed launch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers import REPO_ROOT, make_clips, run_launcher, tiny_train_options, write_options
from vsrt import train
from vsrt.archs import build_network
from vsrt.models import build_model
from vsrt.options import load_options


def load_params(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)


def run_train(args: list[str], env_extra: dict[str, str] | None = None, **kwargs):
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1", **(env_extra or {})}
    return subprocess.Popen([sys.executable, "-m", "vsrt.train", *args], env=env, cwd=kwargs.get("cwd"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


# Runs vsrt.train in a process that SIGKILLs itself halfway through writing 8.state: a real kill -9 at an
# exact point (the network file of iteration 8 is complete, its state is half written), with no timing race.
KILL_MIDWAY_THROUGH_STATE_8 = """
import io, os, signal, sys
import torch
real_save = torch.save
def save(obj, handle, *args, **kwargs):
    if isinstance(obj, dict) and obj.get("iter") == 8 and "optimizers" in obj:
        buffer = io.BytesIO()
        real_save(obj, buffer)
        handle.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
        handle.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    return real_save(obj, handle, *args, **kwargs)
torch.save = save
from vsrt import train
train.main(sys.argv[1:])
"""


def test_resume_after_kill_matches_uninterrupted_run(tmp_path):
    opt_path = write_options(tmp_path / "tiny.yml", tiny_train_options(tmp_path))
    reference = train.main(["-opt", str(opt_path), "--force_yml", "name=reference"])
    expected = load_params(Path(reference) / "models" / "net_g_latest.pth")

    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    killed = subprocess.run([sys.executable, "-c", KILL_MIDWAY_THROUGH_STATE_8, "-opt", str(opt_path),
                             "--force_yml", "name=killed"], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stdout[-2000:] + killed.stderr[-2000:]
    root = tmp_path / "experiments" / "killed"
    states, models = root / "training_states", root / "models"
    assert sorted(p.name for p in states.glob("*.state")) == ["4.state"]
    assert [p.name for p in states.glob(".8.state.*.tmp")], "the kill left no half-written state"
    assert sorted(p.name for p in models.glob("*.pth")) == ["net_g_4.pth", "net_g_8.pth"]

    resumed = run_train(["-opt", str(opt_path), "--force_yml", "name=killed", "--auto_resume"], cwd=tmp_path)
    output = resumed.communicate()[0]
    assert resumed.returncode == 0, output
    assert "Resumed from" in output and "4.state" in output
    assert not list(root.rglob("*.tmp")), "the half-written state was not cleaned up"
    got = load_params(models / "net_g_latest.pth")
    for key in ("params", "params_ema"):
        for name, value in expected[key].items():
            torch.testing.assert_close(got[key][name], value, rtol=0, atol=0, msg=f"{key}.{name}")


def test_checkpoint_files_and_log(tmp_path):
    opt_path = write_options(tmp_path / "tiny.yml", tiny_train_options(tmp_path, **{"train.total_iter": 4}))
    root = Path(train.main(["-opt", str(opt_path)]))
    assert sorted(p.name for p in (root / "models").iterdir()) == ["net_g_4.pth", "net_g_latest.pth"]
    assert [p.name for p in (root / "training_states").iterdir()] == ["4.state"]
    state = torch.load(root / "training_states" / "4.state", weights_only=True)
    assert state["iter"] == 4 and len(state["optimizers"]) == 1
    log = next(root.glob("train_tiny_*.log")).read_text()
    assert "iter:       4, lr:(" in log and "l_pix:" in log
    assert (root / "tiny.yml").read_text().startswith("# GENERATE TIME:")
    assert not list(root.rglob("*.tmp")), "temporary checkpoint files left behind"


def test_bf16_autocast_training_step_on_cpu(tmp_path):
    opt, _ = load_options(write_options(tmp_path / "o.yml", tiny_train_options(tmp_path, precision="bf16")),
                          is_train=True, root=tmp_path)
    model = build_model(opt)
    assert model.precision.dtype is torch.bfloat16 and not model.precision.needs_scaler
    before = {k: v.clone() for k, v in model.net_g.state_dict().items()}
    model.feed_data({"lq": torch.rand(1, 3, 3, 8, 8), "gt": torch.rand(1, 3, 3, 32, 32)})
    model.optimize_parameters(current_iter=5)
    assert torch.isfinite(model.log_dict["l_pix"])
    changed = [k for k, v in model.net_g.state_dict().items() if not torch.equal(v, before[k])]
    assert any(k.startswith("forward_trunk") for k in changed)
    assert all(v.dtype == torch.float32 for v in model.net_g.state_dict().values())


def test_fp16_request_on_cpu_falls_back_to_fp32(tmp_path):
    opt, _ = load_options(write_options(tmp_path / "o.yml", tiny_train_options(
        tmp_path, model_type="RecurrentMixPrecisionRTModel")), is_train=True, root=tmp_path)
    model = build_model(opt)
    assert model.precision.name == "fp32"


def test_fix_flow_and_flow_lr_mul(tmp_path):
    opt, _ = load_options(write_options(tmp_path / "o.yml", tiny_train_options(tmp_path)),
                          is_train=True, root=tmp_path)
    model = build_model(opt)
    normal_group, flow_group = model.optimizer_g.param_groups
    assert flow_group["lr"] == pytest.approx(normal_group["lr"] * 0.5)
    assert len(flow_group["params"]) == len(list(model.net_g.spynet.parameters()))
    batch = {"lq": torch.rand(1, 3, 3, 8, 8), "gt": torch.rand(1, 3, 3, 32, 32)}
    spynet_before = [p.clone() for p in model.net_g.spynet.parameters()]
    model.feed_data(batch)
    model.optimize_parameters(current_iter=1)  # fix_flow: 2 -> SpyNet frozen at iteration 1
    assert all(torch.equal(a, b) for a, b in zip(spynet_before, model.net_g.spynet.parameters()))
    model.optimize_parameters(current_iter=2)
    assert not all(torch.equal(a, b) for a, b in zip(spynet_before, model.net_g.spynet.parameters()))


def test_non_finite_loss_stops_with_clear_message(tmp_path):
    opt, _ = load_options(write_options(tmp_path / "o.yml", tiny_train_options(tmp_path)),
                          is_train=True, root=tmp_path)
    model = build_model(opt)
    model.feed_data({"lq": torch.rand(1, 3, 3, 8, 8), "gt": torch.full((1, 3, 3, 32, 32), float("nan"))})
    with pytest.raises(FloatingPointError, match=r"Non-finite loss \(l_pix=nan\) at iteration 7"):
        model.optimize_parameters(current_iter=7)  # on the CPU at once (free to read)




def test_missing_spynet_file_is_a_clear_error(tmp_path):
    opt = tiny_train_options(tmp_path)
    opt["network_g"]["spynet_path"] = str(tmp_path / "nope.pth")
    opt, _ = load_options(write_options(tmp_path / "o.yml", opt), is_train=True, root=tmp_path)
    with pytest.raises(FileNotFoundError, match="network_g.spynet_path.*nope.pth"):
        build_model(opt)


def test_bad_network_key_fails_before_reading_data(tmp_path):
    opt = tiny_train_options(tmp_path)
    opt["network_g"]["num_blocks"] = 2
    opt["datasets"]["train"]["dataroot_gt"] = str(tmp_path / "does_not_exist")
    opt_path = write_options(tmp_path / "o.yml", opt)
    with pytest.raises(TypeError, match="'num_blocks' is not an argument of BasicVSR. Did you mean 'num_block'"):
        train.main(["-opt", str(opt_path)])


def test_dist_train_sh_two_cpu_processes(tmp_path):
    opt = tiny_train_options(tmp_path, **{"train.total_iter": 4, "train.fix_flow": 0})
    run_launcher("dist_train.sh", str(write_options(tmp_path / "tiny.yml", opt)))
    root = tmp_path / "experiments" / "tiny"
    assert (root / "models" / "net_g_latest.pth").exists()
    log = next(root.glob("train_tiny_*.log")).read_text()
    assert "2 process(es)" in log


def test_prefetch_mode_maps_to_dataloader_options(vsrt_log):
    """BasicSR's prefetch_mode: cpu -> prefetch_factor per worker, cuda -> pinned memory; bad values fail."""
    assert train.prefetch_options({}, num_workers=2, uses_gpu=True) == {"pin_memory": False}
    assert train.prefetch_options({"prefetch_mode": "cpu", "num_prefetch_queue": 4}, 2, True) == \
        {"pin_memory": False, "prefetch_factor": 4}
    assert train.prefetch_options({"prefetch_mode": "cuda"}, 2, uses_gpu=True) == {"pin_memory": True}
    assert train.prefetch_options({"pin_memory": True}, 2, uses_gpu=False) == {"pin_memory": False}
    assert train.prefetch_options({"prefetch_mode": "cuda"}, 2, uses_gpu=False) == {"pin_memory": False}
    assert train.prefetch_options({"prefetch_mode": "cpu"}, 0, uses_gpu=False) == {"pin_memory": False}
    assert "needs a GPU" in vsrt_log.text and "no effect with num_worker_per_gpu: 0" in vsrt_log.text
    with pytest.raises(ValueError, match="prefetch_mode: 'gpu' is not one of"):
        train.prefetch_options({"prefetch_mode": "gpu"}, 2, True)
    with pytest.raises(ValueError, match="num_prefetch_queue must be >= 1"):
        train.prefetch_options({"prefetch_mode": "cpu", "num_prefetch_queue": 0}, 2, True)


def test_prefetch_mode_cpu_with_a_worker_trains_like_the_plain_loader(tmp_path):
    """Prefetching in a worker process changes neither the batches nor their order: same weights."""
    params = []
    for name, changes in (("prefetch", {"datasets.train.prefetch_mode": "cpu", "datasets.train.num_prefetch_queue": 3,
                                        "datasets.train.num_worker_per_gpu": 1}), ("plain", {})):
        opt = tiny_train_options(tmp_path, **{"name": name, "train.total_iter": 3, **changes})
        root = Path(train.main(["-opt", str(write_options(tmp_path / f"{name}.yml", opt))]))
        params.append(torch.load(root / "models" / "net_g_latest.pth", weights_only=True))
    assert params[0]["params"].keys() == params[1]["params"].keys()
    assert all(torch.equal(params[0]["params"][key], params[1]["params"][key]) for key in params[1]["params"])
    # the weights moved (the EMA, decay 0.9, lags behind them)
    assert not torch.equal(params[1]["params"]["conv_last.weight"], params[1]["params_ema"]["conv_last.weight"])


def test_dist_test_sh_splits_clips_and_gathers_the_same_scores(tmp_path):
    """bash dist_test.sh 2: each rank scores half of the clips; rank 0 reports what one process reports."""
    from vsrt import test as vsrt_test

    make_clips(tmp_path / "clips", ["a", "b", "c"], num_frames=3, size=32, seed=4)
    torch.manual_seed(0)
    network_g = {"type": "BasicVSR", "num_feat": 8, "num_block": 1, "spynet_path": None}
    torch.save({"params": build_network(network_g).state_dict()}, tmp_path / "net.pth")
    opt = {"name": "tiny_test", "model_type": "VideoRecurrentModel", "scale": 4, "num_gpu": 0,
           "datasets": {"test": {"name": "clips", "type": "VideoFolderDataset", "dataroot_gt": str(tmp_path / "clips"),
                                 "test_mode": True}},
           "network_g": network_g,
           "path": {"pretrain_network_g": str(tmp_path / "net.pth"), "results_root": str(tmp_path / "one")},
           "val": {"metrics": {"psnr": {"type": "calculate_psnr", "crop_border": 0, "test_y_channel": False}}}}
    single = vsrt_test.main(["-opt", str(write_options(tmp_path / "one.yml", opt))])["clips"]
    opt["path"]["results_root"] = str(tmp_path / "two")
    run_launcher("dist_test.sh", str(write_options(tmp_path / "two.yml", opt)))
    report = json.loads((tmp_path / "two" / "tiny_test" / "metrics.json").read_text())["clips"]
    assert report == single and len(report["clips"]) == 3


@pytest.mark.parametrize("center_frame_only", [True, False])
def test_validation_scores_the_centre_frame_of_septuplets(tmp_path, monkeypatch, center_frame_only):
    """A Vimeo-90K-T item (one GT frame) and ``val.center_frame_only`` score output frame t // 2; a clip with
    one GT per frame is scored frame by frame and averaged."""
    from vsrt.metrics import calculate_psnr
    from vsrt.utils import tensor2img

    opt, _ = load_options(write_options(tmp_path / "o.yml", tiny_train_options(tmp_path)), is_train=True,
                          root=tmp_path)
    if center_frame_only:
        opt["val"]["center_frame_only"] = True
    model = build_model(opt)
    torch.manual_seed(0)
    gt = torch.rand(3, 16, 16)
    outputs = torch.stack([(gt + 0.02 * (k + 1) * torch.randn(3, 16, 16)).clamp(0, 1) for k in range(7)])
    monkeypatch.setattr(model, "infer", lambda lq: outputs.unsqueeze(0))

    class Septuplets(list):
        opt = {"name": "septuplets"}

    item = {"lq": torch.zeros(7, 3, 4, 4), "folder": "00001_0001"}
    psnr = lambda out, ref: calculate_psnr(tensor2img(out), tensor2img(ref), crop_border=0)  # noqa: E731
    single_gt = model.validation(Septuplets([{**item, "gt": gt}]), current_iter=1)["psnr"]
    assert single_gt == pytest.approx(psnr(outputs[3], gt))
    every_gt = model.validation(Septuplets([{**item, "gt": gt.expand(7, -1, -1, -1)}]), current_iter=1)["psnr"]
    expected = psnr(outputs[3], gt) if center_frame_only else sum(psnr(o, gt) for o in outputs) / 7
    assert every_gt == pytest.approx(expected)
