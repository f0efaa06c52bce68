"""A folder of PNG frames as the upscaler's output, and the rules that keep the user's files safe.

vsrt records the frames it writes in a manifest (``.vsrt-frames.json``, hidden, so a later run
that reads the folder as input ignores it). ``--force`` replaces only what a manifest lists, never
the folder itself: unrelated files in it survive, a frame name vsrt did not write is never
overwritten, and an output folder that equals or contains the input is refused. An output folder
inside an input folder of frames is allowed: input frames are listed non-recursively, so its PNGs
are never read back as input.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from vsrt.publish import publish

MANIFEST = ".vsrt-frames.json"
FRAME_NAME = re.compile(r"^\d{8}\.png$")


class OutputError(ValueError):
    """The output path cannot be written without destroying something vsrt did not write."""


def frame_name(index: int) -> str:
    return f"{index:08d}.png"


def read_manifest(folder: Path) -> list[str]:
    """Frame names an earlier run recorded in ``folder`` (none when it has no manifest).

    Only plain frame names are taken from the file, so an edited manifest cannot name anything
    else (``../x``, a user's file) for removal.
    """
    path = folder / MANIFEST
    if not path.is_file():
        return []
    try:
        names = json.loads(path.read_text(encoding="utf-8"))["frames"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise OutputError(f"{path} is not a vsrt frame manifest ({err}); remove it or choose another "
                          "output folder") from None
    if not isinstance(names, list):
        raise OutputError(f"{path}: 'frames' must be a list of frame names")
    return [name for name in names if isinstance(name, str) and FRAME_NAME.match(name)]


def check_folder_output(output: Path, input_path: Path, force: bool) -> None:
    """Refuse, before any work, a PNG-folder ``output`` that would lose data.

    * it equals or contains the input (``--force`` could replace input frames);
    * it exists and is a file, or is a non-empty folder and ``--force`` is not given;
    * with ``--force``, it holds frame-named files (``00000000.png``) that no manifest lists.
    """
    resolved_out, resolved_in = output.resolve(), input_path.resolve()
    if resolved_out == resolved_in or resolved_out in resolved_in.parents:
        raise OutputError(f"The output folder {output} {'is' if resolved_out == resolved_in else 'contains'} "
                          f"the input {input_path}; choose an output folder outside it")
    if not output.exists():
        return
    if not output.is_dir():
        raise OutputError(f"{output} is a file; PNG frames are written to a folder (or give a video "
                          "suffix: .mp4 .m4v .mov .mkv .avi)")
    if not force and any(output.iterdir()):  # an empty folder holds nothing to lose
        raise FileExistsError(f"{output} exists; use --force to replace the frames vsrt wrote there "
                              "(other files are kept)")
    listed = set(read_manifest(output))
    foreign = sorted(p.name for p in output.iterdir() if FRAME_NAME.match(p.name) and p.name not in listed)
    if foreign:
        shown = ", ".join(foreign[:5]) + (f", ... ({len(foreign)} in all)" if len(foreign) > 5 else "")
        raise OutputError(f"{output} holds frames vsrt did not write ({shown}; no {MANIFEST} lists them); "
                          "--force replaces only vsrt's own output. Choose another output folder")


class FolderSink:
    """Write ``%08d.png`` frames into a temporary folder beside ``path``; publish them on close.

    A new folder is renamed into place; an existing one (``--force``, checked by
    :func:`check_folder_output`) loses only the frames its manifest lists, then receives the new
    frames and manifest. Frames of a rotated video (``source.rotation``) are turned upright first.
    """

    wants_audio = False

    def __init__(self, path: Path, source: Any = None) -> None:
        self.path, self.source = path, source
        self.tmp_path = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent))
        self.count = 0

    def write(self, frame: np.ndarray, timestamp: Any) -> None:
        import cv2

        rotation = getattr(self.source, "rotation", 0)
        if rotation % 360:  # PNGs carry no display matrix: store the frames the way players show them
            frame = np.ascontiguousarray(np.rot90(frame, k=rotation // 90))
        target = self.tmp_path / frame_name(self.count)
        if not cv2.imwrite(str(target), frame):
            raise OSError(f"Cannot write {target}")
        self.count += 1

    def mux_audio(self, packet: Any) -> None:
        pass

    def close(self) -> None:
        names = [frame_name(i) for i in range(self.count)]
        (self.tmp_path / MANIFEST).write_text(json.dumps({"written_by": "vsrt upscale", "frames": names}),
                                              encoding="utf-8")
        if not self.path.exists():
            publish(self.tmp_path, self.path)
            return
        listed = set(read_manifest(self.path))
        clash = [n for n in names if (self.path / n).exists() and n not in listed]
        if clash:  # appeared while we worked: never overwrite
            raise OutputError(f"{self.path / clash[0]} appeared during the run and vsrt did not write it; "
                              "nothing was replaced")
        for name in listed:
            (self.path / name).unlink(missing_ok=True)
        for name in [*names, MANIFEST]:
            os.replace(self.tmp_path / name, self.path / name)
        self.tmp_path.rmdir()

    def abort(self) -> None:
        shutil.rmtree(self.tmp_path, ignore_errors=True)
