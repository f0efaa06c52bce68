"""One measurement of ``scripts/benchmark.py``, in its own process: ``python scripts/benchmark_run.py SPEC``.

SPEC is the JSON object the benchmark writes (row, implementation, network_g, precision, compile, device,
threads, passes, clip and weights files, official checkouts). Prints one JSON line: every pass's wall and
process CPU time, s/frame, peak memory and how it was measured, MIA-VSR's kept-token ratio and mask mode.

Peak memory: CUDA ``max_memory_allocated``; on a CPU the peak RSS growth sampled every millisecond, or with
``"live_tensors": true`` the peak bytes of live tensor storages (:class:`LiveTensorBytes`, deterministic,
the CPU counterpart of ``max_memory_allocated``; it slows every operation, so its times are not reported).
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import json
import os
import statistics
import sys
import time
import types
import weakref
from pathlib import Path
from typing import Any

SCRIPTS = Path(__file__).resolve().parent
VRT_TILES = {"tile": [40, 128, 128], "tile_overlap": [2, 20, 20]}  # official REDS test tiles

def _official_network(spec: dict[str, Any]) -> Any:
    """Build the official model through the official.py helper (BasicVSR: BasicSR directly)."""
    helper = load_official_helper(spec["official_ref"], spec["official_helper"])
    kwargs = {k: v for k, v in spec["network_g"].items() if k != "type"}
    if spec["official"] in ("basicvsr", "psrt_recurrent", "mia_vsr", "iia_vsr"):
        kwargs["spynet_path"] = None
    if spec["official"] == "basicvsr" and not hasattr(helper, "basicvsr"):
        basicsr_root = os.path.join(spec["official_ref"], "BasicSR")
        if not os.path.isdir(os.path.join(basicsr_root, "basicsr")):
            raise SystemExit(f"--official-ref: no BasicSR checkout at {basicsr_root}")
        if hasattr(helper, "_stub_modules"):
            helper._stub_modules()  # torch._six / distutils stand-ins, as for the other official repos
        sys.path.insert(0, basicsr_root)
        from basicsr.archs.basicvsr_arch import BasicVSR
        return BasicVSR(**kwargs)
    return getattr(helper, spec["official"])(**kwargs)


def _vsrt_network(spec: dict[str, Any]) -> Any:
    from vsrt.archs import build_network
    from vsrt.registry import ARCH_REGISTRY

    network_g = dict(spec["network_g"])
    mode = spec["mask_execution"]
    if mode and "mask_execution" in inspect.signature(ARCH_REGISTRY.get(network_g["type"])).parameters:
        network_g["mask_execution"] = mode
    net = build_network(network_g)
    if mode and "mask_execution" not in network_g:  # before the mask_execution option existed
        net.skip_masked_tokens = mode == "gather"
    return net


def _compile(net: Any) -> Any:
    """``vsrt.utils.compile`` (the architecture's blocks, in place; it selects MIA-VSR's sync-free mask
    mode) where it exists, else ``torch.compile`` of the whole network."""
    import torch

    try:
        from vsrt.utils.compile import CompileSettings, compile_network
    except ImportError:
        return torch.compile(net)
    compile_network(net, CompileSettings())
    return net


def _forward_fn(spec: dict[str, Any], net: Any, runner: Any, clip: Any) -> Any:
    """A zero-argument pass: the output video and, for MIA-VSR in vsrt, the kept-token ratio."""
    official = spec["impl"] == "official"
    if spec["protocol"] == "vrt":
        window = spec["network_g"].get("window_size", [6, 8, 8])
        args = types.SimpleNamespace(**VRT_TILES, scale=spec["network_g"].get("upscale", 4),
                                     window_size=window, nonblind_denoising=False)
        if official:
            test_video = load_official_helper(spec["official_ref"], spec["official_helper"]).vrt_test_video()
        else:
            from vsrt.archs.vrt.inference import test_video
        return lambda: (test_video(clip, runner, args), None)
    if spec["protocol"] == "savsr":
        if official:
            net.set_scale((4, 4))
            return lambda: (runner(clip), None)
        return lambda: (runner(clip, scale=(4, 4)), None)
    if not official and getattr(net, "use_mask", False):
        def with_masks() -> tuple[Any, float | None]:
            out, masks = runner(clip, return_masks=True)
            kept = [float(m) for branch in masks for step in branch if step for m in step if m is not None]
            return out, (sum(kept) / len(kept) if kept else None)
        return with_masks

    def video_only() -> tuple[Any, None]:
        out = runner(clip)  # the official MIA-VSR / IIA-VSR return (output, masks)
        return (out[0] if isinstance(out, (tuple, list)) else out), None
    return video_only


def _live_tensor_bytes_class() -> type:
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves

    class Recorder(TorchDispatchMode):
        """Peak bytes of the CPU tensor storages alive at once, over the operations run inside it.

        A storage counts from the first operation that returns a tensor on it until the last such tensor
        is garbage; storages made before the mode (weights, input) are not counted.
        """

        def __init__(self) -> None:
            super().__init__()
            self.live = self.peak = 0
            self._tensors: dict[int, dict[int, weakref.ref]] = {}  # storage pointer -> its tensors
            self._sizes: dict[int, int] = {}

        def _forget(self, pointer: int, ref: weakref.ref) -> None:
            tensors = self._tensors.get(pointer)
            if tensors is not None:
                tensors.pop(id(ref), None)
                if not tensors:
                    del self._tensors[pointer]
                    self.live -= self._sizes.pop(pointer)

        def __torch_dispatch__(self, func, types_, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for tensor in tree_leaves(out):
                if not isinstance(tensor, torch.Tensor) or tensor.device.type != "cpu":
                    continue
                storage = tensor.untyped_storage()
                pointer = storage.data_ptr()
                if not pointer:
                    continue
                if pointer not in self._tensors:
                    self._tensors[pointer], self._sizes[pointer] = {}, storage.nbytes()
                    self.live += storage.nbytes()
                ref = weakref.ref(tensor, lambda r, p=pointer: self._forget(p, r))
                self._tensors[pointer][id(ref)] = ref
            self.peak = max(self.peak, self.live)
            return out

    return Recorder


def LiveTensorBytes() -> Any:  # noqa: N802 - a class made on first use (torch is imported lazily here)
    """A ``TorchDispatchMode`` whose ``peak`` is the most bytes of live CPU tensor storages."""
    return _live_tensor_bytes_class()()


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    """One process's measurement of one row, implementation, precision and compile setting."""
    import torch

    if str(SCRIPTS) not in sys.path:
        sys.path.insert(0, str(SCRIPTS))
    from profile_model import cpu_peak_memory

    if spec["threads"]:
        torch.set_num_threads(spec["threads"])
    device = torch.device(spec["device"])
    cuda = device.type == "cuda"
    torch.manual_seed(0)
    start = time.perf_counter()
    net = _official_network(spec) if spec["impl"] == "official" else _vsrt_network(spec)
    if os.path.exists(spec["weights"]):
        net.load_state_dict(torch.load(spec["weights"], map_location="cpu", weights_only=True), strict=True)
    else:
        torch.save(net.state_dict(), spec["weights"])
    net = net.eval().to(device)
    runner = _compile(net) if spec["compile"] else net
    build_s = time.perf_counter() - start
    clip = torch.load(spec["clip"], weights_only=True)[:, :spec["frames"], :, :spec["size"][0], :spec["size"][1]]
    clip = clip.to(device).float().div(255)
    forward = _forward_fn(spec, net, runner, clip)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(spec["precision"])
    times: list[float] = []
    cpu_times: list[float] = []  # process CPU time (all threads): less sensitive to a busy machine
    result: dict[str, Any] = {}

    def passes(first: int, stop: int) -> None:
        for i in range(first, stop):
            if cuda:
                torch.cuda.synchronize(device)
            begin, cpu_begin = time.perf_counter(), time.process_time()
            autocast = torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext()
            with torch.no_grad(), autocast:
                result["out"], result["kept"] = forward()
            if cuda:
                torch.cuda.synchronize(device)
            if i >= spec["warmup"]:
                times.append(time.perf_counter() - begin)
                cpu_times.append(time.process_time() - cpu_begin)

    total = spec["warmup"] + spec["runs"]
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
        passes(0, total)
        peak_mib, memory_kind = torch.cuda.max_memory_allocated(device) / 2**20, "cuda max_memory_allocated"
    elif spec.get("live_tensors"):
        with LiveTensorBytes() as recorder:
            passes(0, total)
        peak_mib, memory_kind = recorder.peak / 2**20, "peak live tensor bytes (dispatch mode; times not comparable)"
    else:
        # RSS is sampled over the warm-up passes only (all passes without warm-up): the sampling thread wakes
        # every millisecond and slowed two-thread runs (vsrt's BasicVSR side by side: 0.153 -> 0.187 s/frame)
        sampled = spec["warmup"] or total
        peak_mib, memory_kind = cpu_peak_memory(lambda: passes(0, sampled))
        passes(sampled, total)
        if spec["warmup"]:
            memory_kind += " during the warm-up passes"
    out = result["out"]
    frames_out = out.shape[1] if out.dim() == 5 else 1
    return {key: spec[key] for key in ("row", "impl", "precision", "compile", "device", "frames", "size")} | {
        "frames_out": int(frames_out), "times": times, "s_per_frame": statistics.median(times) / frames_out,
        "cpu_times": cpu_times, "cpu_s_per_frame": statistics.median(cpu_times) / frames_out,
        "peak_mib": peak_mib, "memory": memory_kind, "build_s": build_s, "kept": result["kept"],
        "finite": bool(torch.isfinite(out.float()).all()), "torch": torch.__version__,
        "device_name": torch.cuda.get_device_name(device) if cuda else "cpu", "threads": torch.get_num_threads(),
        "pid": os.getpid(), "mask_execution": _mask_mode(net)}


def _mask_mode(net: Any) -> str | None:
    """MIA-VSR's mask mode as run (compiling may change it), None for other networks."""
    if hasattr(net, "mask_execution"):
        return net.mask_execution
    return None if not hasattr(net, "skip_masked_tokens") else "gather" if net.skip_masked_tokens else "dense"


def load_official_helper(ref_root: str, helper_path: str | None) -> types.ModuleType:
    """Import the shared perf tools' ``official.py`` (builders of the official models)."""
    candidates = [Path(helper_path)] if helper_path else [Path(ref_root) / "official.py",
                                                           Path(ref_root).parent / "official.py"]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        raise SystemExit("--official-ref: cannot find the helper official.py (looked at "
                         f"{', '.join(map(str, candidates))}); pass --official-helper PATH "
                         "(the shared perf tools' official.py)")
    if "official" in sys.modules:
        return sys.modules["official"]
    os.environ["REF_ROOT"] = str(Path(ref_root).resolve())
    module_spec = importlib.util.spec_from_file_location("official", path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules["official"] = module
    module_spec.loader.exec_module(module)
    return module


if __name__ == "__main__":
    sys.path[:0] = [str(SCRIPTS.parent), str(SCRIPTS)]
    print(json.dumps(measure(json.loads(sys.argv[1]))))
