"""Leaves: variables (`var`), trainable parameters (`param`) and constants (`const`)."""
from __future__ import annotations

import numbers

import numpy as np

from gradviz.errors import GradvizError, ShapeError
from gradviz.core.ir import DTYPES, Node
from gradviz.core.rules import builder
from gradviz.core.sizes import Size, SizeRatio


def _check_dtype(dtype: str) -> str:
    dtype = np.dtype(dtype).name
    if dtype not in DTYPES:
        raise GradvizError(f"dtype must be one of {', '.join(DTYPES)}, not {dtype}")
    return dtype


def _check_shape(shape) -> tuple[int, ...]:
    if isinstance(shape, numbers.Integral):
        shape = (int(shape),)
    shape = tuple(d if isinstance(d, Size) else int(d) for d in shape)   # keep named sizes
    if any(d < 0 for d in shape):
        raise ShapeError(f"negative dimension in shape {shape}")
    return shape


@builder()
def var(name: str, shape=(), dtype: str = "float64") -> Node:
    """An input variable, given a value at evaluation time (`shape=()` is a scalar)."""
    if not isinstance(name, str) or not name:
        raise GradvizError("a variable needs a non-empty name")
    return Node("var", (), {}, _check_shape(shape), _check_dtype(dtype), name)


@builder()
def vars(names: str, shape=(), dtype: str = "float64") -> tuple[Node, ...]:  # noqa: A001
    """Several scalar (or same-shaped) variables at once: `x, y, z = gv.vars("x y z")`."""
    return tuple(var(n, shape, dtype) for n in names.replace(",", " ").split())


@builder()
def param(name: str, shape=(), dtype: str = "float64") -> Node:
    """A trainable parameter: a leaf like `var`, marked so that optimizers update it."""
    if not isinstance(name, str) or not name:
        raise GradvizError("a parameter needs a non-empty name")
    return Node("param", (), {}, _check_shape(shape), _check_dtype(dtype), name)


@builder()
def const(value, dtype: str | None = None, name: str | None = None) -> Node:
    """A constant. Scalars are stored as Python floats, tensors as read-only NumPy arrays."""
    if type(value) is float and dtype in _FAST_DTYPES:  # the common case, kept cheap
        return Node("const", (), {"value": value}, (), dtype or "float64", name)
    if isinstance(value, Node):
        raise GradvizError("const() takes a number or an array, not a Node")
    arr = np.asarray(value)
    if arr.dtype.kind not in "biuf":
        raise GradvizError(f"const() needs numbers, got {arr.dtype}")
    dtype = _check_dtype(dtype or ("float32" if arr.dtype == np.float32 else "float64"))
    if isinstance(value, (Size, SizeRatio)):
        stored = value   # a number that generated code computes from named sizes
    elif arr.ndim == 0:
        stored = float(arr)
    else:
        stored = np.array(arr, dtype=dtype)
        stored.setflags(write=False)
    return Node("const", (), {"value": stored}, arr.shape, dtype, name)


_FAST_DTYPES = (None, "float64", "float32")


def lift(value, like: Node | None = None) -> Node:
    """`value` as a node: nodes pass through; numbers and arrays become constants (taking the
    dtype of `like`, so `x32 * 2` stays float32)."""
    if isinstance(value, Node):
        return value
    if type(value) in (float, int):
        return const(float(value), dtype=like.dtype if like is not None else None)
    if isinstance(value, (numbers.Real, np.ndarray, np.generic, list, tuple)) \
            and not isinstance(value, bool):
        return const(value, dtype=like.dtype if like is not None else None)
    raise GradvizError(f"cannot use a {type(value).__name__} in an expression")


def const_value(node: Node):
    """The value of a `const` node, or None for any other node."""
    return node.attrs["value"] if node.op == "const" else None
