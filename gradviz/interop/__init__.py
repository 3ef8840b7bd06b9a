"""Interoperability: ONNX files in (`onnx_import.OnnxModel`) and out (`onnx_export`).

Both need the optional `onnx` package (``pip install 'gradviz[onnx]'``), imported only when an
ONNX file is read or written, so ``import gradviz`` and ``gradviz --help`` do not pay for it.
"""
from __future__ import annotations

from gradviz.errors import GradvizError

ONNX_EXTRA = "pip install 'gradviz[onnx]'"


def require_onnx():
    """The `onnx` module, or a one-line `GradvizError` naming the extra that installs it."""
    try:
        import onnx
    except ImportError:
        raise GradvizError(f"ONNX files need the onnx package: {ONNX_EXTRA}") from None
    return onnx


def is_onnx_file(name) -> bool:
    """Whether a model argument names an ONNX file (by its suffix)."""
    return isinstance(name, str) and name.lower().endswith(".onnx")
