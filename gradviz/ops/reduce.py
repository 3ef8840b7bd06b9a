"""Reductions: `sum` and `amax` over axes (primitives) and `mean` (composite: sum times 1/n).

`amax`: max over axes. Its VJP splits the gradient evenly among the maxima of each slice (a
subgradient; one maximum per slice almost everywhere). It makes softmax stable and is maxout's
reduction; the mask is built from `step`, so no extra primitive is needed.
"""
from __future__ import annotations

import numpy as np

from gradviz.errors import ShapeError
from gradviz.core.ir import Node
from gradviz.ops.elementwise import _scale, div, mul, step, sub
from gradviz.ops.shape import broadcast_to, make, reshape
from gradviz.core.rules import builder, primitive


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


primitive("sum", shape=_sum_shape, impl=_sum_impl, vjp=_sum_vjp, tensor_only=True,
          style=("sum", "shape"))


@builder()
def sum(x: Node, axis=None, keepdims: bool = False) -> Node:  # noqa: A001
    """Sum of `x` over `axis` (an int, a tuple, or None for all axes)."""
    axes = _normalize_axes(x, axis)
    if not axes:
        return x
    return make("sum", x, axes=axes, keepdims=bool(keepdims))


@builder()
def mean(x: Node, axis=None, keepdims: bool = False) -> Node:
    """Mean of `x` over `axis`. Composite: `sum(x) * (1/n)`."""
    axes = _normalize_axes(x, axis)
    count = 1
    for a in axes:
        count *= x.shape[a]
    if count == 0:
        raise ShapeError(f"mean over an empty axis of shape {x.shape}")
    return mul(sum(x, axes, keepdims), 1 / count)   # 1 / a Size stays a formula (core/sizes.py)


# -- amax ---------------------------------------------------------------------------------------
def _amax_shape(x: Node, *, axes, keepdims):
    if any(x.shape[a] == 0 for a in axes):
        raise ShapeError(f"amax over an empty axis of shape {x.shape}")
    return _reduced_shape(x.shape, axes, keepdims), x.dtype


def _amax_vjp(node: Node, g: Node):
    x = node.src[0]
    axes = node.attrs["axes"]
    kept = _reduced_shape(x.shape, axes, True)
    top = broadcast_to(reshape(node, kept), x.shape)
    # top - x >= 0 everywhere and is 0 exactly at the maxima, where step() is 0
    is_max = sub(1.0, step(sub(top, x)))
    share = div(is_max, broadcast_to(sum(is_max, axes, keepdims=True), x.shape))
    return (_scale(broadcast_to(reshape(g, kept), x.shape), share),)


def _amax_ties(node: Node, x):
    axes = node.attrs["axes"]
    x = np.asarray(x)
    top = np.amax(x, axis=axes, keepdims=True)
    return bool(np.any(np.sum(x == top, axis=axes) > 1))


primitive("amax", shape=_amax_shape,
          impl=lambda n, x: np.amax(x, axis=n.attrs["axes"], keepdims=n.attrs["keepdims"]),
          vjp=_amax_vjp, kink=_amax_ties, tensor_only=True, style=("max over", "shape"))


@builder()
def amax(x: Node, axis=None, keepdims: bool = False) -> Node:
    """Maximum of `x` over `axis` (an int, a tuple, or None for all). Where several entries tie
    for the maximum the gradient is split evenly among them."""
    axes = _normalize_axes(x, axis)
    if not axes:
        return x
    return make("amax", x, axes=axes, keepdims=bool(keepdims))
