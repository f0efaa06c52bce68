"""Export a network for deployment: ONNX (dynamo exporter + onnxscript) and ``torch.export`` ``.pt2``.

* :mod:`vsrt.export.graph`: the exportable wrapper (fixed clip length, size and scale) and the two
  writers; the file records what it was exported from (:class:`ExportInfo`).
* :mod:`vsrt.export.runtime`: loading an exported file back (ONNX Runtime or ``torch.export.load``)
  as a callable with the network's interface, used to verify an export and by
  ``vsrt upscale --backend onnxruntime``.
* :mod:`vsrt.export.cli`: ``python -m vsrt export``.
"""
