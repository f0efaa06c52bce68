"""Option files: YAML dialect, validation errors, overrides, derived paths."""

from pathlib import Path

import pytest

from vsrt.options import OptionError, apply_override, load_options, load_yaml, parse_literal

MINIMAL = """
name: tiny
model_type: VideoRecurrentModel
scale: 4
num_gpu: 0
network_g: {type: BasicVSR, num_feat: 8, num_block: 1}
datasets:
  train: {name: t, type: VideoFolderDataset, dataroot_gt: data/gt}
train:
  total_iter: 10
  optim_g: {type: Adam, lr: !!float 2e-4}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "opt.yml"
    path.write_text(text)
    return path


def test_yaml_dialect_tuples_floats_none(tmp_path):
    data = load_yaml(write(tmp_path, "a: !!python/tuple [1.5, 3.8]\nb: 2e-4\nc: !!float 5e3\nd: ~\ne: 1.0e-3\n"))
    assert data == {"a": (1.5, 3.8), "b": 2e-4, "c": 5000.0, "d": None, "e": 1e-3}


def test_unsafe_yaml_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="invalid YAML"):
        load_yaml(write(tmp_path, "a: !!python/object/apply:os.system ['echo hi']\n"))


def test_minimal_options_and_paths(tmp_path):
    opt, notices = load_options(write(tmp_path, MINIMAL), is_train=True, root=tmp_path)
    assert notices == []
    assert opt["num_gpu"] == 0
    assert opt["datasets"]["train"]["phase"] == "train"
    assert opt["datasets"]["train"]["scale"] == 4
    assert opt["train"]["optim_g"]["lr"] == pytest.approx(2e-4)
    assert Path(opt["path"]["models"]) == tmp_path / "experiments" / "tiny" / "models"
    test_opt, _ = load_options(write(tmp_path, MINIMAL), is_train=False, root=tmp_path)
    assert Path(test_opt["path"]["visualization"]) == tmp_path / "results" / "tiny" / "visualization"


@pytest.mark.parametrize("snippet, message", [
    ("val_freqq: 3\n", "unknown key 'val_freqq'"),
    ("train:\n  total_iters: 5\n  optim_g: {type: Adam, lr: 1}\n", "Did you mean 'total_iter'"),
    ("logger:\n  print_frq: 5\n", "Did you mean 'print_freq'"),
])
def test_unknown_keys_name_the_key_and_file(tmp_path, snippet, message):
    text = MINIMAL.replace("train:\n  total_iter: 10\n  optim_g: {type: Adam, lr: !!float 2e-4}\n", "") + snippet
    path = write(tmp_path, text)
    with pytest.raises(OptionError, match=message) as info:
        load_options(path, is_train=True, root=tmp_path)
    assert str(path) in str(info.value)


def test_unknown_dataset_key(tmp_path):
    path = write(tmp_path, MINIMAL.replace("dataroot_gt: data/gt", "dataroot_gtt: data/gt"))
    with pytest.raises(OptionError, match="datasets.train.dataroot_gtt.*dataroot_gt"):
        load_options(path, is_train=True, root=tmp_path)


def test_missing_required_key(tmp_path):
    path = write(tmp_path, MINIMAL.replace("model_type: VideoRecurrentModel\n", ""))
    with pytest.raises(OptionError, match="required key 'model_type'"):
        load_options(path, is_train=True, root=tmp_path)


def test_overrides_are_yaml_literals_not_eval():
    opt = {"train": {"total_iter": 5, "optim_g": {"lr": 1.0}}, "val": None}
    apply_override(opt, "train.total_iter=100")
    apply_override(opt, "train:optim_g:lr=1e-4")
    apply_override(opt, "train.fix_flow=~")
    assert opt["train"] == {"total_iter": 100, "optim_g": {"lr": 1e-4}, "fix_flow": None}
    assert parse_literal("__import__('os')") == "__import__('os')"
    with pytest.raises(OptionError, match="no option 'trian'"):
        apply_override(opt, "trian.total_iter=1")


def test_renamed_official_key_is_accepted_with_notice(tmp_path):
    text = MINIMAL + "  parsity_target: [0.7]\n"
    opt, notices = load_options(write(tmp_path, text), is_train=True, root=tmp_path)
    assert opt["train"]["sparsity_target"] == [0.7]
    assert "parsity_target" in notices[0]


def test_debug_name(tmp_path):
    opt, _ = load_options(write(tmp_path, MINIMAL), is_train=True, debug=True, root=tmp_path)
    assert opt["name"] == "debug_tiny"
    assert opt["logger"]["print_freq"] == 1
