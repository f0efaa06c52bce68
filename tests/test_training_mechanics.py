"""Training mechanics checked against independent expectations, not against another run of the same code.

Epoch coverage of the sampler (one and several ranks, with a resume skip), per-sample seeds against the
documented formula ``SeedSequence([manual_seed, epoch, rank, position])``, resume in the middle of an
epoch, the EMA against its closed form, learning rates with warm-up against their formulas, and
gradient clipping against a hand-computed update.
"""

from __future__ import annotations

import math
import random
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import tiny_train_options, write_options
from vsrt import train
from vsrt.data import EnlargedSampler, build_dataset
from vsrt.data.resumable import SeededSampler
from vsrt.models import build_model
from vsrt.models.video_recurrent_model import VideoRecurrentModel
from vsrt.options import load_options


def documented_seed(manual_seed: int, epoch: int, rank: int, position: int) -> int:
    """The per-sample seed as vsrt.data.resumable documents it, written out here."""
    return int(np.random.SeedSequence([manual_seed, epoch, rank, position]).generate_state(1, np.uint32)[0])


def epoch_multiset(dataset_size: int, ratio: int, world_size: int) -> Counter:
    """What the ranks of one epoch cover together: ``range(total) % size``, total padded to the ranks."""
    total = math.ceil(dataset_size * ratio / world_size) * world_size
    return Counter(i % dataset_size for i in range(total))


# ----------------------------------------------------------------------------- sampler coverage


@pytest.mark.parametrize("size, ratio, world_size", [(10, 1, 1), (7, 3, 1), (10, 3, 2), (5, 1, 2), (7, 2, 3)])
def test_ranks_cover_every_index_of_each_epoch_exactly_once(size, ratio, world_size):
    samplers = [EnlargedSampler(list(range(size)), world_size, rank, ratio) for rank in range(world_size)]
    orders = []
    for epoch in range(3):
        per_rank = []
        for sampler in samplers:
            sampler.set_epoch(epoch)
            per_rank.append(list(sampler))
        # equal shares (DDP needs the same number of steps on every rank), covering the epoch together
        assert {len(indices) for indices in per_rank} == {math.ceil(size * ratio / world_size)}
        assert Counter(i for indices in per_rank for i in indices) == epoch_multiset(size, ratio, world_size)
        orders.append(per_rank)
    assert orders[0] != orders[1] != orders[2], "the order must change from epoch to epoch"


def test_padding_repeats_as_few_indices_as_possible():
    # 5 samples on 2 ranks: 6 slots, so exactly one index is seen twice and the others once
    counts = Counter()
    for rank in range(2):
        counts.update(EnlargedSampler(list(range(5)), 2, rank))
    assert sorted(counts.values()) == [1, 1, 1, 1, 2] and set(counts) == set(range(5))


@pytest.mark.parametrize("world_size, skip", [(1, 0), (1, 5), (2, 3), (3, 1)])
def test_resume_skip_leaves_out_exactly_the_trained_positions(world_size, skip):
    size, ratio, epoch = 6, 2, 4
    seen, resumed = Counter(), Counter()
    for rank in range(world_size):
        full = SeededSampler(EnlargedSampler(list(range(size)), world_size, rank, ratio), seed=3, rank=rank)
        full.set_epoch(epoch)
        everything = list(full)
        part = SeededSampler(EnlargedSampler(list(range(size)), world_size, rank, ratio), seed=3, rank=rank)
        part.set_epoch(epoch)
        part.skip_next(skip)
        rest = list(part)
        assert rest == everything[skip:]  # the same (index, seed) pairs, from position `skip` on
        seen.update(index for index, _ in everything[:skip])
        resumed.update(index for index, _ in rest)
        assert list(part) == everything, "the skip applies to one pass only"
    assert seen + resumed == epoch_multiset(size, ratio, world_size)


# ----------------------------------------------------------------------------- per-sample seeds


def test_sample_seeds_follow_the_documented_formula_and_differ():
    seeds = {}
    for epoch in range(3):
        for rank in range(2):
            sampler = SeededSampler(EnlargedSampler(list(range(4)), 2, rank, ratio=2), seed=10, rank=rank)
            sampler.set_epoch(epoch)
            for position, (_, seed) in enumerate(sampler):
                assert seed == documented_seed(10, epoch, rank, position)
                seeds[epoch, rank, position] = seed
    assert len(seeds) == 3 * 2 * 4 and len(set(seeds.values())) == len(seeds)
    # pinned values: a seed must not depend on the numpy or torch version, nor on this process
    assert documented_seed(10, 0, 0, 0) == seeds[0, 0, 0] == 3528835259
    assert seeds[2, 1, 3] == 1158468722


class RecordingDataset(torch.utils.data.Dataset):
    """Returns its index with one draw from each global generator."""

    def __len__(self) -> int:
        return 5

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        draws = [random.random(), float(np.random.rand()), float(torch.rand(()))]
        return {"index": torch.tensor(index), "draws": torch.tensor(draws, dtype=torch.float64)}


def seed_generators(seed: int) -> None:
    """What a per-sample seed means: ``random``, numpy and torch seeded with it."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def expected_draws(seed: int) -> list[float]:
    seed_generators(seed)
    return [random.random(), float(np.random.rand()), float(torch.rand(()))]


def test_training_loader_seeds_each_sample_and_spares_the_global_stream(tmp_path, monkeypatch):
    """``train.build_train_loader``: every sample's random draws come from its own seed."""
    import vsrt.data

    opt = tiny_train_options(tmp_path, **{"datasets.train.dataset_enlarge_ratio": 2,
                                          "datasets.train.batch_size_per_gpu": 2})
    monkeypatch.setattr(vsrt.data, "build_dataset", lambda dataset_opt: RecordingDataset())
    loader, sampler, iters_per_epoch = train.build_train_loader(opt, seed=10)
    assert iters_per_epoch == 5  # 5 samples x 2 / batch 2, drop_last
    seed_generators(1234)
    following = (torch.rand(3), random.random(), np.random.rand())  # what the three streams give next
    seed_generators(1234)
    epochs = {}
    for epoch in (0, 1):
        sampler.set_epoch(epoch)
        epochs[epoch] = list(loader)
    # loading samples leaves the training loop's own streams where they were
    torch.testing.assert_close(torch.rand(3), following[0], rtol=0, atol=0)
    assert (random.random(), np.random.rand()) == following[1:]
    for epoch, batches in epochs.items():
        indices = torch.cat([b["index"] for b in batches]).tolist()
        assert Counter(indices) == epoch_multiset(5, 2, 1)
        draws = torch.cat([b["draws"] for b in batches])
        for position in range(len(indices)):
            expected = expected_draws(documented_seed(10, epoch, 0, position))
            assert draws[position].tolist() == pytest.approx(expected, rel=1e-7), (epoch, position)
    opt["datasets"]["train"]["dataset_enlarge_ratio"] = 1  # 5 samples: two full batches, the odd one dropped
    loader, _, iters_per_epoch = train.build_train_loader(opt, seed=10)
    assert iters_per_epoch == len(list(loader)) == 2
    assert all(len(batch["index"]) == 2 for batch in loader)


# ----------------------------------------------------------------------------- resume mid-epoch


def expected_batches(opt_path: Path, epochs: int, batch_size: int) -> list[torch.Tensor]:
    """LQ batches of ``epochs`` epochs derived by hand: the sampler's order, each sample under its own seed."""
    opt, _ = load_options(opt_path, is_train=True)
    dataset = build_dataset(opt["datasets"]["train"])
    sampler = EnlargedSampler(dataset, 1, 0, ratio=opt["datasets"]["train"]["dataset_enlarge_ratio"])
    batches = []
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        samples = []
        for position, index in enumerate(sampler):
            seed_generators(documented_seed(opt["manual_seed"], epoch, 0, position))
            samples.append(dataset[index]["lq"])
        batches += [torch.stack(samples[i:i + batch_size]) for i in range(0, len(samples), batch_size)]
    return batches


def test_resume_in_the_middle_of_an_epoch_matches_the_uninterrupted_run(tmp_path, monkeypatch):
    """8 iterations per epoch, states every 3: resume at iteration 3 (epoch 0, batch 3 of 8).

    The interrupted run is the uninterrupted one's folder cut back to what existed after iteration 3,
    which is what a kill at any moment between the writes of states 3 and 6 leaves. Both runs must also
    train on exactly the batches derived by hand (new order each epoch, per-sample seeds, the skip).
    """
    opt = tiny_train_options(tmp_path, **{"datasets.train.dataset_enlarge_ratio": 8, "train.total_iter": 10,
                                          "logger.save_checkpoint_freq": 3})
    opt_path = write_options(tmp_path / "tiny.yml", opt)
    seen: list[torch.Tensor] = []
    feed_data = VideoRecurrentModel.feed_data

    def recording_feed_data(model, data):
        if data["lq"].shape[:2] == (2, 3):  # training batches (validation feeds whole clips)
            seen.append(data["lq"].clone())
        feed_data(model, data)

    monkeypatch.setattr(VideoRecurrentModel, "feed_data", recording_feed_data)
    reference = Path(train.main(["-opt", str(opt_path), "--force_yml", "name=reference"]))
    expected = expected_batches(opt_path, epochs=2, batch_size=2)[:10]
    assert len(seen) == 10
    for iteration, (got, want) in enumerate(zip(seen, expected), start=1):
        torch.testing.assert_close(got, want, rtol=0, atol=0, msg=f"batch of iteration {iteration}")
    seen.clear()
    # where each state says it is: (epoch, batch in the epoch) from iteration = epoch * 8 + batch
    for iteration, epoch, batch in ((3, 0, 3), (6, 0, 6), (9, 1, 1)):
        state = torch.load(reference / "training_states" / f"{iteration}.state", weights_only=True)
        assert (state["iter"], state["epoch"], state["batch_in_epoch"]) == (iteration, epoch, batch)

    resumed = tmp_path / "experiments" / "resumed"
    for sub, name in (("models", "net_g_3.pth"), ("training_states", "3.state")):
        (resumed / sub).mkdir(parents=True)
        shutil.copy(reference / sub / name, resumed / sub / name)
    train.main(["-opt", str(opt_path), "--force_yml", "name=resumed", "--auto_resume"])
    assert len(seen) == 7
    for iteration, (got, want) in enumerate(zip(seen, expected[3:]), start=4):
        torch.testing.assert_close(got, want, rtol=0, atol=0, msg=f"resumed batch of iteration {iteration}")
    assert "Resumed from" in next(resumed.glob("train_resumed_*.log")).read_text()
    for name in ("net_g_6.pth", "net_g_9.pth", "net_g_latest.pth"):
        expected = torch.load(reference / "models" / name, weights_only=True)
        got = torch.load(resumed / "models" / name, weights_only=True)
        for key in ("params", "params_ema"):
            for param, value in expected[key].items():
                torch.testing.assert_close(got[key][param], value, rtol=0, atol=0, msg=f"{name} {key}.{param}")
    for iteration in (6, 9):
        state = torch.load(resumed / "training_states" / f"{iteration}.state", weights_only=True)
        assert state["batch_in_epoch"] == (iteration - 1) % 8 + 1 and state["epoch"] == (iteration - 1) // 8


# ----------------------------------------------------------------------------- EMA, lr, clipping


@pytest.fixture
def tiny_model(tmp_path):
    def make(**changes):
        opt, _ = load_options(write_options(tmp_path / "o.yml", tiny_train_options(tmp_path, **changes)),
                              is_train=True, root=tmp_path)
        return build_model(opt)
    return make


def test_ema_after_n_updates_equals_the_closed_form(tiny_model):
    model = tiny_model(**{"train.ema_decay": 0.8})
    decay, steps = 0.8, 5
    net = model.net_g
    start = {k: v.detach().clone().double() for k, v in net.named_parameters()}
    ema0 = {k: v.detach().clone().double() for k, v in model.net_g_ema.named_parameters()}
    for name in start:
        torch.testing.assert_close(ema0[name], start[name], rtol=0, atol=0)  # the EMA starts as a copy
    values = []
    with torch.no_grad():
        for k in range(1, steps + 1):  # p_k = k * start + k (hand-set parameters)
            for param in net.parameters():
                param.mul_(0)
            for name, param in net.named_parameters():
                param.add_((k * start[name] + k).float())
            values.append({name: p.detach().clone().double() for name, p in net.named_parameters()})
            model.update_ema()
    # ema_N = d^N ema_0 + (1 - d) * sum_k d^(N-k) p_k
    for name, ema in model.net_g_ema.named_parameters():
        expected = decay ** steps * ema0[name] + sum(
            (1 - decay) * decay ** (steps - k) * values[k - 1][name] for k in range(1, steps + 1))
        torch.testing.assert_close(ema.double(), expected, rtol=1e-6, atol=1e-6, msg=name)


def test_ema_update_follows_the_optimizer_step(tiny_model):
    model = tiny_model(**{"train.ema_decay": 0.5})
    ema0 = {k: v.detach().clone() for k, v in model.net_g_ema.named_parameters()}
    model.feed_data({"lq": torch.rand(1, 3, 3, 8, 8), "gt": torch.rand(1, 3, 3, 32, 32)})
    model.optimize_parameters(current_iter=5)
    for name, param in model.net_g.named_parameters():
        expected = 0.5 * ema0[name] + 0.5 * param.detach()
        torch.testing.assert_close(dict(model.net_g_ema.named_parameters())[name], expected, msg=name)


def cosine(base: float, eta_min: float, steps: int, period: int) -> float:
    return eta_min + 0.5 * (base - eta_min) * (1 + math.cos(math.pi * steps / period))


@pytest.mark.filterwarnings(r"ignore:Detected call of `lr_scheduler.step\(\)`")
def test_learning_rate_with_warmup_follows_the_formulas(tiny_model):
    """Iteration i < warmup_iter: ``lr * i / warmup``; then the schedule, stepped ``i - 1`` times."""
    model = tiny_model(**{"train.warmup_iter": 4, "train.scheduler.periods": [10], "train.flow_lr_mul": 0.5})
    bases = (1e-3, 5e-4)  # the network's group and the flow group (flow_lr_mul 0.5)
    for iteration in range(1, 11):
        model.update_learning_rate(iteration, warmup_iter=4)
        expected = [b * iteration / 4 if iteration < 4 else cosine(b, 1e-5, iteration - 1, 10) for b in bases]
        assert model.get_current_learning_rate() == pytest.approx(expected, rel=1e-9), iteration


@pytest.mark.filterwarnings(r"ignore:Detected call of `lr_scheduler.step\(\)`")
def test_multistep_restart_learning_rates_follow_the_formula(tiny_model):
    model = tiny_model(**{"train.flow_lr_mul": 1, "train.scheduler": {
        "type": "MultiStepRestartLR", "milestones": [3, 5, 5], "gamma": 0.5,
        "restarts": [0, 7], "restart_weights": [1, 0.1]}})
    for iteration in range(1, 11):
        model.update_learning_rate(iteration)
        steps = iteration - 1
        if steps < 7:
            expected = 1e-3 * 0.5 ** ((steps >= 3) + 2 * (steps >= 5))
        else:
            expected = 1e-3 * 0.1
        assert model.get_current_learning_rate() == pytest.approx([expected], rel=1e-9), iteration


def test_gradient_clipping_scales_the_whole_gradient_to_the_threshold(tiny_model):
    """SGD(lr=1): the update is ``-g * clip / ||g||`` (one global norm over all parameters)."""
    model = tiny_model(**{"train.grad_clip": 0.01, "train.ema_decay": 0, "train.fix_flow": 0,
                          "train.flow_lr_mul": 1, "train.optim_g": {"type": "SGD", "lr": 1.0}})
    model.update_learning_rate(1)
    params = dict(model.net_g.named_parameters())
    before = {k: v.detach().clone() for k, v in params.items()}
    captured = {}
    step = model.optimizer_g.step

    def record_then_step(*args, **kwargs):
        captured.update({k: p.grad.clone() for k, p in params.items() if p.grad is not None})
        return step(*args, **kwargs)

    model.optimizer_g.step = record_then_step
    model.feed_data({"lq": torch.rand(1, 3, 3, 8, 8), "gt": torch.rand(1, 3, 3, 32, 32)})
    model.optimize_parameters(current_iter=1)
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in captured.values()]))
    assert norm.item() == pytest.approx(0.01, rel=1e-4), "the gradient reaching the optimizer is clipped"
    moved = torch.linalg.vector_norm(torch.cat([(params[k].detach() - before[k]).flatten() for k in captured]))
    assert moved.item() == pytest.approx(0.01, rel=1e-4)


def test_a_training_state_restores_the_loops_random_streams(tiny_model, tmp_path):
    """Dropout, drop path and Gumbel noise draw from the global generators: a resumed run continues them."""
    model = tiny_model()
    for key in ("models", "training_states"):
        Path(model.opt["path"][key]).mkdir(parents=True, exist_ok=True)
    torch.manual_seed(5)
    random.seed(6)
    np.random.seed(7)
    model.save(epoch=0, current_iter=4, batch_in_epoch=4)
    after_save = (torch.rand(4), random.random(), np.random.rand(3))
    state = torch.load(Path(model.opt["path"]["training_states"]) / "4.state", weights_only=True)
    torch.manual_seed(0)
    random.seed(0)
    np.random.seed(0)
    tiny_model().resume_training(state)
    after_resume = (torch.rand(4), random.random(), np.random.rand(3))
    torch.testing.assert_close(after_resume[0], after_save[0], rtol=0, atol=0)
    assert after_resume[1] == after_save[1]
    np.testing.assert_array_equal(after_resume[2], after_save[2])
