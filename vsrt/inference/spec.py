"""The inference names of :mod:`vsrt.archs.spec` (frame protocol, scale and size constraints).

The module lives in ``vsrt.archs`` because training-time validation (:mod:`vsrt.models`) needs it
too, and models must not depend on the inference layer.
"""

from vsrt.archs.spec import (
    ModelSpec,
    Scale,
    describe_network,
    forward_takes_scale,
    integer_scale,
    resolve_scale,
)

__all__ = ["ModelSpec", "Scale", "describe_network", "forward_takes_scale", "integer_scale", "resolve_scale"]
