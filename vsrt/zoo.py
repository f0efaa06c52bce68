"""Model zoo: named presets for the official checkpoints, as data.

A preset binds an architecture configuration (``network_g``), the official checkpoint (file
name, download URL when a direct one exists, checksum), the key of the weights inside the file
(``param_key``), the benchmark scores the authors published and the protocol behind them, and the
tiling the official test script uses per dataset.

Checkpoints live in torch hub's cache (``torch.hub.get_dir()/checkpoints``; ``$TORCH_HOME``
moves it). A file given with ``--weights`` or found in the cache is used offline. Downloads use
``torch.hub.download_url_to_file`` (what ``torch.hub.load_state_dict_from_url`` uses) and only
happen for presets with a direct URL; Google-Drive-only releases must be downloaded by hand.

Checksums: ``sha256`` is the full SHA-256 hex digest or a prefix of it (BasicSR names its files
``<name>-<first 8 hex digits of the SHA-256>.pth``). ``None`` means that no checksum is known to
vsrt: such files are loaded **without** verification (a warning says so). No hash here was guessed.

``python -m vsrt zoo list`` prints the table; ``python -m vsrt zoo show NAME`` one preset.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger("vsrt")

VRT_RELEASE = "https://github.com/JingyunLiang/VRT/releases/download/v0.0/"
MIA_DRIVE = "https://drive.google.com/drive/folders/1DvsUP-FVwENIpLyeQPQMHc7QnxX1F5Pd"
PSRT_DRIVE = "https://drive.google.com/drive/folders/1SyCIPlCZp4SkORMaUVKzT0M07nDAhdrl"
BASICSR_DRIVE = "https://drive.google.com/drive/folders/15DgDtfaLASQ3iAPJEVHQF49g9msexECG"


@dataclass(frozen=True)
class Score:
    """A published benchmark number and how it was measured (see docs/metrics.md)."""

    dataset: str  # reds4 | vimeo90k | vid4 | udm10 | gopro | davis | ...
    psnr: float
    ssim: float | None
    channel: str  # 'RGB' or 'Y'
    frames: str = "all"  # 'all' or 'centre' (Vimeo-90K-T: only im4 is scored)
    scale: float | tuple[float, float] | None = None  # arbitrary-scale models
    setting: str = ""  # e.g. 'sigma=10' for denoising
    source: str = ""


@dataclass(frozen=True)
class Preset:
    """One released model."""

    name: str
    network_g: dict[str, Any]
    file_name: str
    url: str | None  # a direct download URL, or None (manual download from ``download_page``)
    sha256: str | None  # full digest or prefix; None = not verified
    param_key: str | None = "params"
    task: str = "video SR x4"
    degradation: str = "BI"  # of the LQ frames it was trained on: BI (bicubic) or BD (blur + subsampling)
    download_page: str | None = None
    scores: tuple[Score, ...] = ()
    tiling: dict[str, dict[str, Any]] = field(default_factory=dict)  # dataset -> TileConfig kwargs
    notes: str = ""


def _mia(use_mask: bool = True) -> dict[str, Any]:
    return {"type": "MIAVSR", "mid_channels": 64, "embed_dim": 120, "depths": [6, 6, 6, 6],
            "num_heads": [6, 6, 6, 6], "window_size": [3, 8, 8], "num_frames": 3, "img_size": 64,
            "patch_size": 1, "cpu_cache_length": 100, "is_low_res_input": True, "use_mask": use_mask}


def _psrt() -> dict[str, Any]:
    return {"type": "BasicRecurrentSwin", "mid_channels": 64, "embed_dim": 120, "depths": [6, 6, 6],
            "num_heads": [6, 6, 6], "window_size": [3, 8, 8], "num_frames": 3, "img_size": 64,
            "patch_size": 1, "cpu_cache_length": 100, "is_low_res_input": True}


def _vrt(task: str) -> dict[str, Any]:
    """The released configuration of a VRT task (``main_test_vrt.py``), e.g. ``001_VRT_videosr_bi_REDS_6frames``."""
    from vsrt.archs.vrt.vrt_arch import OFFICIAL_CONFIGS

    return {"type": "VRT", **copy.deepcopy(OFFICIAL_CONFIGS[task])}


def _tiles(chunk: int, size: int, chunk_overlap: int = 2, size_overlap: int = 20) -> dict[str, Any]:
    """``--tile chunk size size --tile_overlap chunk_overlap size_overlap size_overlap`` of the VRT README."""
    return {"temporal_chunk": chunk, "temporal_overlap": chunk_overlap if chunk else 0,
            "tile": size, "tile_overlap": size_overlap if size else 0}


_VIMEO_Y = {"channel": "Y", "frames": "centre"}
_VRT_SR_TILES = {"vid4": _tiles(32, 128), "udm10": _tiles(32, 128), "vimeo90k": _tiles(8, 0, 0)}  # VRT README
_MIA_SRC = "MIA-VSR README (assets/Results.png)"
_PSRT_SRC = "RethinkVSRAlignment README (assets/Results.png)"
_VRT_SRC = "VRT README result tables"
_SAVSR_SRC = "SAVSR README tables (torch-bicubic LR from GT, 7-frame windows)"
_SAVSR = {"type": "SAVSR", "num_in_ch": 3, "num_feat": 64, "num_frame": 7, "slid_win": 3, "fusion_win": 5,
          "interval": 0, "w1_num_block": 4, "w2_num_block": 2, "n_resgroups": 4, "n_resblocks": 8,
          "center_frame_idx": None}

# The preset names, known without building the presets: building them imports the architectures
# (VRT's released configurations), and a misspelt name must be reported before torch is imported.
PRESET_NAMES = ("basicvsr_reds", "mia_vsr_reds", "mia_vsr_vimeo", "psrt_recurrent_reds", "psrt_recurrent_vimeo",
                "vrt_x4_reds_6f", "vrt_x4_reds_16f", "vrt_x4_vimeo_bi", "vrt_x4_vimeo_bd", "vrt_deblur_gopro",
                "vrt_denoise_davis", "vrt_vfi_vimeo", "savsr_vimeo")


def _build_presets() -> list[Preset]:
    return [
        Preset("basicvsr_reds", {"type": "BasicVSR", "num_feat": 64, "num_block": 30},
               "BasicVSR_REDS4-543c8261.pth", None, "543c8261", download_page=BASICSR_DRIVE,
               scores=(Score("reds4", 31.42, 0.8909, "RGB", source="BasicVSR paper (CVPR 2021), Table 2"),),
               notes="BasicSR release (Google Drive only). The checksum is the SHA-256 prefix in BasicSR's "
                     "file name (scripts/publish_models.py convention)."),
        Preset("mia_vsr_reds", _mia(), "MIAVSR_REDS_x4.pth", None, None, download_page=MIA_DRIVE,
               scores=(Score("reds4", 32.78, 0.9220, "RGB", source=_MIA_SRC),),
               notes="Trained on REDS with 16-frame clips. Official test: each REDS4 clip (100 frames) fed whole."),
        Preset("mia_vsr_vimeo", _mia(), "MIAVSR_Vid4_x4.pth", None, None, download_page=MIA_DRIVE,
               scores=(Score("vimeo90k", 38.22, 0.9532, source=_MIA_SRC, **_VIMEO_Y),
                       Score("vid4", 28.20, 0.8507, "Y", source=_MIA_SRC)),
               notes="Trained on Vimeo-90K (BI). The official file is named MIAVSR_Vid4_x4.pth."),
        Preset("psrt_recurrent_reds", _psrt(), "PSRT_REDS.pth", None, None, download_page=PSRT_DRIVE,
               scores=(Score("reds4", 32.72, 0.9106, "RGB", source=_PSRT_SRC),),
               notes="Trained on REDS with 16-frame clips; REDS4 clips fed whole."),
        Preset("psrt_recurrent_vimeo", _psrt(), "PSRT_Vimeo.pth", None, None, download_page=PSRT_DRIVE,
               scores=(Score("vimeo90k", 38.27, 0.9536, source=_PSRT_SRC, **_VIMEO_Y),
                       Score("vid4", 28.07, 0.8485, "Y", source=_PSRT_SRC)),
               notes="Trained on Vimeo-90K (BI). 'PSRT_Vimeo.pth' is vsrt's local name: the official "
                     "script loads a training snapshot; save the released file under this name."),
        Preset("vrt_x4_reds_6f", _vrt("001_VRT_videosr_bi_REDS_6frames"), "001_VRT_videosr_bi_REDS_6frames.pth",
               VRT_RELEASE + "001_VRT_videosr_bi_REDS_6frames.pth", None,
               scores=(Score("reds4", 31.60, 0.8888, "RGB", source=_VRT_SRC),),
               tiling={"reds4": _tiles(40, 128)}),
        Preset("vrt_x4_reds_16f", _vrt("002_VRT_videosr_bi_REDS_16frames"), "002_VRT_videosr_bi_REDS_16frames.pth",
               VRT_RELEASE + "002_VRT_videosr_bi_REDS_16frames.pth", None,
               scores=(Score("reds4", 32.19, 0.9006, "RGB", source=_VRT_SRC),),
               tiling={"reds4": _tiles(40, 128)},
               notes="pa_frames=6, deformable_groups=24 as main_test_vrt.py (KAIR's json differs)."),
        Preset("vrt_x4_vimeo_bi", _vrt("003_VRT_videosr_bi_Vimeo_7frames"), "003_VRT_videosr_bi_Vimeo_7frames.pth",
               VRT_RELEASE + "003_VRT_videosr_bi_Vimeo_7frames.pth", None,
               scores=(Score("vimeo90k", 38.20, 0.9530, source=_VRT_SRC, **_VIMEO_Y),
                       Score("vid4", 27.93, 0.8425, "Y", source=_VRT_SRC)),
               tiling=dict(_VRT_SR_TILES)),
        Preset("vrt_x4_vimeo_bd", _vrt("004_VRT_videosr_bd_Vimeo_7frames"), "004_VRT_videosr_bd_Vimeo_7frames.pth",
               VRT_RELEASE + "004_VRT_videosr_bd_Vimeo_7frames.pth", None,
               task="video SR x4 (BD)", degradation="BD",
               scores=(Score("udm10", 41.05, 0.9737, "Y", source=_VRT_SRC),
                       Score("vimeo90k", 38.72, 0.9584, source=_VRT_SRC, **_VIMEO_Y),
                       Score("vid4", 29.42, 0.8795, "Y", source=_VRT_SRC)),
               tiling=dict(_VRT_SR_TILES)),
        Preset("vrt_deblur_gopro", _vrt("006_VRT_videodeblurring_GoPro"), "006_VRT_videodeblurring_GoPro.pth",
               VRT_RELEASE + "006_VRT_videodeblurring_GoPro.pth", None, task="video deblurring",
               scores=(Score("gopro", 34.81, 0.9724, "RGB", source=_VRT_SRC),),
               tiling={"gopro": _tiles(18, 192), "folder": _tiles(18, 192)}),
        Preset("vrt_denoise_davis", _vrt("008_VRT_videodenoising_DAVIS"), "008_VRT_videodenoising_DAVIS.pth",
               VRT_RELEASE + "008_VRT_videodenoising_DAVIS.pth", None, task="non-blind video denoising",
               scores=tuple(Score("davis", psnr, None, "RGB", setting=f"sigma={sigma}", source=_VRT_SRC)
                            for sigma, psnr in ((10, 40.82), (20, 38.15), (30, 36.52), (40, 35.32), (50, 34.36))),
               tiling={"davis": _tiles(12, 256), "folder": _tiles(12, 256)},
               notes="Input: RGB + a constant noise-level channel sigma/255 (give --noise-sigma)."),
        Preset("vrt_vfi_vimeo", _vrt("009_VRT_videofi_Vimeo_4frames"),
               "009_VRT_videofi_Vimeo_4frames.pth", VRT_RELEASE + "009_VRT_videofi_Vimeo_4frames.pth", None,
               task="video frame interpolation",
               scores=(Score("vimeo90k", 36.53, 0.977, "RGB", frames="interpolated im4", source=_VRT_SRC),),
               notes="4 frames in, the frame between the middle two out (no SpyNet); benchmarked by "
                     "inference_vimeo90k.py on Vimeo-90K-T."),
        Preset("savsr_vimeo", dict(_SAVSR), "savsr_best.pth",
               "https://github.com/Weepingchestnut/SAVSR/releases/download/v0.1.1/savsr_best.pth", None,
               task="arbitrary-scale video SR",
               scores=tuple(Score(ds, p, s, "Y", scale=sc, source=_SAVSR_SRC) for ds, sc, p, s in (
                   ("vid4", 2.0, 34.67, 0.9599), ("vid4", 3.0, 30.33, 0.9035), ("vid4", 4.0, 27.17, 0.8184),
                   ("vid4", (2.0, 4.0), 29.99, 0.8901), ("udm10", 2.0, 46.23, 0.9927),
                   ("udm10", 3.0, 42.15, 0.9801), ("udm10", 4.0, 38.88, 0.9619))),
               notes="Keys of the released file were not verified by vsrt (not downloadable when the spec "
                     "was written)."),
    ]


def presets() -> dict[str, Preset]:
    """Every preset by name, built on first use (``zoo.PRESETS`` is the same table)."""
    table = globals().get("PRESETS")
    if table is None:
        table = globals()["PRESETS"] = {p.name: p for p in _build_presets()}
    return table


def __getattr__(name: str) -> Any:
    if name == "PRESETS":
        return presets()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class ChecksumError(RuntimeError):
    """A checkpoint's SHA-256 does not match its preset."""


def check_preset_name(name: str | None) -> None:
    """KeyError (with close-match hints) for a name that is not a preset; light, no torch import."""
    if name is not None and name not in PRESET_NAMES and name not in globals().get("PRESETS", {}):
        get_preset(name)


def get_preset(name: str) -> Preset:
    """The preset called ``name`` (with close-match hints when unknown)."""
    # an unknown name is reported from PRESET_NAMES alone (no torch import) unless the table exists
    known = list(presets() if name in PRESET_NAMES or "PRESETS" in globals() else PRESET_NAMES)
    if name in known:
        return presets()[name]
    import difflib

    close = difflib.get_close_matches(name, known, n=3, cutoff=0.4)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise KeyError(f"Unknown model '{name}'.{hint} Known: {', '.join(known)} (python -m vsrt zoo list).")


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_checksum(path: str | os.PathLike, expected: str | None) -> bool:
    """Check ``path`` against ``expected`` (full digest or prefix). Returns False when not verified."""
    if not expected:
        logger.warning("No checksum is known for %s: it is loaded without verification.", path)
        return False
    actual = sha256_of(path)
    if not actual.startswith(expected.lower()):
        raise ChecksumError(f"Checksum mismatch for {path}: expected SHA-256 {expected.lower()}"
                            f"{'...' if len(expected) < 64 else ''}, got {actual}. The file is corrupt, "
                            "incomplete or not this preset's checkpoint.")
    return True


def cache_dir() -> Path:
    """Where preset checkpoints are looked for and downloaded (torch hub's checkpoint folder)."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


def resolve_checkpoint(preset: Preset, weights: str | os.PathLike | None = None,
                       allow_download: bool = True, progress: bool = True) -> Path:
    """The verified local checkpoint file of ``preset``.

    ``weights`` (a local file) wins; otherwise the torch hub cache is searched and, if the file
    is missing there and the preset has a direct URL, it is downloaded (``allow_download``).
    """
    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(f"Checkpoint not found: {path}")
    else:
        path = cache_dir() / preset.file_name
        if not path.is_file():
            if preset.url is None or not allow_download:
                where = preset.url or preset.download_page or "the authors' release page"
                raise FileNotFoundError(
                    f"{preset.name}: checkpoint {preset.file_name} is not in {path.parent}. Download it from "
                    f"{where} and pass --weights PATH, or save it as {path}.")
            path.parent.mkdir(parents=True, exist_ok=True)
            prefix = preset.sha256.lower() if preset.sha256 else None
            import torch

            torch.hub.download_url_to_file(preset.url, str(path), hash_prefix=prefix, progress=progress)
    verify_checksum(path, preset.sha256)
    return path


# --------------------------------------------------------------------------- CLI


def _format_scores(preset: Preset) -> str:
    parts = []
    for s in preset.scores:
        scale = "" if s.scale is None else " x" + "/".join(f"{v:g}" for v in (
            s.scale if isinstance(s.scale, tuple) else (s.scale,)))
        ssim = f"/{s.ssim:.4f}" if s.ssim is not None else ""
        setting = f" {s.setting}" if s.setting else ""
        parts.append(f"{s.dataset}{scale}{setting} {s.psnr:.2f}{ssim} ({s.channel})")
    return "; ".join(parts)


def format_table(presets: Sequence[Preset]) -> str:
    rows = [("name", "arch", "task", "checksum", "download", "published (PSNR/SSIM)")]
    for p in presets:
        checksum = "none" if not p.sha256 else ("sha256" if len(p.sha256) == 64 else f"prefix {p.sha256}")
        rows.append((p.name, p.network_g["type"], p.task, checksum, "url" if p.url else "manual",
                     _format_scores(p)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = []
    for i, row in enumerate(rows):
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[-1])
        if i == 0:
            lines.append("  ".join("-" * w for w in widths) + "  " + "-" * len(row[-1]))
    return "\n".join(lines)


def format_preset(preset: Preset) -> str:
    import yaml

    cached = cache_dir() / preset.file_name
    lines = [f"name:        {preset.name}", f"task:        {preset.task}",
             f"file:        {preset.file_name} ({'cached at ' + str(cached) if cached.is_file() else 'not cached'})",
             f"url:         {preset.url or '(none: manual download from ' + str(preset.download_page) + ')'}",
             f"sha256:      {preset.sha256 or '(unknown: not verified)'}",
             f"param_key:   {preset.param_key}", "network_g:"]
    network_yaml = yaml.safe_dump(preset.network_g, sort_keys=False, default_flow_style=None, width=100)
    lines += ["  " + line for line in network_yaml.splitlines()]
    lines.append("published scores:")
    lines += [f"  {_format_scores(Preset(preset.name, {}, '', None, None, scores=(s,)))} "
              f"[{s.frames} frames; {s.source}]" for s in preset.scores]
    if preset.tiling:
        lines.append("official tiling: " + "; ".join(f"{k}: {v}" for k, v in preset.tiling.items()))
    if preset.notes:
        lines.append(f"notes:       {preset.notes}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    from vsrt import program_name

    parser = argparse.ArgumentParser(prog=program_name("zoo", "python -m vsrt.zoo"), description="Named model presets.")
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("list", help="print every preset")
    show = sub.add_parser("show", help="print one preset")
    show.add_argument("name")
    fetch = sub.add_parser("download", help="download a preset's checkpoint into the torch hub cache")
    fetch.add_argument("name")
    args = parser.parse_args(argv)
    try:
        if args.action == "list":
            print(format_table(list(presets().values())))
        elif args.action == "show":
            print(format_preset(get_preset(args.name)))
        else:
            print(resolve_checkpoint(get_preset(args.name)))
    except (KeyError, FileNotFoundError, ChecksumError) as err:
        parser.exit(2, f"error: {err.args[0] if isinstance(err, KeyError) else err}\n")


if __name__ == "__main__":
    main()
