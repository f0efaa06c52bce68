"""Raw-byte readers for the training datasets: plain files (``disk``) and LMDB (``lmdb``).

The LMDB layout is BasicSR's: a folder ``<name>.lmdb`` with ``data.mdb``,
``lock.mdb`` and ``meta_info.txt`` (lines ``<key>.png (h,w,c) <png level>``);
values are PNG bytes; keys are paths relative to the source folder without
``.png`` (``000/00000000``, ``00001/0001/im4``). Environments are opened
read-only with ``lock=False, readahead=False``.

Differences from BasicSR's ``FileClient``: LMDB environments open lazily on the
first read and are reopened in a new process (forked DataLoader workers) and
dropped when pickled (spawned workers), so a dataset may create its client
in ``__init__``; a missing key or file raises an error naming it instead of
returning ``None``; ``memcached`` is not provided.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from vsrt.utils import imfrombytes

PathLike = str | os.PathLike


class DiskBackend:
    """Reads whole files."""

    def get(self, filepath: PathLike, client_key: str = "default") -> bytes:
        try:
            with open(filepath, "rb") as f:
                return f.read()
        except FileNotFoundError:
            raise FileNotFoundError(f"File not found: {filepath}") from None


_open_envs: dict[str, Any] = {}  # real path -> environment, for the current process
_open_envs_pid = -1


def _open_env(path: str, open_kwargs: dict[str, Any]) -> Any:
    """One environment per database and process (py-lmdb refuses to open one twice in a process)."""
    global _open_envs_pid
    if _open_envs_pid != os.getpid():  # first use, or a forked DataLoader worker
        # LMDB forbids using a parent's env after fork and opening a path twice in one process,
        # so a child closes its inherited copies (read-only, lock-free: this touches only the
        # child's own mapping and file descriptor) before opening its own.
        for env in _open_envs.values():
            env.close()
        _open_envs.clear()
        _open_envs_pid = os.getpid()
    if path not in _open_envs:
        import lmdb

        _open_envs[path] = lmdb.open(path, **open_kwargs)
    return _open_envs[path]


class LmdbBackend:
    """Reads values from one or more LMDB environments, one per client key (``lq``, ``gt``).

    Holds paths only; environments live in a per-process table and open on first read.
    """

    def __init__(self, db_paths: Mapping[str, PathLike], readonly: bool = True, lock: bool = False,
                 readahead: bool = False, **lmdb_kwargs: Any) -> None:
        self.db_paths = {key: str(path) for key, path in db_paths.items()}
        for key, path in self.db_paths.items():
            if not path.endswith(".lmdb"):
                raise ValueError(f"LMDB folder for '{key}' must end with '.lmdb': {path}")
            if not os.path.isfile(os.path.join(path, "data.mdb")):
                raise FileNotFoundError(f"LMDB folder for '{key}' not found (no data.mdb): {path}")
        self.real_paths = {key: os.path.realpath(path) for key, path in self.db_paths.items()}
        self.open_kwargs = dict(readonly=readonly, lock=lock, readahead=readahead, **lmdb_kwargs)

    def get(self, filepath: PathLike, client_key: str = "default") -> bytes:
        if client_key not in self.real_paths:
            raise KeyError(f"No LMDB for client key '{client_key}'; have {sorted(self.db_paths)}")
        key = str(filepath)
        with _open_env(self.real_paths[client_key], self.open_kwargs).begin(write=False) as txn:
            value = txn.get(key.encode("ascii"))
        if value is None:
            raise KeyError(f"Key '{key}' not found in {self.db_paths[client_key]}")
        return value


class FileClient:
    """``FileClient('disk')`` or ``FileClient('lmdb', db_paths={'lq': ..., 'gt': ...})``."""

    backends: ClassVar[dict[str, type]] = {"disk": DiskBackend, "lmdb": LmdbBackend}

    def __init__(self, backend: str = "disk", **kwargs: Any) -> None:
        if backend not in self.backends:
            raise ValueError(f"io_backend type '{backend}' is not supported; use one of {sorted(self.backends)}")
        if backend == "disk" and kwargs:
            raise TypeError(f"io_backend 'disk' takes no options, got {sorted(kwargs)}")
        self.backend = backend
        self.client = self.backends[backend](**kwargs)

    def get(self, filepath: PathLike, client_key: str = "default") -> bytes:
        return self.client.get(filepath, client_key)

    def read_image(self, filepath: PathLike, client_key: str = "default") -> np.ndarray:
        """Decode to float32 BGR (h, w, c) in [0, 1]; errors name the file or key."""
        content = self.get(filepath, client_key)
        try:
            img = imfrombytes(content, float32=True)
        except Exception as err:  # cv2 / numpy report decode failures in several ways
            raise ValueError(f"Cannot decode image {filepath} ({client_key}): {err}") from err
        if img is None:
            raise ValueError(f"Cannot decode image {filepath} ({client_key})")
        return img


def build_file_client(io_backend_opt: Mapping[str, Any] | None, roots: Mapping[str, PathLike],
                      owner: str = "dataset") -> FileClient:
    """Client for a dataset's ``io_backend`` option; LMDB databases are the dataset roots.

    ``roots`` maps client keys to ``dataroot_*`` folders, e.g. ``{'lq': ..., 'gt': ...}``;
    a missing one is an error naming ``owner`` (the dataset) and the folder.
    """
    for root in roots.values():
        if not Path(root).is_dir():
            raise FileNotFoundError(f"{owner}: data folder not found: {root}")
    opt = dict(io_backend_opt or {"type": "disk"})
    backend = opt.pop("type", "disk")
    if backend == "lmdb":
        opt.pop("db_paths", None)  # BasicSR datasets fill these in; the roots are authoritative
        opt.pop("client_keys", None)
        return FileClient("lmdb", db_paths=dict(roots), **opt)
    return FileClient(backend, **opt)


def lmdb_keys(lmdb_path: PathLike) -> list[str]:
    """Keys listed in ``<lmdb_path>/meta_info.txt`` (the name before ``.png``)."""
    meta = Path(lmdb_path) / "meta_info.txt"
    if not meta.is_file():
        raise FileNotFoundError(f"No meta_info.txt in {lmdb_path}")
    with open(meta) as f:
        return [line.split(" ")[0].rsplit(".", 1)[0] for line in f if line.strip()]
