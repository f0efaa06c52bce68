"""Publishing a finished temporary file or folder under its final name (light: no torch, no numpy).

Writers (checkpoints, upscaled videos, frame folders) build their output under a temporary name in the
destination folder and call :func:`publish` once it is complete, so a reader never sees a torn result.
"""

from __future__ import annotations

import os
from pathlib import Path


def current_umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def publish(tmp: str | Path, path: str | Path) -> None:
    """Rename ``tmp`` to ``path`` (atomic on one file system) with the permissions a plain new file or
    folder would get (``mkstemp`` / ``mkdtemp`` create them 0600 / 0700)."""
    tmp = Path(tmp)
    tmp.chmod((0o777 if tmp.is_dir() else 0o666) & ~current_umask())
    os.replace(tmp, path)
