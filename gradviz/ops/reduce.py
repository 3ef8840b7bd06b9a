"""Reductions: `sum` over axes (primitive) and `mean` (composite: sum times 1/n)."""
from __future__ import annotations

import numpy as np

from gradviz.errors import ShapeError
from gradviz.core.ir import Node
from gradviz.ops.shape import broadcast_to, make, reshape
from gradviz.core.rules import primitive


def _normalize_axes(x: Node, axis) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(x.ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    out = []
    for a in axes:
        if not -x.ndim <= a < x.ndim:
            raise ShapeError(f"axis {a} is out of range for shape {x.shape}")
        out.append(a % x.ndim)
    if len(set(out)) != len(out):
        raise ShapeError(f"repeated axis in {axes}")
    return tuple(sorted(out))


def _reduced_shape(shape, axes, keepdims):
    if keepdims:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def _sum_shape(x: Node, *, axes, keepdims):
    return _reduced_shape(x.shape, axes, keepdims), x.dtype


def _sum_vjp(node: Node, g: Node):
    x = node.src[0]
    kept = _reduced_shape(x.shape, node.attrs["axes"], True)
    return (broadcast_to(reshape(g, kept), x.shape),)


def _sum_impl(node, x):
    return np.sum(x, axis=node.attrs["axes"], keepdims=node.attrs["keepdims"], dtype=node.dtype)


primitive("sum", shape=_sum_shape, impl=_sum_impl, vjp=_sum_vjp)


def sum(x: Node, axis=None, keepdims: bool = False) -> Node:  # noqa: A001
    """Sum of `x` over `axis` (an int, a tuple, or None for all axes)."""
    axes = _normalize_axes(x, axis)
    if not axes:
        return x
    return make("sum", x, axes=axes, keepdims=bool(keepdims))


def mean(x: Node, axis=None, keepdims: bool = False) -> Node:
    """Mean of `x` over `axis`. Composite: `sum(x) * (1/n)`."""
    from gradviz.ops.elementwise import mul

    axes = _normalize_axes(x, axis)
    count = 1
    for a in axes:
        count *= x.shape[a]
    if count == 0:
        raise ShapeError(f"mean over an empty axis of shape {x.shape}")
    return mul(sum(x, axes, keepdims), 1.0 / count)

