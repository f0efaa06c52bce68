"""vsrt: transformer video super-resolution in the BasicSR style.

Importing the package is cheap; the registries fill when their subpackages
(``vsrt.archs``, ``vsrt.models``, ...) are imported.
"""

__version__ = "0.1.0"
