"""Write image trees as BasicSR-compatible LMDBs (used by ``scripts/data_preparation/create_lmdb.py``).

Layout: ``data.mdb``, ``lock.mdb`` and ``meta_info.txt`` with one line
``<key>.png (h,w,c) <compression level>`` per image; values are PNG bytes
(``cv2.imencode``); keys are the paths relative to the input folder without
extension: ``000/00000000`` (REDS), ``00001/0001/im4`` (Vimeo90K).

Differences from BasicSR's ``lmdb_util``: the database is written to a
temporary folder and renamed when complete (an interrupted run leaves nothing
half-written); the map grows when full instead of being guessed once; parallel
reading streams in order instead of holding every image in memory.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Iterator, Sequence
from functools import partial
from multiprocessing import Pool
from pathlib import Path

import cv2
from tqdm import tqdm

from vsrt.data.data_util import IMAGE_EXTENSIONS

DATASETS = ("REDS", "Vimeo90K", "folder")
COMMIT_EVERY = 5000


def _images_below(root: Path, extensions: Sequence[str]) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in extensions
                  and not any(part.startswith(".") for part in p.relative_to(root).parts))


def _key(root: Path, path: Path) -> str:
    return path.relative_to(root).with_suffix("").as_posix()


def vimeo_items(root: Path, list_file: Path | None, center_only: bool) -> list[tuple[Path, str]]:
    """Septuplet frames ``<clip>/<seq>/im<n>.png``, from ``sep_*list.txt`` or by scanning ``root``."""
    frames = [4] if center_only else list(range(1, 8))
    if list_file is not None:
        with open(list_file) as f:
            sequences = [line.split()[0] for line in f if line.strip()]
        return [(root / seq / f"im{n}.png", f"{seq}/im{n}") for seq in sequences for n in frames]
    names = {f"im{n}.png" for n in frames}
    return [(p, _key(root, p)) for p in _images_below(root, (".png",)) if p.name in names]


def collect_items(dataset: str, root: Path, list_file: Path | None = None,
                  center_only: bool = False) -> list[tuple[Path, str]]:
    """(image path, LMDB key) pairs in key order."""
    if not root.is_dir():
        raise FileNotFoundError(f"Input folder not found: {root}")
    if dataset == "Vimeo90K":
        items = vimeo_items(root, list_file, center_only)
    else:
        extensions = (".png",) if dataset == "REDS" else IMAGE_EXTENSIONS
        items = [(p, _key(root, p)) for p in _images_below(root, extensions)]
    if not items:
        raise ValueError(f"No images found for --dataset {dataset} in {root}")
    keys = [key for _, key in items]
    if len(set(keys)) != len(keys):
        duplicate = next(k for k in keys if keys.count(k) > 1)
        raise ValueError(f"Two images map to the key '{duplicate}' (same name, different extensions?)")
    for key in keys:
        if not key.isascii():
            raise ValueError(f"LMDB keys must be ASCII; rename '{key}'")
    return items


def encode_image(path: Path, compress_level: int) -> tuple[bytes, tuple[int, int, int]]:
    """PNG bytes and (h, w, c) of the image at ``path`` read unchanged (bit depth and alpha kept)."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError(f"Cannot read image {path}")
    ok, buffer = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, compress_level])
    if not ok:
        raise ValueError(f"Cannot encode {path} as PNG")
    h, w = img.shape[:2]
    return buffer.tobytes(), (h, w, 1 if img.ndim == 2 else img.shape[2])


def _encoded(paths: Sequence[Path], compress_level: int, n_thread: int) -> Iterator[tuple[bytes, tuple]]:
    encode = partial(encode_image, compress_level=compress_level)
    if n_thread <= 1:
        yield from map(encode, paths)
        return
    with Pool(n_thread) as pool:  # imap keeps the input order while images are read in parallel
        yield from pool.imap(encode, paths, chunksize=8)


def _put_all(env, records: list[tuple[bytes, bytes]]) -> None:
    """Write one batch in one transaction, doubling the map size while it does not fit."""
    import lmdb

    while True:
        try:
            with env.begin(write=True) as txn:
                for key, value in records:
                    txn.put(key, value)
            return
        except lmdb.MapFullError:
            env.set_mapsize(env.info()["map_size"] * 2)


def write_lmdb(items: Iterable[tuple[Path, str]], output: Path, compress_level: int = 1, n_thread: int = 1,
               force: bool = False, map_size: int | None = None) -> int:
    """Write ``items`` to ``output`` (must end in ``.lmdb``) through a temporary folder; returns the count.

    ``map_size`` is the initial map size (default: 10x the PNG size of the
    first image times the image count, at least 16 MiB); it doubles when full.
    """
    import lmdb

    items = list(items)
    if output.suffix != ".lmdb":
        raise ValueError(f"The output folder must end with '.lmdb': {output}")
    if output.exists() and not force:
        raise FileExistsError(f"{output} already exists; pass --force to replace it")
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.parent / f".{output.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    if map_size is None:
        map_size = max(10 * len(encode_image(items[0][0], compress_level)[0]) * len(items), 1 << 24)
    env = lmdb.open(str(tmp), map_size=map_size)
    try:
        with open(tmp / "meta_info.txt", "w") as meta:
            batch: list[tuple[bytes, bytes]] = []
            encoded = _encoded([p for p, _ in items], compress_level, n_thread)
            for (_, key), (value, (h, w, c)) in tqdm(zip(items, encoded), total=len(items), unit="img"):
                batch.append((key.encode("ascii"), value))
                meta.write(f"{key}.png ({h},{w},{c}) {compress_level}\n")
                if len(batch) == COMMIT_EVERY:
                    _put_all(env, batch)
                    batch = []
            _put_all(env, batch)
        env.close()
        if output.exists():
            shutil.rmtree(output)
        os.replace(tmp, output)
    except BaseException:
        env.close()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return len(items)
