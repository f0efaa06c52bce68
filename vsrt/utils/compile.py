"""``torch.compile`` for vsrt networks: the heavy repeated blocks, not the recurrent loop.

Compiling a whole recurrent network unrolls its Python loop over frames, branches and
steps into one huge graph that is recompiled for every clip length. vsrt compiles each
architecture's blocks instead (a few small graphs, shared by every block instance and
reused at every step), and leaves the loop, the flow network, tiling and the step
bookkeeping in eager Python. Which blocks: the architecture class lists them in
``compile_blocks`` (a tuple of module classes); a block compiles the methods named in its
``compile_methods`` (default ``("forward",)``; a block whose ``forward`` wraps activation
checkpointing or per-step state names the pure method inside it, so checkpointing and
state stay outside the graph).

Every target compiles with ``fullgraph=True`` by default: a graph break is an error, not
a silent slowdown. MIA-VSR's gathered mask path (``nonzero``, ``unique``: data-dependent
shapes) cannot be one graph, so compiling selects its sync-free mode.

Option (top level of an option file, or ``--compile`` on the command lines)::

    compile: false            # default
    compile: true             # inductor, default mode
    compile: {backend: inductor, mode: max-autotune, dynamic: ~, fullgraph: true}
"""

from __future__ import annotations

import difflib
import types
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is imported where compiling needs it (torch._dynamo is slow to import)
    from torch import nn

MODES = (None, "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
# every block instance shares one compiled code object; its variants (shifted or not,
# first step or not, train or eval, shapes) need more than dynamo's default 8 entries
RECOMPILE_LIMIT = 64
# MIA-VSR's mask execution mode without data-dependent shapes (see vsrt.archs.mia_vsr_arch)
SYNC_FREE_MASK_MODE = "dense"


@dataclass(frozen=True)
class CompileSettings:
    """Arguments of ``torch.compile`` for every compiled block (see :func:`parse_compile_option`)."""

    backend: str = "inductor"
    mode: str | None = None
    dynamic: bool | None = None
    fullgraph: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.backend, str) or not self.backend:
            raise ValueError(f"compile.backend must be a backend name (e.g. inductor), got {self.backend!r}")
        if self.mode not in MODES:
            raise ValueError(f"compile.mode {self.mode!r} is not one of {', '.join(str(m) for m in MODES[1:])} or ~")
        if self.dynamic not in (None, True, False):
            raise ValueError(f"compile.dynamic must be true, false or ~, got {self.dynamic!r}")
        if not isinstance(self.fullgraph, bool):
            raise ValueError(f"compile.fullgraph must be true or false, got {self.fullgraph!r}")


def parse_compile_option(value: Any, where: str = "compile") -> CompileSettings | None:
    """The ``compile`` option: ``false``/``~`` (off, None), ``true`` (defaults) or a mapping.

    Raises a ValueError naming ``where`` for an unknown key (with the closest valid one) or a bad value.
    """
    if value is None or value is False:
        return None
    if value is True:
        return CompileSettings()
    valid = [f.name for f in fields(CompileSettings)]
    if not isinstance(value, dict):
        raise ValueError(f"{where} must be true, false or a mapping with keys {', '.join(valid)}; got {value!r}")
    for key in value:
        if key not in valid:
            close = difflib.get_close_matches(str(key), valid, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ValueError(f"{where}: unknown key '{key}'.{hint} Valid keys: {', '.join(valid)}")
    try:
        return CompileSettings(**value)
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from err


def compile_targets(net: nn.Module) -> list[tuple[nn.Module, str]]:
    """``(module, method name)`` for every block of ``net`` that :func:`compile_network` compiles."""
    block_types = tuple(getattr(net, "compile_blocks", ()))
    return [(module, name) for module in net.modules() if block_types and isinstance(module, block_types)
            for name in getattr(module, "compile_methods", ("forward",))]


def _check_backend(backend: str) -> None:
    import torch._dynamo  # heavy: imported only when compiling

    known = torch._dynamo.list_backends(exclude_tags=())
    if backend not in known:
        close = difflib.get_close_matches(backend, known, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ValueError(f"compile.backend '{backend}' is not a torch.compile backend.{hint} "
                         f"Known: {', '.join(sorted(known))}")


def compile_network(net: nn.Module, settings: CompileSettings) -> int:
    """Compile the blocks of ``net`` in place; returns how many methods were compiled.

    State-dict keys do not change (the compiled methods are instance attributes), so
    checkpoints load and save as before; a ``copy.deepcopy`` of the network keeps them
    compiled, bound to the copied blocks. A network without ``compile_blocks`` is left as
    it is (0 is returned).
    """
    _check_backend(settings.backend)
    import torch._dynamo

    config = torch._dynamo.config
    limit_name = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"  # torch < 2.6
    setattr(config, limit_name, max(getattr(config, limit_name), RECOMPILE_LIMIT))
    if hasattr(net, "mask_execution"):  # MIA-VSR: the gathered path has data-dependent shapes
        net.mask_execution = SYNC_FREE_MASK_MODE
    compiled: dict[tuple[type, str], Any] = {}
    targets = compile_targets(net)
    for module, name in targets:  # the class's method is compiled, so calling this twice does not nest
        key = (type(module), name)
        if key not in compiled:  # one compiled function per block class and method
            compiled[key] = torch.compile(getattr(type(module), name), backend=settings.backend, mode=settings.mode,
                                          dynamic=settings.dynamic, fullgraph=settings.fullgraph)
        setattr(module, name, types.MethodType(compiled[key], module))
    return len(targets)
