"""A tiny BasicVSR trained on CPU must beat bicubic upsampling on a held-out clip."""

from __future__ import annotations

from pathlib import Path

from helpers import make_clips, tiny_train_options, write_options
from vsrt import train
from vsrt.data import build_dataset
from vsrt.demo import bicubic_scores
from vsrt.models import build_model
from vsrt.options import load_options


def test_tiny_basicvsr_beats_bicubic_on_heldout_clip(tmp_path):
    data = tmp_path / "data"
    make_clips(data / "train", ["a", "b", "c"], num_frames=10, size=64, seed=0)
    make_clips(data / "val", ["heldout"], num_frames=6, size=64, seed=500)
    iters = 300
    opt = tiny_train_options(tmp_path, **{
        "network_g.num_feat": 16, "network_g.num_block": 2,
        "datasets.train.gt_size": 64, "datasets.train.dataset_enlarge_ratio": 50,
        "datasets.train.batch_size_per_gpu": 4,
        "train.total_iter": iters, "train.warmup_iter": -1, "train.fix_flow": -1, "train.ema_decay": 0,
        "train.optim_g.lr": 2e-3, "train.scheduler.periods": [iters], "train.scheduler.eta_min": 5e-4,
        "logger.save_checkpoint_freq": 10_000, "logger.print_freq": 50,
    })
    opt_path = write_options(tmp_path / "beat.yml", opt)
    experiment = Path(train.main(["-opt", str(opt_path)]))

    test_opt, _ = load_options(opt_path, is_train=False, root=tmp_path)
    test_opt["path"]["pretrain_network_g"] = str(experiment / "models" / "net_g_latest.pth")
    heldout = build_dataset(test_opt["datasets"]["val"])
    metrics = {"psnr": {"type": "calculate_psnr", "crop_border": 0, "test_y_channel": False}}
    test_opt["val"]["metrics"] = metrics
    network = build_model(test_opt).validation(heldout, current_iter=0)["psnr"]
    bicubic = bicubic_scores(heldout, metrics)["psnr"]
    assert network > bicubic + 0.1, f"BasicVSR {network:.3f} dB vs bicubic {bicubic:.3f} dB"
