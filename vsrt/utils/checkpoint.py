"""Checkpoint files: atomic writes and strict loading of official state dicts."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vsrt.publish import publish
from vsrt.utils.safe_load import read_checkpoint


def atomic_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` to ``.<name>.<random>.tmp`` in the same folder, fsync, then ``os.replace``.

    A kill at any moment leaves the previous file (or nothing), never a torn file;
    a failed write (an exception, Ctrl-C) also removes its temporary file. The
    published file gets the permissions a plain new file would get (mkstemp's are 0600).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        publish(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise
    _fsync_directory(path.parent)


def _fsync_directory(folder: Path) -> None:
    """Make the rename itself durable (POSIX; a no-op where folders cannot be opened)."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def unwrap_model(net: nn.Module) -> nn.Module:
    """The bare module inside DataParallel/DistributedDataParallel."""
    return net.module if hasattr(net, "module") and isinstance(net.module, nn.Module) else net


def extract_state_dict(checkpoint: Any, param_key: str | None = "params",
                       source: str = "<checkpoint>") -> dict[str, torch.Tensor]:
    """The state dict inside a BasicSR/KAIR checkpoint.

    ``param_key`` (``params`` or ``params_ema``) is used when present, falling back
    to ``params``; a raw state dict is returned as it is. ``module.`` prefixes are
    stripped.
    """
    if not isinstance(checkpoint, dict):
        raise TypeError(f"{source}: expected a dict, got {type(checkpoint).__name__}")
    state = checkpoint
    if param_key and param_key in checkpoint and isinstance(checkpoint[param_key], dict):
        state = checkpoint[param_key]
    elif "params" in checkpoint and isinstance(checkpoint["params"], dict):
        state = checkpoint["params"]
    elif param_key and any(isinstance(v, dict) for v in checkpoint.values()):
        raise KeyError(f"{source}: no '{param_key}' or 'params' entry; keys: {sorted(checkpoint)}")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}


def load_network(net: nn.Module, path: str | Path, param_key: str | None = "params",
                 strict: bool = True,
                 convert: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]] | None = None) -> None:
    """Load a checkpoint into ``net``; with ``strict`` every key must match.

    ``convert`` defaults to the network class's ``checkpoint_filter_fn`` when it
    has one (a pure ``state_dict -> state_dict`` function for renamed keys).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Checkpoint not found: {path}")
    net = unwrap_model(net)
    checkpoint = read_checkpoint(path)  # data only; a refused or damaged file is an error naming it
    state = extract_state_dict(checkpoint, param_key, str(path))
    convert = convert or getattr(type(net), "checkpoint_filter_fn", None)
    if convert is not None:
        state = convert(state)
    own = net.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [f"{k}: checkpoint {tuple(state[k].shape)} vs network {tuple(own[k].shape)}"
                  for k in own if k in state and state[k].shape != own[k].shape]
    if strict and (missing or unexpected or mismatched):
        lines = [f"Checkpoint {path} does not match {type(net).__name__} (strict loading):"]
        for title, keys in (("missing", missing), ("unexpected", unexpected), ("shape", mismatched)):
            if keys:
                shown = ", ".join(keys[:20]) + (f", ... ({len(keys)} in all)" if len(keys) > 20 else "")
                lines.append(f"  {title}: {shown}")
        raise RuntimeError("\n".join(lines))
    if not strict:
        state = {k: v for k, v in state.items() if k in own and v.shape == own[k].shape}
    net.load_state_dict(state, strict=strict)
