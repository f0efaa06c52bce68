"""Read checkpoint files without running code from them, with errors that name the file.

Checkpoints are pickles; a pickle can name any Python callable, which runs when it is loaded.
vsrt therefore reads every checkpoint through torch's restricted unpickler (tensors, numbers,
strings and plain containers only) and never offers to lift that restriction: torch's own error
suggests doing so, which is exactly wrong for a file of unknown origin, so it is replaced here.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path
from typing import Any


class CheckpointError(RuntimeError):
    """A checkpoint file was refused (it holds code) or cannot be read (damaged, not a checkpoint)."""


_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def read_checkpoint(path: str | Path, what: str = "Checkpoint") -> Any:
    """``torch.load`` of ``path`` on the CPU, restricted to data; a refused or unreadable file is a
    :class:`CheckpointError` naming it (``what``: how the error names the file's role)."""
    import torch  # here: importing this module (for CheckpointError) stays light

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = _GLOBAL.search(str(err))
        if found:
            raise CheckpointError(
                f"{what} {path} was refused: it names the Python object {found.group(1)}, which would run "
                "when loaded; vsrt reads only tensors, numbers, strings and containers from checkpoints. "
                "Use a checkpoint from a source you trust that holds only a state dict "
                "({'params': {name: tensor}})") from None
        raise CheckpointError(f"{what} {path} is not a PyTorch checkpoint vsrt can read "
                              f"({_first_line(err)})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as err:
        reason = "the file is empty" if isinstance(err, EOFError) else _first_line(err)
        raise CheckpointError(f"{what} {path} is damaged or incomplete ({reason}); was it fully downloaded "
                              "or written?") from None


def _first_line(err: BaseException) -> str:
    """The informative part of torch's message, without its advice."""
    text = str(err)
    for marker in ("Unsupported operand", "failed finding central directory", "invalid load key"):
        if marker in text:
            return text[text.index(marker):].split("\n")[0].split(". ")[0].strip()
    return text.split("\n")[0].split(". ")[0].strip()[:200] or type(err).__name__
