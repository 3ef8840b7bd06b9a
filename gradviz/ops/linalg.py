"""Matrix product. `matmul` is a 2-D primitive; the builder handles 1-D operands by reshaping,
as NumPy does (a vector on the left is a row, on the right a column)."""
from __future__ import annotations

import numpy as np

from gradviz.errors import ShapeError
from gradviz.core.ir import Node
from gradviz.ops.shape import make, reshape, transpose
from gradviz.core.rules import builder, primitive


def _matmul_shape(a: Node, b: Node):
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ShapeError(f"matmul: shapes {a.shape} and {b.shape} do not line up")
    if a.dtype != b.dtype:
        raise ShapeError(f"matmul: dtypes {a.dtype} and {b.dtype} differ")
    return (a.shape[0], b.shape[1]), a.dtype


def _matmul_vjp(node: Node, g: Node):
    a, b = node.src
    return matmul(g, transpose(b)), matmul(transpose(a), g)


primitive("matmul", shape=_matmul_shape, impl=lambda node, a, b: np.matmul(a, b), vjp=_matmul_vjp,
          tensor_only=True, style=("@", "layer"))


@builder()
def matmul(a: Node, b: Node) -> Node:
    """Matrix product `a @ b` of 2-D (or 1-D) nodes."""
    if a.ndim not in (1, 2) or b.ndim not in (1, 2):
        raise ShapeError(f"matmul takes 1-D or 2-D operands, got {a.shape} and {b.shape}")
    a2 = reshape(a, (1, a.shape[0])) if a.ndim == 1 else a
    b2 = reshape(b, (b.shape[0], 1)) if b.ndim == 1 else b
    out = make("matmul", a2, b2)
    if a.ndim == 1 or b.ndim == 1:
        out = reshape(out, tuple(d for d, keep in zip(out.shape, (a.ndim == 2, b.ndim == 2)) if keep))
    return out
