"""vsrt: transformer video super-resolution in the BasicSR style.

Importing the package is cheap; the registries fill when their subpackages
(``vsrt.archs``, ``vsrt.models``, ...) are imported.
"""

__version__ = "0.1.0"


def program_name(command: str, module_prog: str) -> str:
    """The usage name of ``command``: ``vsrt <command>`` or ``python -m vsrt <command>`` when started
    through the ``vsrt`` dispatcher (which sets ``sys.argv[0]`` to that), else ``module_prog``
    (e.g. ``python -m vsrt.train``)."""
    import sys

    started_as = sys.argv[0] if sys.argv else ""
    return started_as if started_as.endswith(f"vsrt {command}") else module_prog
