"""``python -m vsrt <command>``: demo, train, test, upscale, zoo, export."""

from __future__ import annotations

import sys

COMMANDS = {
    "demo": ("vsrt.demo", "train a tiny BasicVSR on synthetic clips and compare with bicubic"),
    "train": ("vsrt.train", "train from an option file (same as python -m vsrt.train)"),
    "test": ("vsrt.test", "test from an option file (same as python -m vsrt.test)"),
    "upscale": ("vsrt.inference.upscale", "upscale a video file or a folder of frames (streaming)"),
    "zoo": ("vsrt.zoo", "list or show the named model presets"),
    "export": ("vsrt.export.cli", "export a network to ONNX or torch.export .pt2, checked against eager"),
}


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        lines = ["usage: python -m vsrt COMMAND [args]  (or: vsrt COMMAND [args])", "", "commands:"]
        lines += [f"  {name:<8} {help_text}" for name, (_, help_text) in COMMANDS.items()]
        if argv and argv[0] not in ("-h", "--help"):
            lines.insert(0, f"unknown command '{argv[0]}'")
        print("\n".join(lines), file=sys.stderr if argv and argv[0] not in ("-h", "--help") else sys.stdout)
        raise SystemExit(0 if argv and argv[0] in ("-h", "--help") else 2)
    import importlib
    import os

    # usage strings name the way this was started: `vsrt train ...` or `python -m vsrt train ...`
    entry = "vsrt" if os.path.basename(sys.argv[0]) == "vsrt" else "python -m vsrt"
    started_as, sys.argv[0] = sys.argv[0], f"{entry} {argv[0]}"
    try:
        if argv[0] in ("train", "test"):  # argument and option-file errors before torch is imported
            from vsrt.options import parse_args

            parse_args(is_train=argv[0] == "train", argv=argv[1:])
        importlib.import_module(COMMANDS[argv[0]][0]).main(argv[1:])
    finally:
        sys.argv[0] = started_as


if __name__ == "__main__":
    main()
