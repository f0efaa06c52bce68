"""The experiment folder of a training run: where to resume from, temporary files, archiving.

``experiments/<name>/{models,training_states,visualization,tb_logger}`` (BasicSR's layout). A
training state ``training_states/<iter>.state`` goes with ``models/net_g_<iter>.pth`` of the same
experiment, which is written first (:meth:`vsrt.models.base_model.BaseModel.save`).

* ``--auto_resume`` takes the newest state whose two files load; an unreadable one (empty, torn by a
  full disk, corrupt) is skipped with a warning that names it.
* ``path.resume_state`` may point into another experiment: the weights come from the ``models``
  folder beside that state's ``training_states`` folder.
* ``path.ignore_resume_networks: [network_g]`` resumes the optimiser, schedule and data position but
  keeps the weights the options give (``path.pretrain_network_g``, or a fresh initialisation).
* Temporary checkpoint files that a killed run left behind are removed at start (only names that
  :func:`vsrt.utils.checkpoint.atomic_save` makes).
* A fresh start renames an existing experiment folder to ``<name>_archived_<time>`` only when it
  holds results; what a start that failed early leaves (folders, the option copy, its log) is reused.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from pathlib import Path
from typing import Any

from vsrt.utils.dist import get_dist_info
from vsrt.utils.safe_load import read_checkpoint

# ``atomic_save`` writes ``.<final name>.<random>.tmp`` beside the final file
TEMP_CHECKPOINT = re.compile(r"^\.(?:net_g_\w+\.pth|\d+\.state)\.\w+\.tmp$")


def _load(path: Path) -> Any:
    return read_checkpoint(path, "Training file")  # data only; errors name the file


def weights_for_state(state_path: str | Path, iteration: int) -> Path:
    """``<experiment>/models/net_g_<iter>.pth`` for ``<experiment>/training_states/<iter>.state``."""
    return Path(state_path).resolve().parent.parent / "models" / f"net_g_{iteration}.pth"


def _readable_state(state_path: Path, logger: logging.Logger) -> dict[str, Any] | None:
    """The state at ``state_path`` if it and its weights load, else None (with a warning naming the file)."""
    loaded = []
    for path in (state_path, weights_for_state(state_path, int(state_path.stem))):
        try:
            loaded.append(_load(path))
        except Exception as err:  # empty, truncated, corrupt: any of torch's loader errors
            logger.warning("Cannot read %s (%s: %s); resuming from an older training state",
                           path, type(err).__name__, err)
            return None
    state = loaded[0]
    if not isinstance(state, dict) or "iter" not in state:
        logger.warning("%s is not a vsrt training state; resuming from an older one", state_path)
        return None
    return state


def find_resume_state(opt: dict[str, Any], auto_resume: bool,
                      logger: logging.Logger) -> tuple[str | None, dict[str, Any] | None]:
    """``(path, state)`` to resume from, or ``(None, None)`` for a fresh start.

    ``--auto_resume``: the newest readable state of this experiment (the weights file must exist and
    load too); falls back to ``path.resume_state`` when there is none. Raises when every state of the
    experiment is unreadable, rather than silently starting again from scratch.
    """
    if auto_resume:
        states_dir = Path(opt["path"]["training_states"])
        candidates = sorted((p for p in states_dir.glob("*.state") if p.stem.isdigit()),
                            key=lambda p: int(p.stem), reverse=True)
        for state_path in candidates:
            if not weights_for_state(state_path, int(state_path.stem)).is_file():
                continue  # killed between the two writes: the weights come first, so the state is newer
            state = _readable_state(state_path, logger)
            if state is not None:
                return str(state_path), state
        if candidates:
            raise RuntimeError(f"--auto_resume: no readable training state in {states_dir} "
                               f"({', '.join(p.name for p in candidates)}); see the warnings above")
    explicit = opt["path"].get("resume_state")
    if not explicit:
        return None, None
    path = Path(explicit)
    if not path.is_file():
        raise FileNotFoundError(f"path.resume_state: {path} not found")
    try:
        state = _load(path)
    except Exception as err:
        raise RuntimeError(f"path.resume_state: cannot read {path} ({type(err).__name__}: {err})") from err
    if not isinstance(state, dict) or "iter" not in state:
        raise ValueError(f"path.resume_state: {path} is not a vsrt training state")
    return str(path), state


def use_resumed_weights(opt: dict[str, Any], state_path: str, state: dict[str, Any],
                        logger: logging.Logger) -> None:
    """Point ``path.pretrain_network_g`` at the state's weights unless ``ignore_resume_networks`` says not to."""
    if "network_g" in (opt["path"].get("ignore_resume_networks") or ()):
        logger.info("path.ignore_resume_networks: network_g keeps %s instead of the resumed weights",
                    opt["path"].get("pretrain_network_g") or "a fresh initialisation")
        return
    weights = weights_for_state(state_path, state["iter"])
    if not weights.is_file():
        raise FileNotFoundError(f"Training state {state_path} (iteration {state['iter']}) has no weights "
                                f"at {weights}")
    opt["path"].update(pretrain_network_g=str(weights), param_key_g="params", strict_load_g=True)


def clean_temporary_checkpoints(opt: dict[str, Any], logger: logging.Logger) -> list[Path]:
    """Remove temporary checkpoint files a killed run left in ``models`` and ``training_states`` (rank 0)."""
    removed: list[Path] = []
    if get_dist_info()[0] != 0:
        return removed
    for key in ("models", "training_states"):
        folder = Path(opt["path"][key])
        for path in sorted(folder.glob(".*.tmp")) if folder.is_dir() else ():
            if TEMP_CHECKPOINT.match(path.name) and path.is_file():
                path.unlink()
                removed.append(path)
    if removed:
        logger.warning("Removed %d temporary checkpoint file(s) of an interrupted run: %s", len(removed),
                       ", ".join(str(p) for p in removed))
    return removed


def holds_results(folder: Path) -> bool:
    """Whether ``folder`` holds anything a run produced (checkpoints, states, tensorboard or wandb logs,
    images, other files): everything but the option copies and logs that any start writes at its top."""
    if not folder.is_dir():
        return False
    start_files = {".yml", ".yaml", ".log"}
    return any(p.is_file() and not (p.parent == folder and p.suffix in start_files) for p in folder.rglob("*"))


def prepare_folders(opt: dict[str, Any], resuming: bool) -> Path | None:
    """Create the experiment folders (rank 0) and copy the option file into them.

    On a fresh start an existing experiment folder that holds results (:func:`holds_results`) is renamed
    ``<name>_archived_<time>`` (returned); one with only the option copy and logs of starts that failed
    before their first result is reused (its old logs stay).
    """
    if get_dist_info()[0] != 0:
        return None
    root = Path(opt["path"]["experiments_root"])
    archived = None
    if not resuming and holds_results(root):
        archived = root.with_name(f"{root.name}_archived_{time.strftime('%Y%m%d_%H%M%S')}")
        root.rename(archived)
    for key in ("experiments_root", "models", "training_states", "visualization"):
        Path(opt["path"][key]).mkdir(parents=True, exist_ok=True)
    copied = root / Path(opt["opt_path"]).name
    body = Path(opt["opt_path"]).read_text(encoding="utf-8")
    copied.write_text(f"# GENERATE TIME: {time.asctime()}\n# CMD:\n# {' '.join(sys.argv)}\n\n{body}")
    return archived
