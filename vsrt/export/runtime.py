"""Run an exported file (ONNX Runtime or ``torch.export.load``) behind the network's interface.

:func:`load_exported` returns an :class:`ExportedNetwork`: an ``nn.Module`` whose ``forward(lqs)``
takes ``(n, T, C, h, w)`` clips like the eager network, so :class:`vsrt.inference.runner.ClipRunner`
(tiling, the frame protocols) drives either. A frame smaller than a fixed exported size is padded
by edge replication and the output cropped; a larger one is an error (tile it: ``--tile H W``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vsrt.export.graph import METADATA_KEY, ExportInfo, require

BACKENDS = ("onnxruntime", "pt2")


class ExportedNetwork(nn.Module):
    """An exported graph with the call interface of the network it came from."""

    arbitrary_scale = False

    def __init__(self, path: Path, info: ExportInfo, run: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.path, self.info, self.run = path, info, run
        spec = info.model_spec()
        self.upscale = spec.scale  # what vsrt.archs.scale.fixed_scale reads

    def forward(self, lqs: torch.Tensor, scale: Any = None) -> torch.Tensor:
        """``(n, T, C, h, w)`` -> the exported network's output for each clip, float32."""
        info = self.info
        if scale is not None:
            self._check_scale(scale)
        n, t, c, h, w = lqs.shape
        if (t, c) != (info.frames, info.channels):
            raise ValueError(f"{self.path}: exported for clips of {info.frames} frames of {info.channels} channels, "
                             f"got {t} frames of {c}; export again with --frames {t}")
        height, width = info.size
        if h > height or w > width:
            raise ValueError(f"{self.path}: exported for frames of at most {height}x{width}, got {h}x{w}; "
                             f"tile the input (--tile {height} {width}) or export a larger --size")
        clip = lqs.to(info.dtype)
        if (h, w) != (height, width):  # (n*T, C, h, w) padded at the bottom and right
            clip = F.pad(clip.flatten(0, 1), (0, width - w, 0, height - h), mode="replicate").unflatten(0, (n, t))
        out = torch.cat([self.run(clip[i:i + 1]) for i in range(n)]).float()
        out_h, out_w = round(h * out.shape[-2] / height), round(w * out.shape[-1] / width)
        return out[..., :out_h, :out_w]

    def _check_scale(self, scale: Any) -> None:
        pair = tuple(float(s) for s in scale) if isinstance(scale, (tuple, list)) else (float(scale),) * 2
        exported = self.info.scale or (float(self.upscale),) * 2
        if any(abs(a - b) > 1e-6 for a, b in zip(pair, exported)):
            raise ValueError(f"{self.path} was exported at x{exported[0]:g}/x{exported[1]:g}; got x{pair[0]:g}/"
                             f"x{pair[1]:g}: export again with --scale")


class ExportedArbitraryScale(ExportedNetwork):
    """An arbitrary-scale network (SAVSR) exported at one scale: other scales are refused."""

    arbitrary_scale = True


def read_info(path: str | Path) -> ExportInfo:
    """The :class:`ExportInfo` stored in an exported ``.onnx`` or ``.pt2`` file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such exported model")
    if path.suffix == ".onnx":
        require("onnx")
        import onnx

        props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
        text = props.get(METADATA_KEY)
    else:
        extra = {f"{METADATA_KEY}.json": ""}
        torch.export.load(str(path), extra_files=extra)
        text = extra[f"{METADATA_KEY}.json"] or None
    if not text:
        raise ValueError(f"{path}: not exported by vsrt (no '{METADATA_KEY}' metadata); use python -m vsrt export")
    return ExportInfo.from_json(text, str(path))


def load_exported(path: str | Path, threads: int | None = None) -> ExportedNetwork:
    """An :class:`ExportedNetwork` running ``path``: ONNX Runtime (CPU) for ``.onnx``,
    ``torch.export.load`` for ``.pt2`` (on the device its inputs are on)."""
    path = Path(path)
    info = read_info(path)
    run = _onnxruntime_runner(path, info, threads) if path.suffix == ".onnx" else _pt2_runner(path)
    cls = ExportedArbitraryScale if info.scale is not None else ExportedNetwork
    return cls(path, info, run)


def _onnxruntime_session(path: Path, threads: int | None = None) -> Any:
    """An ONNX Runtime CPU session of ``path`` (``threads``: intra-op threads, default all cores)."""
    require("onnxruntime")
    import onnxruntime

    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _onnxruntime_runner(path: Path, info: ExportInfo, threads: int | None) -> Callable[[torch.Tensor], torch.Tensor]:
    session = _onnxruntime_session(path, threads)
    input_name = session.get_inputs()[0].name

    def run(clip: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(session.run(None, {input_name: clip.cpu().numpy()})[0])

    return run


def _pt2_runner(path: Path) -> Callable[[torch.Tensor], torch.Tensor]:
    module = torch.export.load(str(path)).module()

    def run(clip: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            out = module(clip)
        return out[0] if isinstance(out, (tuple, list)) else out

    return run


def run_all_outputs(path: str | Path, clip: torch.Tensor) -> list[torch.Tensor]:
    """Every output of the exported file on one ``(1, T, C, H, W)`` clip (float32, CPU)."""
    path = Path(path)
    if path.suffix == ".onnx":
        session = _onnxruntime_session(path)
        outs = session.run(None, {session.get_inputs()[0].name: clip.cpu().numpy()})
        return [torch.from_numpy(o).float() for o in outs]
    with torch.no_grad():
        outs = torch.export.load(str(path)).module()(clip)
    return [o.float() for o in (outs if isinstance(outs, (tuple, list)) else (outs,))]
