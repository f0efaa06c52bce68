"""Arbitrary-scale video SR model (SAVSR): one scale per batch in training, many scales per validation.

Registered as ``ASVSRModel``, the official name (Weepingchestnut/SAVSR,
``lbasicsr/models/asvsr_model.py``). The network must be arbitrary-scale (``arbitrary_scale = True``):
it is called as ``net(lqs, scale=(s_h, s_w))`` on ``num_frame`` frames and returns the SR of the
centre frame ``(n, c, H, W)``.

* Training: batches from :mod:`vsrt.data.as_train_dataset` carry GT patches and per-sample draws;
  :meth:`feed_data` gives the batch the scale of its first sample, makes the LR
  (:func:`~vsrt.data.as_train_dataset.make_scaled_batch`) and keeps the centre GT frame as target.
  Batches that already hold ``lq`` (a fixed-scale dataset) use ``scale`` from the batch or the
  top-level ``scale`` option.
* Testing (official protocol): every frame is super-resolved from the ``num_frame`` window centred
  on it (ends padded as the dataset's ``padding``, ``reflection`` by default), one forward per
  frame; metrics are averaged per clip, then over clips.
* Validation runs at every scale of the dataset (``ASVideoTestDataset.scales``) and reports
  ``<metric>_<tag>`` (``psnr_y_x2.0``, ``psnr_y_x1.5_x3.8``).

Deliberate differences from the official model: the scale is a forward argument, not state set on
the network; the batch scale is logged through the message logger (``scale_h``, ``scale_w``)
instead of printed every iteration; the EMA network also follows net_g's buffers (the BatchNorm
statistics; officially they kept their initial values, and validation used that EMA network).
"""

from __future__ import annotations

from typing import Any

import torch

from vsrt.archs.scale import ScalePair, as_scale_pair, is_arbitrary_scale, scale_tag
from vsrt.archs.spec import describe_network
from vsrt.data.as_train_dataset import make_scaled_batch
from vsrt.data.data_util import generate_frame_indices
from vsrt.models.video_recurrent_model import VideoRecurrentModel
from vsrt.registry import MODEL_REGISTRY
from vsrt.utils.checkpoint import unwrap_model
from vsrt.utils.memory_check import check_fits


@MODEL_REGISTRY.register()
class ASVSRModel(VideoRecurrentModel):
    """Centre-frame arbitrary-scale training; sliding-window, multi-scale validation."""

    def __init__(self, opt: dict[str, Any]) -> None:
        train_data = (opt.get("datasets") or {}).get("train") or {}
        self.lq_size = int(train_data.get("lq_size", 60))
        self.downsample_mode = train_data.get("downsample_mode", "torch")
        self.test_scale: ScalePair | None = None
        self.window_padding = "reflection"
        super().__init__(opt)
        net = unwrap_model(self.net_g)
        if not is_arbitrary_scale(net):
            raise ValueError(f"model_type ASVSRModel needs an arbitrary-scale network (arbitrary_scale = True); "
                             f"{type(net).__name__} is not one: use VideoRecurrentModel")
        if (opt.get("val") or {}).get("flip_seq"):
            raise ValueError("val.flip_seq is not supported by ASVSRModel (it tests one centre frame per window)")
        self.num_frame = int(net.num_frame)
        self.center_frame_idx = int(getattr(net, "center_frame_idx", self.num_frame // 2))

    # ------------------------------------------------------------ training
    def feed_data(self, data: dict[str, Any]) -> None:
        if "lq" not in data:  # GT patches + per-sample draws: one scale for the whole batch
            self.scale = as_scale_pair(tuple(data["scale"][0].tolist()))
            gt = data["gt"].to(self.device, non_blocking=True)
            self.lq, gt = make_scaled_batch(gt, self.scale, data["crop"][0].tolist(), self.lq_size,
                                            self.downsample_mode)
        else:
            self.scale = self._batch_scale(data)
            self.lq = data["lq"].to(self.device, non_blocking=True)
            gt = data["gt"].to(self.device, non_blocking=True) if "gt" in data else None
        if gt is not None:  # (n, t, c, H, W) -> the target frame (n, c, H, W)
            self.gt = gt[:, self.center_frame_idx] if gt.dim() == 5 else gt

    def _batch_scale(self, data: dict[str, Any]) -> ScalePair:
        if "scale" in data:
            scale = data["scale"]
            return as_scale_pair(tuple(scale[0].tolist()) if torch.is_tensor(scale) else scale)
        if self.opt.get("scale") is None:
            raise ValueError("ASVSRModel: the batch has no 'scale' and the options no top-level 'scale'")
        return as_scale_pair(self.opt["scale"])

    def forward_train(self) -> torch.Tensor:
        return self.net_g(self.lq, scale=self.scale)

    def optimize_parameters(self, current_iter: int, micro_step: int = 0, micro_steps: int = 1) -> None:
        super().optimize_parameters(current_iter, micro_step, micro_steps)
        self.log_dict["scale_h"], self.log_dict["scale_w"] = self.scale

    @torch.no_grad()
    def update_ema(self) -> None:
        super().update_ema()
        if self.net_g_ema is not None:  # BatchNorm running statistics are buffers, not parameters
            buffers = dict(unwrap_model(self.net_g).named_buffers())
            for name, ema_buffer in self.net_g_ema.named_buffers():
                ema_buffer.copy_(buffers[name])

    # ----------------------------------------------------------- inference
    def network_for_test(self) -> torch.nn.Module:
        # the official ASVSRModel tests the EMA network when there is one
        return self.net_g_ema if self.net_g_ema is not None else unwrap_model(self.net_g)

    @torch.no_grad()
    def infer(self, lq: torch.Tensor, scale: Any = None) -> torch.Tensor:
        """``(n, t, c, h, w)`` -> ``(n, t, c, H, W)``: each frame from the window centred on it (eval mode).

        ``scale`` defaults to the scale being validated (or the top-level ``scale`` option).
        """
        scale = as_scale_pair(scale if scale is not None else self.test_scale or self.opt.get("scale") or 4)
        num_clip_frames = lq.shape[1]
        if num_clip_frames <= self.num_frame // 2 and self.window_padding != "replicate":
            raise ValueError(f"a clip of {num_clip_frames} frames is too short for a {self.num_frame}-frame "
                             f"window with '{self.window_padding}' padding")
        net = self.network_for_test()
        # an absurd scale fails here with the estimated size, not after minutes of allocation
        check_fits(describe_network(self.opt["network_g"]), tuple(lq.shape[-2:]), scale, num_clip_frames,
                   num_clip_frames, lq.device, outputs_on=lq.device)
        was_training = net.training
        net.eval()
        frames = []
        try:
            for index in range(num_clip_frames):
                window = generate_frame_indices(index, num_clip_frames, self.num_frame, self.window_padding)
                with self.precision.autocast():
                    frames.append(net(lq[:, window], scale=scale).float())  # (n, c, H, W)
        finally:
            net.train(was_training)
        return torch.stack(frames, dim=1)

    # ----------------------------------------------------------- validation
    def validation(self, dataloader: Any, current_iter: int, tb_logger: Any = None,
                   save_img: bool = False) -> dict[str, float]:
        """Validate at every scale of the dataset; return ``{'<metric>_<tag>': average}``."""
        dataset = getattr(dataloader, "dataset", dataloader)
        scales = list(getattr(dataset, "scales", None) or [self._dataset_scale(dataset)])
        self.window_padding = getattr(dataset, "padding", None) or "reflection"
        averages: dict[str, float] = {}
        clips: dict[str, dict[str, float]] = {}
        try:
            for scale in scales:
                self.test_scale = as_scale_pair(scale)
                tag = scale_tag(scale)
                view = dataset
                if hasattr(dataset, "at_scale"):  # named <name>_<tag> in logs and image folders
                    view = dataset.at_scale(scale)
                    if len(scales) > 1:
                        view.opt["name"] = f"{dataset.opt.get('name', 'test')}_{tag}"
                for metric, value in super().validation(view, current_iter, None, save_img).items():
                    averages[f"{metric}_{tag}"] = value
                for clip, values in self.last_validation["clips"].items():
                    clips.setdefault(clip, {}).update({f"{m}_{tag}": v for m, v in values.items()})
        finally:
            self.test_scale = None
        self.last_validation = {"average": averages, "clips": clips, "scales": [scale_tag(s) for s in scales]}
        if self.rank == 0 and averages:
            name = dataset.opt.get("name", "dataset")
            lines = [f"Validation {name} at {len(scales)} scale(s)"]
            lines += [f"\t # {metric}: {value:.4f}" for metric, value in averages.items()]
            self.logger.info("\n".join(lines))
            if tb_logger is not None:
                for metric, value in averages.items():
                    tb_logger.add_scalar(f"metrics/{name}/{metric}", value, current_iter)
        return averages

    def _dataset_scale(self, dataset: Any) -> ScalePair:
        """Scale of a dataset with pre-made LR: the top-level ``scale``, else the dataset's own."""
        for scale in (self.opt.get("scale"), (getattr(dataset, "opt", None) or {}).get("scale")):
            if scale is not None:
                return as_scale_pair(scale)
        raise ValueError(f"ASVSRModel cannot tell the scale of dataset {dataset.opt.get('name')}: "
                         "set 'scales' on it or a top-level 'scale'")
