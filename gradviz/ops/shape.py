"""Shape primitives: `broadcast_to`, `reshape`, `transpose`.

Broadcasting is explicit: elementwise primitives take operands of equal shape, and builders
insert `broadcast_to`, whose gradient is a sum (`sum_to`). No other rule un-broadcasts.
"""
from __future__ import annotations

import numpy as np

from gradviz.errors import ShapeError
from gradviz.core.ir import Node
from gradviz.ops.leaves import _check_shape
from gradviz.core.rules import builder, primitive
from gradviz.core.sizes import Size


def make(op: str, *src: Node, name: str | None = None, **attrs) -> Node:
    """Build a node of primitive `op`, checking operands with its shape rule."""
    from gradviz.core.rules import shape_rules

    shape, dtype = shape_rules[op](*src, **attrs)
    return Node(op, src, attrs, shape, dtype, name)


# -- broadcast_to -------------------------------------------------------------------------------
def _broadcast_shape(x: Node, *, shape):
    try:
        out = np.broadcast_shapes(x.shape, shape)
    except ValueError:
        out = None
    if out != tuple(shape):
        raise ShapeError(f"cannot broadcast shape {x.shape} to {tuple(shape)}")
    return tuple(shape), x.dtype


def _broadcast_vjp(node: Node, g: Node):
    return (sum_to(g, node.src[0].shape),)


primitive("broadcast_to", shape=_broadcast_shape,
          impl=lambda node, x: np.broadcast_to(x, node.shape),
          vjp=_broadcast_vjp, tensor_only=True, style=("broadcast", "shape"))


@builder()
def broadcast_to(x: Node, shape) -> Node:
    """`x` repeated along new leading axes and along its size-1 axes to `shape` (NumPy rules)."""
    shape = _check_shape(shape)
    if x.shape == shape:
        return x
    return make("broadcast_to", x, shape=shape)


def sum_to(g: Node, shape: tuple) -> Node:
    """Sum `g` down to `shape`: the adjoint of broadcasting `shape` up to `g.shape`."""
    from gradviz.ops.reduce import sum as sum_

    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, d in enumerate(shape) if d == 1 and g.shape[lead + i] != 1)
    out = sum_(g, axes) if axes else g
    return reshape(out, shape)


# -- reshape ------------------------------------------------------------------------------------
def _reshape_shape(x: Node, *, shape):
    size = 1
    for d in shape:
        size *= d
    if size != x.size:
        raise ShapeError(f"cannot reshape {x.shape} ({x.size} elements) to {shape}")
    return tuple(shape), x.dtype


primitive("reshape", shape=_reshape_shape,
          impl=lambda node, x: np.reshape(x, node.shape),
          vjp=lambda node, g: (reshape(g, node.src[0].shape),), tensor_only=True,
          style=("reshape", "shape"))


@builder()
def reshape(x: Node, shape) -> Node:
    """`x` with a new shape of the same size; one dimension may be -1."""
    if isinstance(shape, int):
        shape = (shape,)
    shape = tuple(d if isinstance(d, Size) else int(d) for d in shape)   # keep named sizes
    if shape.count(-1) > 1:
        raise ShapeError("reshape: at most one dimension may be -1")
    if -1 in shape:
        known = 1
        for d in shape:
            if d != -1:
                known *= d
        if known == 0 or x.size % known:
            raise ShapeError(f"cannot reshape {x.shape} to {shape}")
        shape = tuple(x.size // known if d == -1 else d for d in shape)
    if shape == x.shape:
        return x
    return make("reshape", x, shape=shape)


# -- transpose ----------------------------------------------------------------------------------
def _transpose_shape(x: Node, *, perm):
    if sorted(perm) != list(range(x.ndim)):
        raise ShapeError(f"transpose: {perm} is not a permutation of the {x.ndim} axes of {x.shape}")
    return tuple(x.shape[p] for p in perm), x.dtype


def _transpose_vjp(node: Node, g: Node):
    perm = node.attrs["perm"]
    inverse = tuple(sorted(range(len(perm)), key=perm.__getitem__))
    return (transpose(g, inverse),)


primitive("transpose", shape=_transpose_shape,
          impl=lambda node, x: np.transpose(x, node.attrs["perm"]),
          vjp=_transpose_vjp, tensor_only=True, style=("transpose", "shape"))


@builder()
def transpose(x: Node, perm=None) -> Node:
    """Axes of `x` permuted (reversed when `perm` is None, so a matrix is transposed)."""
    perm = tuple(reversed(range(x.ndim))) if perm is None else tuple(int(p) for p in perm)
    if perm == tuple(range(x.ndim)):
        return x
    return make("transpose", x, perm=perm)
