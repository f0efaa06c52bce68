"""Whole-clip training and per-clip validation of recurrent (and clip-to-clip) VSR networks.

Registered as ``VideoRecurrentModel`` and, for the official PSRT-recurrent and
MIA-VSR option files, ``RecurrentMixPrecisionRTModel`` (mixed precision by
default). Batches are ``lq (n, t, c, h, w)`` and ``gt (n, t, c, H, W)``.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import inspect
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch
from tqdm import tqdm

from vsrt.archs.scale import fixed_scale
from vsrt.archs.spec import describe_network
from vsrt.archs.tiling import TileConfig, tiled_inference
from vsrt.losses import build_loss
from vsrt.losses.sparsity_loss import build_sparsity_loss, kept_token_ratio
from vsrt.metrics import calculate_metric, is_clip_metric, metric_better
from vsrt.models.base_model import BaseModel
from vsrt.registry import MODEL_REGISTRY
from vsrt.utils import imwrite, tensor2img
from vsrt.utils.checkpoint import unwrap_model
from vsrt.utils.dist import all_reduce_sum


def tile_config_from_options(tile_opt: dict[str, Any] | None, network_opt: dict[str, Any]) -> TileConfig | None:
    """``val.tile`` as a :class:`~vsrt.archs.tiling.TileConfig`; None (whole clips) when absent.

    Keys are the ``TileConfig`` fields, e.g. ``{temporal_chunk: 12, temporal_overlap: 2,
    tile: [64, 64], tile_overlap: [20, 20]}``; ``size_multiple`` (what an axis processed whole
    is padded to) defaults to the network's need, VRT's window size.
    """
    if not tile_opt:
        return None
    valid = [f.name for f in dataclasses.fields(TileConfig)]
    if not isinstance(tile_opt, dict):
        raise TypeError(f"val.tile must be a mapping with keys {', '.join(valid)}; got {tile_opt!r}")
    for key in tile_opt:
        if key not in valid:
            close = difflib.get_close_matches(key, valid, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ValueError(f"val.tile: unknown key '{key}'.{hint} Valid keys: {', '.join(valid)}")
    kwargs = {"size_multiple": describe_network(network_opt).size_multiple, **tile_opt}
    try:
        return TileConfig(**kwargs)
    except (TypeError, ValueError) as err:
        raise ValueError(f"val.tile: {err} (frames go in temporal_chunk / temporal_overlap, "
                         "tile and tile_overlap are (h, w))") from err


@MODEL_REGISTRY.register()
class VideoRecurrentModel(BaseModel):
    """Train on whole clips; validate clip by clip with per-clip and average metrics."""

    def init_training_settings(self) -> None:
        train_opt = self.opt["train"]
        if not (train_opt.get("pixel_opt") or train_opt.get("perceptual_opt")):
            raise ValueError(f"{self.opt.get('opt_path', 'options')}: train.pixel_opt (or train.perceptual_opt) "
                             "is required")
        self.cri_pix = build_loss(train_opt["pixel_opt"]).to(self.device) if train_opt.get("pixel_opt") else None
        self.cri_perceptual = None
        if train_opt.get("perceptual_opt"):
            try:
                self.cri_perceptual = build_loss(train_opt["perceptual_opt"]).to(self.device)
            except (ValueError, TypeError, KeyError, FileNotFoundError, RuntimeError) as err:
                message = err.args[0] if isinstance(err, KeyError) else str(err)
                raise type(err)(f"{self.opt.get('opt_path', 'options')}: train.perceptual_opt: {message}") from err
        self.fix_flow_iter = int(train_opt.get("fix_flow") or 0)
        self._flow_frozen: bool | None = None
        super().init_training_settings()

    def feed_data(self, data: dict[str, Any]) -> None:
        self.lq = data["lq"].to(self.device, non_blocking=True)
        if "gt" in data:
            self.gt = data["gt"].to(self.device, non_blocking=True)

    # ------------------------------------------------------------ training
    def set_flow_frozen(self, current_iter: int) -> None:
        """``fix_flow: N`` trains without the flow network for iterations < N.

        A negative N keeps it frozen for the whole run (what the official
        Vimeo files, which say -1, actually do). Unlike BasicSR the state is a
        function of the iteration, so it is also right after a resume.
        """
        if not self.fix_flow_iter:
            return
        frozen = self.fix_flow_iter < 0 or current_iter < self.fix_flow_iter
        if frozen == self._flow_frozen:
            return
        self._flow_frozen = frozen
        flow_params = [param for name, param in unwrap_model(self.net_g).named_parameters()
                       if any(k in name for k in self.flow_param_keywords)]
        for param in flow_params:
            param.requires_grad_(not frozen)
        if flow_params:  # a network without a flow network (SAVSR, VRT for interpolation) has nothing to say
            self.logger.info("%s the flow network at iteration %d", "Freeze" if frozen else "Train", current_iter)

    # statistics of the last training step that are not losses (kept_ratio, 0-d tensors); set by compute_losses
    train_stats: Mapping[str, torch.Tensor] = MappingProxyType({})

    @functools.cached_property
    def net_returns_token_masks(self) -> bool:
        """Whether ``net_g.forward`` takes ``return_masks`` (MIA-VSR, IIA-VSR).

        Such a network is trained with its token masks and the sparsity loss
        whatever the model type (official MIA-VSR files: ``RecurrentMixPrecisionRTModel``).
        """
        return "return_masks" in inspect.signature(unwrap_model(self.net_g).forward).parameters

    @functools.cached_property
    def cri_sparsity(self) -> torch.nn.Module:
        """``train.sparsity_opt`` / ``train.sparsity_target`` (see ``build_sparsity_loss``), built on first use."""
        criterion = build_sparsity_loss(self.opt["train"], self.opt.get("opt_path", "options")).to(self.device)
        self.logger.info("Token-mask sparsity loss: %s", criterion)
        return criterion

    def forward_train(self) -> Any:
        """The HR clip, or ``(clip, token masks)`` for a network that can return masks."""
        if self.net_returns_token_masks:
            return self.net_g(self.lq, return_masks=True)
        return self.net_g(self.lq)

    def compute_losses(self, output: Any) -> dict[str, torch.Tensor]:
        """Named loss terms for one :meth:`forward_train` output (subclasses add terms).

        With token masks (MIA-VSR, ``use_mask: true``) the sparsity loss ``l_spa`` is
        added and the kept-token ratio is logged as ``kept_ratio`` (a device tensor, averaged
        over processes when the log is read).
        """
        masks = None
        if isinstance(output, tuple):  # (clip, masks); masks is None without mask prediction
            output, masks = output
        losses = {}
        if self.cri_pix is not None:
            losses["l_pix"] = self.cri_pix(output.float(), self.gt)
        if self.cri_perceptual is not None:  # VGG features of every frame
            perceptual, style = self.cri_perceptual(output.float(), self.gt)
            losses.update({k: v for k, v in (("l_percep", perceptual), ("l_style", style)) if v is not None})
        self.train_stats = {}
        if masks is not None:
            losses["l_spa"] = self.cri_sparsity(masks)
            self.train_stats = {"kept_ratio": kept_token_ratio(masks).detach()}
        return losses

    def optimize_parameters(self, current_iter: int, micro_step: int = 0, micro_steps: int = 1) -> None:
        """Forward and backward of the fed batch; the optimizer steps after the last of ``micro_steps``.

        With ``micro_steps > 1`` (``train.accumulate_grad``) the loss is divided by ``micro_steps``
        and the logged values are the means over the micro-steps (see :meth:`train_step`).
        """
        self.set_flow_frozen(current_iter)
        if micro_step == 0:
            self.optimizer_g.zero_grad(set_to_none=True)
            self._micro_sums: dict[str, torch.Tensor] = {}
        with self.precision.autocast():
            output = self.forward_train()
        losses = self.compute_losses(output)
        total = sum(losses.values())
        self.backward(total / micro_steps if micro_steps > 1 else total, current_iter)
        for key, value in {**losses, **self.train_stats}.items():
            self._micro_sums[key] = self._micro_sums.get(key, 0) + torch.as_tensor(value).detach().float()
        if micro_step < micro_steps - 1:
            return
        self.optimizer_step()
        # device tensors: no host-device synchronisation here (get_current_log reads them)
        self.log_dict = OrderedDict((k, self._micro_sums[k] / micro_steps)
                                    for k in (*losses, *self.train_stats))
        self.train_log.add(self.log_dict, current_iter)

    # ----------------------------------------------------------- inference
    def network_for_test(self) -> torch.nn.Module:
        # BasicSR's video models validate net_g, not the EMA copy
        return unwrap_model(self.net_g)

    @torch.no_grad()
    def infer(self, lq: torch.Tensor) -> torch.Tensor:
        """``(n, t, c, h, w)`` -> ``(n, t, c, H, W)`` in eval mode (float32 result).

        ``val`` options: ``tile`` (see :func:`tile_config_from_options`) runs the network chunk
        by chunk and tile by tile through :mod:`vsrt.archs.tiling`, accumulating the output on
        the CPU as the official VRT test does (so the result is then a CPU tensor);
        ``pad_seq`` appends a copy of the last frame and drops its output (VRT on Vimeo-90K-T,
        7 -> 8 frames, as KAIR); ``flip_seq`` averages with the output of the reversed clip.
        """
        val_opt = self.opt.get("val") or {}
        tiles = tile_config_from_options(val_opt.get("tile"), self.opt["network_g"])
        net = self.network_for_test()
        scale = int(fixed_scale(net) or self.opt.get("scale") or 1)

        def run(clip: torch.Tensor) -> torch.Tensor:
            with self.precision.autocast():
                return net(clip.to(self.device)).float()

        def restore(video: torch.Tensor) -> torch.Tensor:
            return run(video) if tiles is None else tiled_inference(run, video, scale, tiles, output_device="cpu")

        num_frames = lq.shape[1]
        if val_opt.get("pad_seq"):
            lq = torch.cat([lq, lq[:, -1:]], dim=1)  # (n, t, ...) -> (n, t + 1, ...)
        was_training = net.training
        net.eval()
        try:
            output = restore(lq)
            if val_opt.get("flip_seq"):
                output = 0.5 * (output + restore(lq.flip(1)).flip(1))
        finally:
            net.train(was_training)
        return output[:, :num_frames] if val_opt.get("pad_seq") else output

    # ----------------------------------------------------------- validation
    def validation(self, dataloader: Any, current_iter: int, tb_logger: Any = None,
                   save_img: bool = False) -> dict[str, float]:
        """Score every clip of ``dataloader.dataset``; return the average per metric.

        Each rank takes clips ``rank, rank + world, ...``; per-frame scores are
        averaged per clip, then over clips (BasicSR convention).
        """
        dataset = getattr(dataloader, "dataset", dataloader)  # a DataLoader or a dataset
        dataset_name = dataset.opt["name"]
        val_opt = self.opt.get("val") or {}
        metric_opts = val_opt.get("metrics") or {}
        num_clips = len(dataset)
        scores = torch.zeros(num_clips, max(len(metric_opts), 1), dtype=torch.float64)
        clip_names = [""] * num_clips
        indices = range(self.rank, num_clips, self.world_size)
        show_bar = self.rank == 0 and val_opt.get("pbar", True)
        for index in tqdm(indices, desc=f"Validate {dataset_name}", unit="clip", disable=not show_bar):
            data = dataset[index]
            clip_names[index] = str(data.get("folder", index))
            try:
                output = self.infer(data["lq"].unsqueeze(0).to(self.device))[0].cpu()
            except ValueError as err:  # a clip the network cannot take: say which one
                raise ValueError(f"{dataset_name}, clip {clip_names[index]}: {err}") from err
            scores[index] = self._score_clip(output, data, metric_opts, current_iter, dataset_name,
                                             save_img, clip_names[index])
        scores = all_reduce_sum(scores.to(self.device)).cpu()
        if self.world_size > 1:
            names = [None] * self.world_size
            torch.distributed.all_gather_object(names, clip_names)
            clip_names = [next((n[i] for n in names if n[i]), "") for i in range(num_clips)]
        averages = {name: float(scores[:, j].mean()) for j, name in enumerate(metric_opts)}
        if self.rank == 0 and metric_opts:
            self._log_validation(dataset_name, current_iter, averages, scores, clip_names,
                                 list(metric_opts), tb_logger)
        self.last_validation = {"average": averages,
                                "clips": {c: {m: float(scores[i, j]) for j, m in enumerate(metric_opts)}
                                          for i, c in enumerate(clip_names)}}
        return averages

    def _score_clip(self, output: torch.Tensor, data: dict[str, Any], metric_opts: dict[str, Any],
                    current_iter: int, dataset_name: str, save_img: bool, clip: str) -> torch.Tensor:
        """Mean over frames of each metric for one clip; ``output`` is ``(t, c, H, W)``."""
        gt = data.get("gt")
        val_opt = self.opt.get("val") or {}
        if val_opt.get("center_frame_only") or (gt is not None and gt.dim() == 3):
            output = output[output.shape[0] // 2].unsqueeze(0)
            gt = gt.unsqueeze(0) if gt is not None and gt.dim() == 3 else gt
        sums = torch.zeros(max(len(metric_opts), 1), dtype=torch.float64)
        clip_level = [is_clip_metric((metric_opt or {}).get("type", "")) for metric_opt in metric_opts.values()]
        if any(clip_level) and output.shape[0] < 2:
            names = [name for name, is_clip in zip(metric_opts, clip_level) if is_clip]
            raise ValueError(f"val.metrics {names}: temporal metrics score consecutive frames, but clip {clip} of "
                             f"{dataset_name} is scored on {output.shape[0]} frame (center_frame_only or a "
                             "Vimeo-90K-T septuplet); use them on sets scored on whole clips")
        results, gt_imgs = [], []  # uint8 frames, kept for the clip-level metrics
        for frame_idx in range(output.shape[0]):
            result = tensor2img(output[frame_idx])
            if save_img:
                suffix = val_opt.get("suffix") or self.opt["name"]
                name = f"{frame_idx:08d}_{suffix}.png" if self.is_train is False else \
                    f"{frame_idx:08d}_{current_iter}.png"
                imwrite(result, str(Path(self.opt["path"]["visualization"]) / dataset_name / clip / name))
            if gt is not None:
                gt_img = tensor2img(gt[frame_idx])
                for j, metric_opt in enumerate(metric_opts.values()):
                    if not clip_level[j]:
                        sums[j] += calculate_metric({"img": result, "img2": gt_img}, metric_opt)
                if any(clip_level):
                    results.append(result)
                    gt_imgs.append(gt_img)
        scores = sums / output.shape[0]
        for j, metric_opt in enumerate(metric_opts.values()):
            if clip_level[j] and gt is not None:  # the clip's value, not a mean over frames
                scores[j] = calculate_metric({"imgs": results, "imgs2": gt_imgs}, metric_opt)
        return scores

    def _log_validation(self, dataset_name: str, current_iter: int, averages: dict[str, float],
                        scores: torch.Tensor, clip_names: list[str], metric_names: list[str],
                        tb_logger: Any) -> None:
        if not hasattr(self, "best_metric_results"):
            self.best_metric_results: dict[str, dict[str, tuple[float, int]]] = {}
        best = self.best_metric_results.setdefault(dataset_name, {})
        lines = [f"Validation {dataset_name}"]
        for j, metric in enumerate(metric_names):
            better = metric_better(self.opt["val"]["metrics"][metric] or {})
            value = averages[metric]
            record = best.get(metric)
            if record is None or (value > record[0] if better == "higher" else value < record[0]):
                best[metric] = (value, current_iter)
            lines.append(f"\t # {metric}: {value:.4f}")
            for i, clip in enumerate(clip_names):
                lines.append(f"\t # {clip}: {float(scores[i, j]):.4f}")
            lines.append(f"\t    Best: {best[metric][0]:.4f} @ {best[metric][1]} iter")
            if tb_logger is not None:
                tb_logger.add_scalar(f"metrics/{metric}", value, current_iter)
                for i, clip in enumerate(clip_names):
                    tb_logger.add_scalar(f"metrics/{metric}/{clip}", float(scores[i, j]), current_iter)
        self.logger.info("\n".join(lines))


@MODEL_REGISTRY.register()
class RecurrentMixPrecisionRTModel(VideoRecurrentModel):
    """The official PSRT-recurrent / MIA-VSR model name: fp16 autocast + GradScaler by default.

    Set ``precision: fp32`` or ``bf16`` at the top level of the option file to
    change it; on CPU fp16 falls back to fp32 with a warning.
    """

    default_precision = "fp16"
