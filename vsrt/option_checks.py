"""Load-time checks of ``network_g`` that need the architecture classes (so ``torch``).

:mod:`vsrt.options` checks the framework's own keys without importing torch; this module checks a
``network_g`` block against its constructor before any data is read or any network is built:

* every key is an argument of the constructor (with the closest name on a typo);
* a value has the kind of its annotation (``num_feat: "8"`` for an ``int`` is an error naming the key);
* the top-level ``scale`` is one the network can produce (VRT built with ``upscale: 4`` cannot train
  at ``scale: 2``; an arbitrary-scale network such as SAVSR takes any).
"""

from __future__ import annotations

import inspect
import numbers
from typing import Any

from vsrt.archs import ARCH_REGISTRY, check_network_options
from vsrt.archs.scale import as_scale_pair, is_arbitrary_scale
from vsrt.options import OptionError

# simple annotation -> accepted python types; anything else (Any, callables, unions with
# other types) is not checked
_KINDS: dict[str, tuple[type, ...]] = {
    "int": (int,), "float": (int, float), "bool": (bool,), "str": (str,),
    "Sequence[int]": (list, tuple), "Sequence[float]": (list, tuple), "list[int]": (list, tuple),
    "tuple[int, int]": (list, tuple), "tuple[int, int, int]": (list, tuple), "list[float]": (list, tuple),
    "tuple[int, ...]": (list, tuple), "list": (list, tuple), "tuple": (list, tuple), "None": (type(None),),
}


def accepted_types(annotation: Any) -> tuple[type, ...] | None:
    """Python types a (string) annotation accepts, or None when it is not one vsrt checks."""
    if annotation is inspect.Parameter.empty:
        return None
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    if text.startswith("Optional[") and text.endswith("]"):
        text = f"{text[len('Optional['):-1]} | None"
    kinds: tuple[type, ...] = ()
    for part in (p.strip() for p in text.split("|")):
        if part not in _KINDS:
            return None
        kinds += _KINDS[part]
    return kinds


def _has_kind(value: Any, kinds: tuple[type, ...]) -> bool:
    if isinstance(value, bool):  # bool is an int subclass: accept it only where bool is
        return bool in kinds
    if float in kinds and isinstance(value, numbers.Real):
        return True
    return isinstance(value, kinds)


def check_network_types(cls: type, kwargs: dict[str, Any], where: str = "network_g") -> None:
    """Raise a TypeError naming ``where.key`` when a value does not have its annotated kind."""
    params = inspect.signature(cls.__init__).parameters
    for key, value in kwargs.items():
        if key not in params:
            continue
        kinds = accepted_types(params[key].annotation)
        if kinds is not None and not _has_kind(value, kinds):
            expected = params[key].annotation
            raise TypeError(f"{where}.{key}: expected {expected} for {cls.__name__}, got {value!r} "
                            f"({type(value).__name__})")


def network_scale(cls: type, kwargs: dict[str, Any]) -> float | None:
    """The one factor a network configuration produces; None for an arbitrary-scale network.

    ``upscale`` (VRT: a constructor argument, 1 for deblurring, denoising and interpolation), else the
    class's ``scale`` attribute (BasicVSR, PSRT-recurrent, MIA-VSR, IIA-VSR).
    """
    if is_arbitrary_scale(cls):
        return None
    params = inspect.signature(cls.__init__).parameters
    if "upscale" in kwargs:
        return kwargs["upscale"]
    if "upscale" in params and isinstance(params["upscale"].default, numbers.Real):
        return params["upscale"].default
    value = getattr(cls, "scale", None)
    return value if isinstance(value, numbers.Real) and not isinstance(value, bool) else None


def check_network_g(opt: dict[str, Any], source: str = "<options>") -> type:
    """Check ``opt['network_g']`` (keys, value kinds) and the top-level ``scale``; return the class."""
    network_opt = dict(opt["network_g"])
    cls = ARCH_REGISTRY.get(network_opt.pop("type"))
    try:
        check_network_options(cls, network_opt)
        check_network_types(cls, network_opt)
    except TypeError as err:
        raise TypeError(f"{source}: {err}") from None
    scale = opt.get("scale")
    if scale is not None:
        try:
            scale_pair = as_scale_pair(scale)
        except ValueError as err:
            raise OptionError(f"{source}: scale: {err}") from None
    native = network_scale(cls, network_opt)
    if scale is not None and native is not None and scale_pair != (native, native):
        raise OptionError(f"{source}: scale: {scale!r}, but network_g ({cls.__name__}) produces x{native}"
                          + (" (network_g.upscale)" if "upscale" in inspect.signature(cls.__init__).parameters
                             else "") + "; make them agree")
    return cls


def load_checked_options(args: Any, is_train: bool) -> tuple[dict[str, Any], list[str]]:
    """The options of a ``vsrt.train`` / ``vsrt.test`` command line and their load notices, checked
    before any data, folder or network is touched: ``--compile`` applied, ``imports`` imported (only as
    allowed), ``network_g`` checked, ``val.tile`` and the runtime settings (compile, tf32,
    cudnn_benchmark) validated."""
    from vsrt.models.runtime import runtime_settings
    from vsrt.models.video_recurrent_model import tile_config_from_options
    from vsrt.options import allowed_imports, load_options
    from vsrt.registry import import_user_modules

    opt, notices = load_options(args.opt, is_train, args.force_yml, args.debug)
    if args.compile:
        opt["compile"] = opt.get("compile") or True
    import_user_modules(allowed_imports(opt, args.allow_imports))
    check_network_g(opt, args.opt)  # keys, value kinds and scale
    tile_config_from_options((opt.get("val") or {}).get("tile"), opt["network_g"])
    runtime_settings(opt)
    return opt, notices
