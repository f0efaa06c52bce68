"""Mutation check: plant small deliberate bugs, one at a time, and check that the tests catch each one.

    python scripts/mutation_check.py                 # every mutant against its targeted tests
    python scripts/mutation_check.py --only ema-alpha sampler-epoch-seed
    python scripts/mutation_check.py --full          # every mutant against the whole suite (slow)
    python scripts/mutation_check.py --from-head     # the last commit instead of the working tree
    python scripts/mutation_check.py --list          # names and descriptions only

The working tree (without .git, .perf, caches and experiment outputs) is copied once into a new
temporary folder whose parent holds no ``shared`` folder, and the tests run there with
``VSRT_NO_SHARED=1``: the result is what a user's clone sees, golden checks from ``tests/fixtures``
only. The targeted tests first run unmutated (a failure there makes every result meaningless and
stops the check); then each mutant is applied to its file, its tests run (``pytest -x``), and the
file is restored. A mutant is *killed* when the tests fail, *survives* when they pass. Exit status
1 when a mutant survives or a snippet no longer matches the code. The list is checked by
``tests/test_mutation_check.py`` (every original snippet occurs exactly once), so it cannot rot.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
COPY_IGNORE = shutil.ignore_patterns(".git", ".perf", "__pycache__", "*.pyc", ".pytest_cache", ".ruff_cache",
                                     ".benchmarks", "*.egg-info", "experiments", "results", "tb_logger",
                                     "datasets", "demo_output", "build", "dist")

METRICS = ("tests/test_core_parity.py", "tests/test_metrics.py")
MECHANICS = ("tests/test_training_mechanics.py",)
SAFETY = ("tests/test_checkpoint_safety.py",)
MIA = ("tests/test_psrt_mia_parity.py",)
MIA_TRAINING = ("tests/test_psrt_mia_training.py",)
SAVSR = ("tests/test_savsr.py",)
TRAINING_OPTIONS = ("tests/test_training_options.py",)
DATA = ("tests/test_data_core.py", "tests/test_data_datasets.py")
OPTIONS = ("tests/test_options.py", "tests/test_option_validation.py")
UPSCALE = ("tests/test_upscale.py", "tests/test_export_upscale.py")
VALIDATION = ("tests/test_training.py", "tests/test_vrt_training.py", "tests/test_inference.py")
VRT = ("tests/test_vrt.py",)
BASICVSR = ("tests/test_basicvsr_reference.py",)


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str  # relative to the repository root
    original: str  # must occur exactly once in the file
    replacement: str
    description: str
    tests: tuple[str, ...]  # pytest files or node ids, relative to the repository root


MUTANTS: tuple[Mutant, ...] = (
    # ---------------------------------------------------------------- metrics and colour
    Mutant("psnr-mae", "vsrt/metrics/psnr_ssim.py", "mse = np.mean((img - img2) ** 2)",
           "mse = np.mean(np.abs(img - img2))", "PSNR from the mean absolute error", METRICS),
    Mutant("ssim-c2", "vsrt/metrics/psnr_ssim.py", "_SSIM_C2 = (0.03 * 255) ** 2",
           "_SSIM_C2 = (0.02 * 255) ** 2", "SSIM constant K2 = 0.02", METRICS),
    Mutant("y-channel-order", "vsrt/utils/color.py", "_BGR_TO_Y = np.ascontiguousarray(_BGR_TO_YCBCR[:, 0])",
           "_BGR_TO_Y = np.ascontiguousarray(_RGB_TO_YCBCR[:, 0])", "Y of a BGR image with RGB weights",
           METRICS),
    Mutant("crop-border-rows-only", "vsrt/metrics/psnr_ssim.py",
           "img = img[crop_border:-crop_border, crop_border:-crop_border, ...]",
           "img = img[crop_border:-crop_border, :, ...]", "crop_border crops rows only", METRICS),
    Mutant("charbonnier-eps-outside", "vsrt/losses/basic_loss.py",
           "return torch.sqrt((pred - target) ** 2 + self.eps)", "return torch.sqrt((pred - target) ** 2) + self.eps",
           "Charbonnier eps added outside the square root", METRICS),
    # ---------------------------------------------------------------- MATLAB imresize
    Mutant("imresize-no-antialias", "vsrt/utils/matlab_resize.py", "widen = scale < 1 and antialiasing",
           "widen = scale < 1 and not antialiasing", "antialiasing switched off when downscaling", METRICS),
    Mutant("imresize-cubic-a", "vsrt/utils/matlab_resize.py", "inner = (1.5 * absx3 - 2.5 * absx2 + 1)",
           "inner = (1.4 * absx3 - 2.4 * absx2 + 1)", "cubic kernel with a = -0.4 on its inner segment", METRICS),
    Mutant("imresize-mirror", "vsrt/utils/matlab_resize.py",
           "return torch.where(index >= length, period - 1 - index, index)",
           "return torch.where(index >= length, period - index, index)", "whole-sample instead of half-sample "
           "symmetric border", METRICS),
    # ---------------------------------------------------------------- warping
    Mutant("flow-warp-normalisation", "vsrt/archs/flow/warp.py",
           "norm_x = 2.0 * position[..., 0] / max(w - 1, 1) - 1.0",
           "norm_x = 2.0 * position[..., 0] / max(w, 1) - 1.0", "flow_warp normalises x by w, not w - 1",
           METRICS + BASICVSR),
    Mutant("flow-warp-align-corners", "vsrt/archs/flow/warp.py",
           'padding_mode: str = "zeros", align_corners: bool = True)',
           'padding_mode: str = "zeros", align_corners: bool = False)', "flow_warp with align_corners=False",
           METRICS + BASICVSR),
    Mutant("flow-warp-padding", "vsrt/archs/flow/warp.py", 'padding_mode: str = "zeros", align_corners',
           'padding_mode: str = "border", align_corners', "flow_warp pads with the border, not zeros",
           METRICS + BASICVSR),
    Mutant("patch-align-rounding", "vsrt/archs/flow/warp.py",
           'out = F.grid_sample(x.to(work_dtype), grid_norm, mode="nearest"',
           'out = F.grid_sample(x.to(work_dtype), grid_norm, mode="bilinear"',
           "patch alignment interpolates instead of moving whole pixels", MIA),
    # ---------------------------------------------------------------- windows and attention
    Mutant("shift-mask-regions", "vsrt/archs/layers/window.py",
           "cuts = [(slice(-ws), slice(-ws, -s), slice(-s, None))",
           "cuts = [(slice(-ws), slice(-ws, -s + 1), slice(-s + 1, None))",
           "shifted-window regions cut one position late", VRT + MIA),
    Mutant("relative-position-sign", "vsrt/archs/layers/window.py",
           "rel = queries[:, :, None] - keys[:, None, :]", "rel = keys[:, None, :] - queries[:, :, None]",
           "relative position as key - query", VRT + MIA),
    Mutant("vrt-mutual-query", "vsrt/archs/vrt/tmsa.py", "attend(q2, k1, v1, self.scale",
           "attend(q1, k1, v1, self.scale", "VRT mutual attention: frame 1 queries itself", VRT),
    Mutant("vrt-sr-skip", "vsrt/archs/vrt/vrt_arch.py",
           'skip = F.interpolate(lq, size=out.shape[2:], mode="trilinear", align_corners=False)',
           'skip = F.interpolate(lq, size=out.shape[2:], mode="trilinear", align_corners=True)',
           "VRT SR head: skip connection upsampled with align_corners=True", VRT),
    # ---------------------------------------------------------------- architectures
    Mutant("basicvsr-skip", "vsrt/archs/basicvsr_arch.py",
           "outputs.append(self._head(backward_feats[i], feat, lqs[:, i]))",
           "outputs.append(self._head(backward_feats[i], feat, lqs[:, t - 1 - i]))",
           "BasicVSR skip connection from the mirrored frame", BASICVSR),
    Mutant("pixel-shuffle-order", "vsrt/archs/layers/upsample.py",
           'rearrange(x, "n (c a b) h w -> n c (h a) (w b)", a=factor, b=factor)',
           'rearrange(x, "n (c b a) h w -> n c (h a) (w b)", a=factor, b=factor)',
           "x4 heads' pixel shuffle with the sub-pixel axes swapped", MIA + BASICVSR),
    Mutant("nnpack-band-halo", "vsrt/archs/layers/nnpack_conv.py",
           "first = max(0, top - halo)  # first input row of the band",
           "first = top  # first input row of the band",
           "large NNPACK convolutions in row bands without their halo rows", ("tests/test_nnpack_conv.py",)),
    Mutant("deform-tap-axes", "vsrt/archs/layers/dcn.py",
           "tap_y = (tap // k - k // 2).to(x.dtype).view(taps, 1, 1)",
           "tap_y = (tap % k - k // 2).to(x.dtype).view(taps, 1, 1)",
           "CPU deformable sampling with the kernel rows and columns mixed up", VRT),
    Mutant("basicvsr-forward-flow", "vsrt/archs/basicvsr_arch.py",
           "feat, flows_forward[:, i - 1] if i > 0 else None)",
           "feat, flows_backward[:, i - 1] if i > 0 else None)",
           "BasicVSR forward branch warped with the backward flows", BASICVSR),
    Mutant("psrt-neighbour-order", "vsrt/archs/psrt_recurrent_arch.py",
           "cond = torch.stack([aligned_1, current, aligned_2], dim=1)",
           "cond = torch.stack([aligned_2, current, aligned_1], dim=1)",
           "PSRT: first- and second-order neighbours swapped", MIA),
    Mutant("mia-mask-threshold", "vsrt/archs/mia_vsr_arch.py",
           "return (torch.sigmoid(logit / temperature) >= 0.5).to(logit.dtype)",
           "return (torch.sigmoid(logit / temperature) >= 0.6).to(logit.dtype)",
           "MIA-VSR keeps a token only above probability 0.6 at test time", MIA),
    Mutant("iia-release-order", "vsrt/archs/iia_vsr_arch.py", "visit = list(range(num_frames - 1, -1, -1))",
           "visit = list(range(num_frames))", "IIA-VSR release order visits frames forwards", MIA),
    Mutant("savsr-scale-axes", "vsrt/archs/savsr/scale.py",
           "return round(height * scale_h), round(width * scale_w)",
           "return round(height * scale_w), round(width * scale_h)", "SAVSR output size with the scales swapped",
           ("tests/test_savsr.py",)),
    Mutant("savsr-grid-axis", "vsrt/archs/savsr/upsample.py",
           "grid_x = (torch.arange(out_w, dtype=offset.dtype, device=offset.device) + 0.5) / scale[1] - 0.5",
           "grid_x = (torch.arange(out_w, dtype=offset.dtype, device=offset.device) + 0.5) / scale[0] - 0.5",
           "SAVSR samples columns with the vertical scale", ("tests/test_savsr.py",)),
    # ---------------------------------------------------------------- tiling
    Mutant("tile-overlap-ignored", "vsrt/archs/tiling.py",
           "return list(range(0, length - tile, tile - overlap)) + [max(0, length - tile)]",
           "return list(range(0, length - tile, tile)) + [max(0, length - tile)]", "tiles placed without overlap",
           ("tests/test_tiling.py", "tests/test_tiling_blend.py")),
    Mutant("tile-blend-floor", "vsrt/archs/tiling.py", "bottom = -(-ov_h // 2) if row != rows[-1] else 0",
           "bottom = ov_h // 2 if row != rows[-1] else 0", "tile blending drops floor(o/2) at the bottom, "
           "not ceil(o/2)", ("tests/test_tiling.py", "tests/test_tiling_blend.py")),
    Mutant("temporal-chunks-summed", "vsrt/archs/tiling.py",
           "counts[offset:offset + length] += 1", "counts[offset:offset + length] = 1",
           "overlapping temporal chunks summed, not averaged (frame counts overwritten)", ("tests/test_tiling.py",)),
    # ---------------------------------------------------------------- data
    Mutant("augment-unpaired", "vsrt/data/data_util.py",
           "results = augment(img_lqs + img_gts, use_hflip, use_rot)",
           "results = augment(img_lqs, use_hflip, use_rot) + augment(img_gts, use_hflip, use_rot)",
           "LQ and GT frames flipped/rotated by separate draws", ("tests/test_data_core.py",
                                                                  "tests/test_data_datasets.py")),
    Mutant("crop-gt-corner", "vsrt/data/transforms.py", "top_gt, left_gt = top * scale, left * scale",
           "top_gt, left_gt = left * scale, top * scale", "GT crop corner with rows and columns swapped",
           ("tests/test_data_core.py",)),
    Mutant("sampler-epoch-seed", "vsrt/data/data_sampler.py", "generator.manual_seed(self.epoch)",
           "generator.manual_seed(0)", "the same sample order in every epoch", MECHANICS),
    Mutant("sampler-floor", "vsrt/data/data_sampler.py",
           "self.num_samples = math.ceil(len(dataset) * ratio / num_replicas)",
           "self.num_samples = len(dataset) * ratio // num_replicas", "uneven epochs drop samples instead of "
           "padding", MECHANICS),
    Mutant("seed-by-index", "vsrt/data/resumable.py",
           "yield int(index), sample_seed(self.seed, self.epoch, self.rank, position)",
           "yield int(index), sample_seed(self.seed, self.epoch, self.rank, int(index))",
           "per-sample seed from the dataset index, not the position", MECHANICS),
    Mutant("seed-without-rank", "vsrt/data/resumable.py",
           "np.random.SeedSequence([seed, epoch, rank, position])", "np.random.SeedSequence([seed, epoch, position])",
           "ranks share per-sample seeds", MECHANICS),
    Mutant("resume-skip-off-by-one", "vsrt/data/resumable.py", "if position >= skip:", "if position > skip:",
           "a resumed epoch skips one sample too many", MECHANICS),
    Mutant("seeded-dataset-leaks-rng", "vsrt/data/resumable.py", "torch.set_rng_state(saved[2])", "pass",
           "loading a sample moves the training loop's torch stream", MECHANICS),
    Mutant("seeded-numpy-seed", "vsrt/data/resumable.py", "np.random.seed(seed % 2**32)",
           "np.random.seed(seed % 2**31)", "numpy seeded with a different function of the sample seed", MECHANICS),
    # ---------------------------------------------------------------- training loop
    Mutant("resume-skip-batches", "vsrt/train.py", "sampler.skip_next(skip_batches * loader.batch_size)",
           "sampler.skip_next(skip_batches)", "resume skips batches counted as samples",
           ("tests/test_training_mechanics.py::test_resume_in_the_middle_of_an_epoch_matches_the_uninterrupted_run",)),
    Mutant("loop-without-set-epoch", "vsrt/train.py", "sampler.set_epoch(epoch)", "pass",
           "the training loop never advances the sampler's epoch (same order every epoch)",
           ("tests/test_training_mechanics.py::test_resume_in_the_middle_of_an_epoch_matches_the_uninterrupted_run",)),
    Mutant("resume-batch-count", "vsrt/train.py", "enumerate(loader, start=first_batch + 1)",
           "enumerate(loader, start=1)", "the batch position saved after a resume restarts at 1",
           ("tests/test_training_mechanics.py::test_resume_in_the_middle_of_an_epoch_matches_the_uninterrupted_run",)),
    Mutant("state-without-batch-position", "vsrt/train.py", "model.save(epoch, current_iter, batch_in_epoch)",
           "model.save(epoch, current_iter)", "states do not record the position in the epoch",
           ("tests/test_training_mechanics.py::test_resume_in_the_middle_of_an_epoch_matches_the_uninterrupted_run",)),
    Mutant("resume-without-rng", "vsrt/models/base_model.py", 'restore_rng_state(state["rng"])', "pass",
           "a resumed run starts the loop's random streams afresh", MECHANICS),
    Mutant("ema-alpha", "vsrt/models/base_model.py", "add_(params[name].detach(), alpha=1 - self.ema_decay)",
           "add_(params[name].detach(), alpha=self.ema_decay)", "EMA weights new parameters by the decay",
           MECHANICS),
    Mutant("ema-before-step", "vsrt/models/base_model.py",
           "self.scaler.step(self.optimizer_g)\n        self.scaler.update()\n        self.update_ema()",
           "self.update_ema()\n        self.scaler.step(self.optimizer_g)\n        self.scaler.update()",
           "EMA updated before the optimizer step", MECHANICS),
    Mutant("warmup-off-by-one", "vsrt/models/base_model.py", "if current_iter < warmup_iter:",
           "if current_iter <= warmup_iter:", "warm-up applied one iteration too long", MECHANICS),
    Mutant("grad-clip-by-value", "vsrt/models/base_model.py",
           "torch.nn.utils.clip_grad_norm_(self.net_g.parameters(), float(clip))",
           "torch.nn.utils.clip_grad_value_(self.net_g.parameters(), float(clip))",
           "grad_clip clips values instead of the global norm", MECHANICS),
    Mutant("cosine-restart-offset", "vsrt/models/lr_scheduler.py",
           "progress = (self.last_epoch - start) / self.periods[index]",
           "progress = self.last_epoch / self.periods[index]", "cosine periods after a restart start mid-curve",
           METRICS),
    Mutant("multistep-repeated-milestone", "vsrt/models/lr_scheduler.py",
           "decay = self.gamma ** self.milestones[self.last_epoch]", "decay = self.gamma",
           "a milestone listed twice decays once", METRICS + MECHANICS),
    # ---------------------------------------------------------------- export and streaming
    Mutant("kept-rows-unkept-first", "vsrt/archs/layers/attention.py",
           "positions = torch.argsort((~keep.index_select(0, order[:active])).to(torch.uint8), dim=1, stable=True)",
           "positions = torch.argsort(keep.index_select(0, order[:active]).to(torch.uint8), dim=1, stable=True)",
           "MIA-VSR's gathered attention runs the unkept query rows of a window instead of the kept ones",
           ("tests/test_psrt_mia_parity.py::test_forward_kept_equals_dense_attention_rows",)),
    Mutant("kept-rows-mask-of-first-window", "vsrt/archs/layers/attention.py",
           "mask_index = target[rows] % mask_rows.shape[0]", "mask_index = target[rows] % num_queries",
           "MIA-VSR's gathered attention gives every masked window the first window's shift mask",
           ("tests/test_psrt_mia_parity.py::test_forward_kept_equals_dense_attention_rows",)),
    Mutant("window-order-masked-first", "vsrt/archs/layers/window.py",
           "rank = torch.where(masked, num_unmasked + flag.cumsum(0) - 1, (1 - flag).cumsum(0) - 1)",
           "rank = torch.where(masked, flag.cumsum(0) - 1, (masked.numel() - num_unmasked) + (1 - flag).cumsum(0) - 1)",
           "shifted windows ordered masked-first (the attention then takes the wrong windows as unmasked)",
           ("tests/test_window_index.py",)),
    Mutant("stream-window-not-shifted", "vsrt/inference/streaming.py",
           "window_start = max(0, min(window_start, available_end - window))", "window_start = max(0, window_start)",
           "an exported graph's last window is padded instead of shifted inwards",
           ("tests/test_export_upscale.py",)),
    Mutant("export-check-ignores-difference", "vsrt/export/verify.py",
           'result["max_abs_diff"] = max(result["max_abs_diff"], diff)',
           'result["max_abs_diff"] = max(result["max_abs_diff"], 0.0)',
           "export publishes a file without looking at its difference to eager",
           ("tests/test_export.py::test_export_refuses_a_file_beyond_the_tolerance",)),
    # ---------------------------------------------------------------- checkpoints
    Mutant("checkpoint-temp-left", "vsrt/utils/checkpoint.py",
           "        with contextlib.suppress(FileNotFoundError):\n            os.remove(tmp)\n        raise",
           "        raise", "a failed write leaves its temporary file", SAFETY),
    Mutant("checkpoint-ctrl-c-leaves-temp", "vsrt/utils/checkpoint.py", "except BaseException:",
           "except Exception:", "Ctrl-C during a write leaves its temporary file", SAFETY),
    Mutant("checkpoint-temp-elsewhere", "vsrt/utils/checkpoint.py",
           'suffix=".tmp", dir=path.parent)', 'suffix=".tmp")',
           "temporary file in the system temp folder (rename not atomic across file systems)", SAFETY),
    Mutant("checkpoint-no-fsync", "vsrt/utils/checkpoint.py",
           "            handle.flush()\n            os.fsync(handle.fileno())\n",
           "            handle.flush()\n", "published before the data reach the disk", SAFETY),
    # ---------------------------------------------------------------- session 7 candidates
    Mutant("spynet-no-std", "vsrt/archs/flow/spynet.py", "levels = [(img - self.mean) / self.std]",
           "levels = [img - self.mean]", "SpyNet input not divided by the ImageNet std", BASICVSR + MIA),
    Mutant("spynet-flow-not-doubled", "vsrt/archs/flow/spynet.py", 'align_corners=True) * 2.0',
           'align_corners=True)', "SpyNet's coarse flow upsampled without doubling its values", BASICVSR + MIA),
    Mutant("second-order-flow-uncomposed", "vsrt/archs/layers/recurrent.py",
           "flow_n2 = flow_n1 + flow_warp(prev_flow, flow_n1.permute(0, 2, 3, 1))",
           "flow_n2 = flow_n1 + prev_flow", "second-order flow summed instead of composed", MIA),
    Mutant("attention-scale-full-dim", "vsrt/archs/layers/attention.py",
           "self.scale = qk_scale or (dim // num_heads) ** -0.5", "self.scale = qk_scale or dim ** -0.5",
           "window attention scaled by the full dim, not the head dim", MIA),
    Mutant("tmsa-scale-full-dim", "vsrt/archs/vrt/tmsa.py",
           "self.scale = qk_scale or (dim // num_heads) ** -0.5", "self.scale = qk_scale or dim ** -0.5",
           "VRT attention scaled by the full dim, not the head dim", VRT),
    Mutant("mia-change-signed", "vsrt/archs/mia_vsr_arch.py", "self.attn.predmask((queries - prev[0]).abs())",
           "self.attn.predmask(queries - prev[0])", "MIA-VSR predictor sees the signed token change", MIA),
    Mutant("gumbel-temperature-1", "vsrt/archs/mia_vsr_arch.py", "GUMBEL_TEMPERATURE = 2.0 / 3.0",
           "GUMBEL_TEMPERATURE = 1.0", "MIA-VSR training masks with Gumbel temperature 1",
           MIA_TRAINING),
    Mutant("mia-first-step-repeats-current", "vsrt/archs/mia_vsr_arch.py",
           "aligned_2 = aligned_1 if aligned_2 is None else aligned_2",
           "aligned_2 = current if aligned_2 is None else aligned_2",
           "MIA-VSR's first recurrent step stacks the current frame, not the previous output", MIA),
    Mutant("skip-align-corners", "vsrt/archs/layers/upsample.py",
           'return F.interpolate(img, scale_factor=4, mode="bilinear", align_corners=False)',
           'return F.interpolate(img, scale_factor=4, mode="bilinear", align_corners=True)',
           "x4 skip upsampled with align_corners=True", MIA + BASICVSR),
    Mutant("reconstruct-skip-first-frame", "vsrt/archs/layers/recurrent.py",
           "return cache.store(hr + bilinear_x4(lqs[:, i]))",
           "return cache.store(hr + bilinear_x4(lqs[:, 0]))", "every frame's skip from frame 0", MIA),
    Mutant("shift-one-short", "vsrt/archs/layers/swin_block.py",
           "(window_size[0], window_size[1] // 2, window_size[2] // 2) if shifted",
           "(window_size[0], window_size[1] // 2 - 1, window_size[2] // 2) if shifted",
           "Swin rows shifted one position short", MIA),
    Mutant("gelu-tanh", "vsrt/archs/layers/linear.py", '"none" if gelu else "")',
           '"tanh" if gelu else "")', "the fused MLP GELU is the tanh approximation", MIA),
    Mutant("reds4-clip", "vsrt/data/reds_dataset.py", 'REDS4_CLIPS = ("000", "011", "015", "020")',
           'REDS4_CLIPS = ("000", "011", "015", "021")', "REDS4 with clip 021 instead of 020",
           ("tests/test_data_datasets.py", "tests/test_inference.py")),
    Mutant("vimeo-neighbours-offset", "vsrt/data/vimeo90k_dataset.py",
           "return [i + (9 - num_frame) // 2 for i in range(num_frame)]",
           "return [i + (8 - num_frame) // 2 for i in range(num_frame)]", "Vimeo-90K centred frames one early",
           ("tests/test_data_datasets.py", "tests/test_inference.py")),
    Mutant("vimeo-pad-first-frame", "vsrt/inference/evaluate.py", "torch.cat([lq, lq[-1:].expand(",
           "torch.cat([lq, lq[:1].expand(", "Vimeo-90K-T sequences padded with the first frame",
           ("tests/test_inference.py",)),
    Mutant("tensor2img-floor", "vsrt/utils/img_util.py", "img = (img * 255.0).round()",
           "img = (img * 255.0).floor()", "tensor2img truncates instead of rounding", METRICS),
    Mutant("dcn-mask-no-sigmoid", "vsrt/archs/layers/dcn.py", "torch.sigmoid(mask.float())", "mask.float()",
           "deformable modulation without its sigmoid", VRT),
    Mutant("dcn-flow-not-flipped", "vsrt/archs/layers/dcn.py", "chunk + flow.flip(1).repeat(",
           "chunk + flow.repeat(", "deformable offsets add the flow as (dx, dy)", VRT),
    Mutant("dcn-residue-unbounded", "vsrt/archs/layers/dcn.py",
           "residual = self.max_residue_magnitude * torch.tanh(", "residual = torch.tanh(",
           "deformable residue not scaled by max_residue_magnitude", VRT),
    Mutant("vrt-sine-half-turn", "vsrt/archs/vrt/tmsa.py", "scale, eps = 2 * math.pi, 1e-6",
           "scale, eps = math.pi, 1e-6", "VRT sine position encoding over half a turn", VRT),
    Mutant("sparsity-counts-first-step", "vsrt/losses/sparsity_loss.py",
           "return torch.stack(kept).sum() / (num_branches * (num_steps - 1) * num_blocks)",
           "return torch.stack(kept).sum() / (num_branches * num_steps * num_blocks)",
           "kept ratio divided by every step, the first (unmasked) ones included", MIA_TRAINING),
    Mutant("drop-path-per-element", "vsrt/archs/layers/mlp.py",
           "    shape = (x.shape[0],) + (1,) * (x.dim() - 1)\n", "    shape = x.shape\n",
           "stochastic depth drops single elements, not whole samples", MIA_TRAINING),
    Mutant("osconv-scale-order", "vsrt/archs/savsr/osconv.py", "scale_info = torch.cat((inv_h, inv_w), dim=1)",
           "scale_info = torch.cat((inv_w, inv_h), dim=1)", "OSConv routes the scale vector as [1/s_w, 1/s_h]",
           SAVSR),
    Mutant("osconv-kernel-sigmoid", "vsrt/archs/savsr/osconv.py",
           'kernel = torch.softmax(rearrange(self.kernel_fc(hidden), "b n 1 1 -> b n 1 1 1 1"), dim=1)',
           'kernel = torch.sigmoid(rearrange(self.kernel_fc(hidden), "b n 1 1 -> b n 1 1 1 1"))',
           "OSConv kernel attention by sigmoid instead of softmax", SAVSR),
    Mutant("osconv-max-context", "vsrt/archs/savsr/osconv.py", "x.mean(dim=(2, 3))", "x.amax(dim=(2, 3))",
           "OSConv routes the per-channel maximum instead of the mean", SAVSR),
    Mutant("savsr-centre-frame", "vsrt/archs/savsr_arch.py",
           "self.center_frame_idx = num_frame // 2 if center_frame_idx", "self.center_frame_idx = num_frame // 2 + 1 "
           "if center_frame_idx", "SAVSR's default centre frame one late", SAVSR),
    Mutant("psrt-first-step-neighbour", "vsrt/archs/psrt_recurrent_arch.py",
           "aligned_2 = torch.zeros_like(aligned_1) if aligned_2 is None else aligned_2",
           "aligned_2 = aligned_1 if aligned_2 is None else aligned_2",
           "PSRT's first recurrent step repeats the previous output instead of zeros", MIA),
    Mutant("forward-kept-bucket-floor", "vsrt/archs/layers/attention.py",
           "padded_rows = (keep.sum(1) + step - 1) // step * step",
           "padded_rows = keep.sum(1) // step * step", "gathered attention rounds kept counts down", MIA),
    Mutant("perceptual-no-std", "vsrt/losses/perceptual_loss.py", "x = (x - self.mean) / self.std",
           "x = x - self.mean", "VGG input not divided by the ImageNet std", TRAINING_OPTIONS),
    Mutant("gram-unnormalised", "vsrt/losses/perceptual_loss.py", "return flat @ flat.transpose(1, 2) / (c * h * w)",
           "return flat @ flat.transpose(1, 2) / (h * w)", "Gram matrix divided by h*w only", TRAINING_OPTIONS),
    Mutant("duf-sigma", "vsrt/data/data_util.py", "generate_gaussian_kernel(kernel_size, 0.4 * scale)",
           "generate_gaussian_kernel(kernel_size, 0.5 * scale)", "BD blur with sigma 0.5 * scale", DATA),
    Mutant("duf-offset", "vsrt/data/data_util.py", "planes = planes[:, :, 2:-2, 2:-2]",
           "planes = planes[:, :, 1:-3, 1:-3]", "BD sampling grid one LR pixel up and left", DATA),
    Mutant("flow-lr-mul-ignored", "vsrt/models/base_model.py", '"lr": lr * flow_lr_mul}]', '"lr": lr}]',
           "flow_lr_mul not applied to the flow parameters", MECHANICS + TRAINING_OPTIONS),
    Mutant("protocol-vid4-rgb", "vsrt/inference/protocols.py", '"vid4": Protocol("vid4", test_y_channel=True)',
           '"vid4": Protocol("vid4", test_y_channel=False)', "Vid4 scored on RGB instead of Y",
           ("tests/test_inference.py",)),
    Mutant("protocol-reds4-y", "vsrt/inference/protocols.py", '"reds4": Protocol("reds4", test_y_channel=False)',
           '"reds4": Protocol("reds4", test_y_channel=True)', "REDS4 scored on Y instead of RGB",
           ("tests/test_inference.py",)),
    Mutant("unknown-dataset-key-accepted", "vsrt/options.py",
           "            if sub not in DATASET_KEYS:\n", "            if sub not in DATASET_KEYS and False:\n",
           "unknown dataset keys accepted silently", OPTIONS),
    Mutant("default-param-key-ema", "vsrt/models/base_model.py",
           'param_key = path_opt.get("param_key_g", "params")', 'param_key = path_opt.get("param_key_g", "params_ema")',
           "pretrain_network_g loads params_ema unless told otherwise", ("tests/test_checkpoint_errors.py",)),
    Mutant("consistency-sign", "vsrt/metrics/temporal.py", "mismatch = np.sum((backward + fwd_at) ** 2, axis=-1)",
           "mismatch = np.sum((backward - fwd_at) ** 2, axis=-1)", "warping-error consistency test with the wrong "
           "sign", ("tests/test_temporal_metrics.py",)),
    Mutant("vrt-flow-compose-order", "vsrt/archs/vrt/flows.py",
           "back.append(_compose(back[0][:, :-1], back[0][:, 1:]))",
           "back.append(_compose(back[0][:, 1:], back[0][:, :-1]))", "VRT's two-frame backward flows composed in "
           "the wrong order", VRT),
    Mutant("vrt-three-frame-flow-order", "vsrt/archs/vrt/flows.py",
           "fwd.append(_compose(fwd[1][:, 1:], fwd[0][:, :-2]))", "fwd.append(_compose(fwd[0][:, :-2], fwd[1][:, 1:]))",
           "VRT's three-frame forward flows composed in the wrong order", VRT),
    Mutant("vrt-backward-flow-direction", "vsrt/archs/vrt/flows.py",
           "run_concurrently(frames, lambda: spynet.forward_pyramid(current, following, FLOW_SCALES)",
           "run_concurrently(frames, lambda: spynet.forward_pyramid(following, current, FLOW_SCALES)",
           "VRT's backward flows estimated in the forward direction", VRT),
    Mutant("vrt-input-align-order", "vsrt/archs/vrt/flows.py",
           "return torch.cat([from_next, from_previous], dim=2)",
           "return torch.cat([from_previous, from_next], dim=2)", "VRT's aligned input frames in the wrong order",
           VRT),
    Mutant("vrt-align-border-side", "vsrt/archs/vrt/stage.py",
           "parts = [aligned, border] if direction == 1 else [border, aligned]",
           "parts = [border, aligned] if direction == 1 else [aligned, border]",
           "VRT's parallel warping puts the missing neighbour on the wrong end", VRT),
    Mutant("savsr-relative-coords", "vsrt/archs/savsr/upsample.py",
           "return centres - torch.floor(centres + 1e-3) - 0.5", "return centres - torch.floor(centres + 1e-3)",
           "SAVSR relative coordinates not centred", SAVSR),
    Mutant("lpips-range", "vsrt/metrics/lpips_metric.py", "return (rgb / 127.5 - 1.0)[None]",
           "return (rgb / 255.0)[None]", "LPIPS scored on [0, 1] instead of [-1, 1]", ("tests/test_lpips_metric.py",)),
    Mutant("stream-no-left-context", "vsrt/inference/streaming.py",
           "        window_start = max(0, next_out - context)\n", "        window_start = next_out\n",
           "chunked upscaling without context frames before each chunk", UPSCALE),
    Mutant("stream-timestamps-of-first-frame", "vsrt/inference/streaming.py",
           "emit(tensor2img(outputs[k]), buffer[index - buffer_start][1])",
           "emit(tensor2img(outputs[k]), buffer[0][1])",
           "every output frame of a chunk gets the chunk's first timestamp", UPSCALE),
    Mutant("stream-frames-as-bgr", "vsrt/inference/streaming.py",
           "return torch.from_numpy(np.ascontiguousarray(frame[..., ::-1]))",
           "return torch.from_numpy(np.ascontiguousarray(frame))", "video frames fed to the network as BGR",
           UPSCALE),
    Mutant("validation-first-frame", "vsrt/models/video_recurrent_model.py",
           "output = output[output.shape[0] // 2].unsqueeze(0)", "output = output[0].unsqueeze(0)",
           "center_frame_only validation scores the first frame", VALIDATION),
    Mutant("step-windows-padding-kept", "vsrt/archs/layers/window.py", "windows.masked_fill_(padding, 0.0)",
           "windows.masked_fill_(padding, 0.0) if False else None",
           "inference windows keep norm1's bias in the padding slots", MIA + ("tests/test_window_index.py",)),
    Mutant("step-windows-stale-current", "vsrt/archs/layers/window.py",
           "raw[:, :, num_tokens - num_queries:] = take_tokens(grid, current).view(n, -1, num_queries, c)",
           "raw[:, :, num_tokens - num_queries:] = raw[:, :, num_tokens - num_queries:]",
           "inference windows keep the first block's current frame", MIA + ("tests/test_window_index.py",)),
    Mutant("group-sum-conv-layout", "vsrt/archs/layers/patch_align.py",
           "return shortcut + frames.reshape(*lead_shape, h, w, -1)",
           "return frames.reshape(*lead_shape, h, w, -1) + shortcut",
           "the residual group's sum takes the NCHW layout of the Winograd output (later ops several times slower)",
           ("tests/test_nnpack_conv.py",)),
    Mutant("head-winograd", "vsrt/archs/layers/recurrent.py",
           "self.conv_hr = nn.Conv2d(64, 64, 3, 1, 1)",
           "self.conv_hr = __import__('vsrt.archs.layers.nnpack_conv', fromlist=['Conv2d']).Conv2d(64, 64, 3, 1, 1)",
           "PSRT / MIA / IIA conv_hr through Winograd (with conv_last: over the parity tolerance on a fixture)",
           ("tests/test_nnpack_conv.py",)),
    Mutant("nnpack-all-threads", "vsrt/archs/layers/nnpack_conv.py",
           "    with one_thread():\n        return _nnpack_bands(",
           "    with __import__('contextlib').nullcontext():\n        return _nnpack_bands(",
           "NNPACK runs on all intra-op threads (its pool then fights the OpenMP team for the cores)",
           ("tests/test_nnpack_conv.py",)),
    Mutant("nnpack-batched-on-threads", "vsrt/archs/layers/nnpack_conv.py",
           "(batch == 1 or kernel != 3)", "(batch >= 1 or kernel != 3)",
           "a batch of 3x3 images takes NNPACK's slower batched algorithm on several threads",
           ("tests/test_nnpack_conv.py",)),
    Mutant("side-by-side-swapped", "vsrt/archs/layers/threads.py",
           "return result_first, future.result()", "return future.result(), result_first",
           "run_concurrently returns the two results the wrong way round (SAVSR's branches, BasicVSR's propagations)",
           ("tests/test_threads.py", "tests/test_savsr.py", "tests/test_basicvsr_reference.py")),
    Mutant("halves-reordered", "vsrt/archs/layers/threads.py", "return first + second", "return second + first",
           "map_in_halves returns the helper's half first (frames out of order on two threads)",
           ("tests/test_threads.py", "tests/test_basicvsr_reference.py")),
    Mutant("side-by-side-on-any-threads", "vsrt/archs/layers/threads.py",
           "torch.get_num_threads() == CONCURRENT_THREADS", "torch.get_num_threads() >= 1",
           "branches run side by side (one thread each) on one thread or on many, where it does not pay",
           ("tests/test_threads.py",)),
    Mutant("helper-grad-mode", "vsrt/archs/layers/threads.py",
           "with torch.inference_mode() if inference else torch.no_grad():",
           "with __import__('contextlib').nullcontext():",
           "the helper thread records autograd graphs (grad mode is per thread)", ("tests/test_threads.py",)),
    Mutant("basicvsr-side-by-side-flows", "vsrt/archs/basicvsr_arch.py",
           "flows[:, i] if backward else flows[:, i - 1]", "flows[:, i] if backward else flows[:, t - 1 - i]",
           "BasicVSR's forward propagation on two threads takes the flows in reverse order",
           ("tests/test_basicvsr_reference.py",)),
    Mutant("take-tokens-sample-offset", "vsrt/archs/layers/window.py",
           "(index + length * torch.arange(n, device=index.device).unsqueeze(1))",
           "(index + c * torch.arange(n, device=index.device).unsqueeze(1))",
           "window gathers of a batch offset each sample by the channel count instead of its token count",
           ("tests/test_window_index.py",)),
    Mutant("matmul-attention-unscaled", "vsrt/archs/layers/attention.py",
           "scores = torch.matmul(q * scale, k.transpose(-1, -2))",
           "scores = torch.matmul(q, k.transpose(-1, -2))",
           "the threaded CPU attention of MIA-VSR / IIA-VSR forgets the 1/sqrt(d) scale",
           ("tests/test_attention_chunks.py", "tests/test_psrt_mia_parity.py")),
    Mutant("cpu-head-dim-pad-any", "vsrt/archs/layers/execution.py",
           "padded - head_dim <= CPU_HEAD_DIM_MAX_PAD", "padded >= head_dim",
           "CPU attention pads every head dim to a multiple of 8 (20 -> 24: slower there)",
           ("tests/test_window_index.py",)),
    Mutant("cpu-head-dim-pad-uncut", "vsrt/archs/layers/attention.py",
           "return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, scale=scale)[..., :head_dim]",
           "return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, scale=scale)",
           "padded attention keeps its zero head columns (VRT's stage 8 on the CPU)",
           ("tests/test_window_index.py", "tests/test_vrt.py")),
    Mutant("shift-mask-order-ignored", "vsrt/archs/layers/window.py",
           "label_windows = label_windows.index_select(0, order)", "label_windows = label_windows",
           "shift masks in window order keep the grid's window order (masks on the wrong windows)",
           ("tests/test_window_index.py", "tests/test_vrt.py")),
    Mutant("shift-mask-first-frame-rows", "vsrt/archs/layers/window.py",
           "label_windows[:, label_windows.shape[1] - num_queries:]", "label_windows[:, :num_queries]",
           "MIA-VSR's shift mask takes the first frame's rows instead of the query frame's",
           ("tests/test_window_index.py", "tests/test_psrt_mia_parity.py")),
    Mutant("alternating-skips-odd", "vsrt/archs/layers/threads.py",
           "lambda: [fn(item) for item in items[1::2]])", "lambda: [fn(item) for item in items[0::2]])",
           "for_each_alternating runs the even items twice and the odd ones never (VRT attention chunks)",
           ("tests/test_threads.py", "tests/test_vrt.py")),
)


def check_applies(root: Path, mutants: tuple[Mutant, ...] = MUTANTS) -> list[str]:
    """Problems with the list against the tree at ``root`` (empty when every mutant applies cleanly)."""
    problems = []
    names = [m.name for m in mutants]
    problems += [f"duplicate mutant name {n}" for n in sorted({n for n in names if names.count(n) > 1})]
    for mutant in mutants:
        path = root / mutant.path
        if not path.is_file():
            problems.append(f"{mutant.name}: {mutant.path} does not exist")
            continue
        count = path.read_text(encoding="utf-8").count(mutant.original)
        if count != 1:
            problems.append(f"{mutant.name}: original snippet found {count} times in {mutant.path}")
        if mutant.original == mutant.replacement:
            problems.append(f"{mutant.name}: the replacement equals the original")
        problems += [f"{mutant.name}: test file {t.split('::')[0]} does not exist"
                     for t in mutant.tests if not (root / t.split("::")[0]).is_file()]
    return problems


def copy_tree(source: Path, parent: Path, from_head: bool = False) -> Path:
    """Copy the working tree (or the last commit) to ``parent/repo``; ``parent`` must hold no ``shared``."""
    if (parent / "shared").exists():
        raise RuntimeError(f"{parent / 'shared'} exists: the copy would see the shared fixtures")
    target = parent / "repo"
    if not from_head:
        shutil.copytree(source, target, ignore=COPY_IGNORE, symlinks=True)
        return target
    archive = subprocess.run(["git", "-C", str(source), "archive", "--format=tar", "HEAD"],
                             capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    return target


def run_tests(root: Path, tests: tuple[str, ...], timeout: float) -> tuple[str, float, str]:
    """``(passed | failed | timeout, seconds, output tail)`` of pytest on ``tests`` in ``root``."""
    env = {**os.environ, "VSRT_NO_SHARED": "1", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(root),
           "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    start = time.perf_counter()
    try:
        result = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=timeout,
                                check=False)
    except subprocess.TimeoutExpired as err:
        return "timeout", time.perf_counter() - start, str(err.stdout or "")[-2000:]
    status = "passed" if result.returncode == 0 else "failed"
    return status, time.perf_counter() - start, (result.stdout + result.stderr)[-2000:]


def apply_and_test(root: Path, mutant: Mutant, tests: tuple[str, ...], timeout: float) -> tuple[str, float]:
    """Apply ``mutant`` in ``root``, run ``tests``, restore the file; ``(killed | survived | timeout, s)``."""
    path = root / mutant.path
    original = path.read_text(encoding="utf-8")
    path.write_text(original.replace(mutant.original, mutant.replacement, 1), encoding="utf-8")
    try:
        status, seconds, _ = run_tests(root, tests, timeout)
    finally:
        path.write_text(original, encoding="utf-8")
    return {"failed": "killed", "passed": "survived"}.get(status, status), seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these mutants")
    parser.add_argument("--full", action="store_true", help="run the whole suite for every mutant")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--from-head", action="store_true",
                        help="test the last commit (git archive HEAD) instead of the working tree")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per test run (default 600)")
    args = parser.parse_args(argv)

    mutants = MUTANTS
    if args.only:
        unknown = sorted(set(args.only) - {m.name for m in MUTANTS})
        if unknown:
            parser.error(f"unknown mutant(s): {', '.join(unknown)}")
        mutants = tuple(m for m in MUTANTS if m.name in args.only)
    if args.list:
        for mutant in mutants:
            print(f"{mutant.name:30s} {mutant.path}: {mutant.description}")
        return 0
    with tempfile.TemporaryDirectory(prefix="vsrt_mutation_") as parent:
        root = copy_tree(REPO_ROOT, Path(parent), from_head=args.from_head)
        return run_mutants(root, mutants, args.full, args.timeout)


def run_mutants(root: Path, mutants: tuple[Mutant, ...], full: bool, timeout: float) -> int:
    """Baseline, then every mutant in the copy at ``root``; prints a Markdown table; the exit status."""
    problems = check_applies(root, mutants)
    if problems:
        print("The mutation list does not match the code:\n  " + "\n  ".join(problems))
        return 1

    baseline = ("tests",) if full else tuple(dict.fromkeys(t for m in mutants for t in m.tests))
    status, seconds, tail = run_tests(root, baseline, timeout * 3)
    print(f"baseline (unmutated, {len(baseline)} test targets): {status} in {seconds:.0f} s", flush=True)
    if status != "passed":
        print(tail)
        return 1
    rows = []
    for mutant in mutants:
        result, seconds = apply_and_test(root, mutant, ("tests",) if full else mutant.tests, timeout)
        rows.append((mutant, result, seconds))
        print(f"{result:8s} {seconds:6.0f} s  {mutant.name}: {mutant.description}", flush=True)

    survivors = [m.name for m, result, _ in rows if result != "killed"]
    print("\n| mutant | file | bug | result |\n|---|---|---|---|")
    for mutant, result, seconds in rows:
        print(f"| `{mutant.name}` | `{mutant.path}` | {mutant.description} | {result} ({seconds:.0f} s) |")
    print(f"\n{len(rows) - len(survivors)} of {len(rows)} mutants killed"
          + (f"; not killed: {', '.join(survivors)}" if survivors else ""))
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
