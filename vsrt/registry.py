"""Name -> object registries with close-match hints.

Every architecture, model, dataset, loss and metric is looked up by the
``type:`` string of an option file. Files named ``*_arch.py``, ``*_model.py``,
``*_dataset.py`` and ``*_loss.py`` inside the package are imported
automatically (see :func:`import_modules`), so a new component is one file.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from collections.abc import Callable, Iterable, Iterator
from types import ModuleType
from typing import Any


class Registry:
    """A mapping from names to classes or functions.

    Use as a decorator, with parentheses::

        @ARCH_REGISTRY.register()
        class MyNet(nn.Module): ...

        @ARCH_REGISTRY.register(aliases=("PSRTRecurrent",))
        class BasicRecurrentSwin(nn.Module): ...
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._objects: dict[str, Any] = {}

    def register(self, obj: Any = None, *, name: str | None = None,
                 aliases: Iterable[str] = ()) -> Any:
        """Register ``obj`` (or the decorated object) under its ``__name__``."""

        def add(target: Any) -> Any:
            for key in (name or target.__name__, *aliases):
                existing = self._objects.get(key)
                if existing is not None and existing is not target:
                    raise KeyError(
                        f"{self.name} registry: '{key}' is already registered "
                        f"by {existing.__module__}.{existing.__qualname__}")
                self._objects[key] = target
            return target

        if obj is not None:
            return add(obj)
        return add

    def get(self, name: str) -> Any:
        try:
            return self._objects[name]
        except KeyError:
            raise KeyError(self.unknown_message(name)) from None

    def unknown_message(self, name: str) -> str:
        close = difflib.get_close_matches(name, list(self._objects), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        known = ", ".join(sorted(self._objects)) or "(none)"
        return f"Unknown {self.name} type '{name}'.{hint} Registered: {known}."

    def __contains__(self, name: object) -> bool:
        return name in self._objects

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        return iter(sorted(self._objects.items()))

    def keys(self) -> list[str]:
        return sorted(self._objects)

    def __repr__(self) -> str:
        return f"Registry({self.name!r}, {self.keys()})"


ARCH_REGISTRY = Registry("arch")
MODEL_REGISTRY = Registry("model")
DATASET_REGISTRY = Registry("dataset")
LOSS_REGISTRY = Registry("loss")
METRIC_REGISTRY = Registry("metric")


def import_modules(package: ModuleType, suffix: str) -> list[ModuleType]:
    """Import every module of ``package`` (recursively) whose name ends in ``suffix``.

    ``suffix`` is e.g. ``'_arch'``; this is what makes "drop one file in" work.
    """
    found = []
    for info in pkgutil.walk_packages(package.__path__, prefix=package.__name__ + "."):
        if info.name.rsplit(".", 1)[-1].endswith(suffix):
            found.append(importlib.import_module(info.name))
    return found


def registered_attributes(registry: Registry, package: ModuleType
                          ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` (PEP 562) that make every registered name an attribute of
    ``package``, e.g. ``from vsrt.archs import MIAVSR`` or ``vsrt.losses:L1Loss``."""

    def getattr_(name: str) -> Any:
        if name in registry:
            return registry.get(name)
        raise AttributeError(f"module {package.__name__!r} has no attribute {name!r}")

    def dir_() -> list[str]:
        return sorted(set(vars(package)) | set(registry.keys()))

    return getattr_, dir_


def import_user_modules(names: Iterable[str]) -> None:
    """Import out-of-tree modules named by the ``imports:`` option key."""
    for module_name in names:
        try:
            importlib.import_module(module_name)
        except ImportError as err:
            raise ImportError(
                f"Option 'imports' names module '{module_name}', which cannot be imported: {err}"
            ) from err


def build_from_registry(registry: Registry, opt: dict[str, Any], what: str,
                        call: Callable[[Any, dict[str, Any]], Any] | None = None) -> Any:
    """Look ``opt['type']`` up in ``registry`` and construct it with the other keys."""
    if "type" not in opt:
        raise KeyError(f"{what} options need a 'type' key; got keys {sorted(opt)}")
    opt = dict(opt)
    cls = registry.get(opt.pop("type"))
    if call is not None:
        return call(cls, opt)
    return cls(**opt)
