"""Build a network from an option file or a zoo preset and load its weights strictly."""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vsrt.inference.spec import ModelSpec, describe_network

logger = logging.getLogger("vsrt")


@dataclass
class LoadedModel:
    """A network ready for inference plus what the scripts report about it."""

    net: nn.Module
    network_g: dict[str, Any]
    spec: ModelSpec
    label: str  # preset name or option-file stem
    weights: Path | None
    preset: Any = None  # vsrt.zoo.Preset when loaded by name
    checksum_verified: bool = False


def pick_device(name: str = "auto") -> torch.device:
    """``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (CUDA when available)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"--device {name}: expected cpu, cuda, cuda:N or auto") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: CUDA is not available on this machine (use --device cpu)")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return device


def network_from_options(opt_path: str | Path) -> tuple[dict[str, Any], str | None, str | None]:
    """``network_g``, ``path.pretrain_network_g`` and ``path.param_key_g`` of a BasicSR option file."""
    from vsrt.options import load_yaml

    opt = load_yaml(opt_path)
    if "network_g" not in opt:
        raise KeyError(f"{opt_path}: no network_g section")
    paths = opt.get("path") or {}
    return dict(opt["network_g"]), paths.get("pretrain_network_g"), paths.get("param_key_g", "params")


def load_model(opt: str | Path | None = None, model: str | None = None, weights: str | Path | None = None,
               device: torch.device | str = "cpu", allow_download: bool = True,
               network_g: dict[str, Any] | None = None, load_weights: bool = True) -> LoadedModel:
    """Build and load a network from exactly one of ``opt`` (option file), ``model`` (zoo name) or
    ``network_g`` (a dict), with ``weights`` (a checkpoint; loaded with ``strict=True``).

    With ``model`` and no ``weights``, the preset's checkpoint is taken from the torch hub cache
    (downloaded when it has a URL and ``allow_download``); checksums are verified when known.
    Without weights (or with ``load_weights=False``, for profiling) the network keeps its random
    initialisation and a warning says so.
    """
    from vsrt.archs import build_network
    from vsrt.utils.checkpoint import load_network

    if sum(x is not None for x in (opt, model, network_g)) != 1:
        raise ValueError("give exactly one of --opt X.yml or --model NAME")
    preset, param_key, verified, path = None, "params", False, None
    if model is not None:
        from vsrt import zoo

        preset = zoo.get_preset(model)
        network_g, param_key, label = copy.deepcopy(preset.network_g), preset.param_key, preset.name
        if load_weights:
            path = zoo.resolve_checkpoint(preset, weights, allow_download=allow_download)
            verified = bool(preset.sha256)
    else:
        if opt is not None:
            network_g, default_weights, param_key = network_from_options(opt)
            label = Path(opt).stem
            weights = weights if weights is not None else default_weights
        else:
            label = network_g["type"]
        path = Path(weights) if weights is not None and load_weights else None
    net = build_network(network_g)
    if path is not None:
        load_network(net, path, param_key=param_key, strict=True)
    else:
        logger.warning("No weights given for %s: the network is randomly initialised.", label)
    device = torch.device(device)
    net = net.to(device).eval()
    return LoadedModel(net, network_g, describe_network(network_g, net), label, path, preset, verified)
