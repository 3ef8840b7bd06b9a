"""The reference interpreter: evaluates a graph with the NumPy rules in `gradviz.core.rules`.

Every backend is checked against it. Scalar float64 nodes run on Python floats through
`scalar_rules` (NumPy 0-d arrays are about ten times slower); where a float rule raises
(`math.log(-1)`, `1/0`), the NumPy rule gives the IEEE answer (nan, inf) instead, so both paths
agree.
"""
from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np

import gradviz.ops  # noqa: F401  (registers the primitives)
from gradviz.errors import GradvizError, MissingValueError, ShapeError
from gradviz.core.ir import Node, toposort
from gradviz.core.rules import impl_rules, scalar_rules

_FLOAT_ERRORS = (ValueError, ZeroDivisionError, OverflowError)


def bind(nodes: Iterable[Node], env: Mapping) -> dict[Node, object]:
    """Values for the `var`/`param` leaves among `nodes`, looked up in `env` by node or by name,
    checked against each leaf's shape and converted to its dtype."""
    values: dict[Node, object] = {}
    for node in nodes:
        if node.op not in ("var", "param"):
            continue
        values[node] = _convert(node, lookup(node, env))
    return values


def lookup(leaf: Node, env: Mapping):
    """The raw value given for a leaf in `env`, by node or by name; a one-line error if none."""
    if leaf in env:
        return env[leaf]
    if leaf.name in env:
        return env[leaf.name]
    raise MissingValueError(f"no value for {leaf.op} {leaf.name!r}")


def _convert(node: Node, raw):
    if node.shape == () and node.dtype == "float64":
        try:
            arr = np.asarray(raw, dtype=np.float64)
        except (TypeError, ValueError):
            raise GradvizError(f"value for {node.name!r} is not a number: {raw!r}") from None
        if arr.shape != ():
            raise ShapeError(f"{node.name!r} is a scalar but got a value of shape {arr.shape}")
        return float(arr)
    return leaf_array(node, raw)


def leaf_array(node: Node, raw, dtype=None) -> np.ndarray:
    """`raw` as an array of the leaf's shape, in `dtype` (default: the leaf's), or a one-line
    error naming the leaf. Shared by the interpreter and the compiled backends."""
    try:
        arr = np.asarray(raw, dtype=dtype or node.dtype)
    except (TypeError, ValueError):
        raise GradvizError(f"value for {node.name!r} is not numeric") from None
    if arr.shape != node.shape:
        raise ShapeError(f"{node.name!r} has shape {node.shape} but got a value of shape {arr.shape}")
    return arr


def evaluate(outputs: Node | Iterable[Node], env: Mapping | None = None, *,
             order: list[Node] | None = None, values: dict | None = None) -> dict[Node, object]:
    """Evaluate every node the outputs depend on.

    `env` maps variables (nodes or names) to values. Returns `{node: value}` for every node:
    Python floats for float64 scalars, NumPy arrays otherwise. `order` (a topological order of
    the nodes) and `values` (already known values, e.g. bound leaves) skip work when given.
    """
    order = toposort(outputs) if order is None else order
    if values is None:
        values = bind(order, env or {})
    else:
        values = dict(values)
    with np.errstate(all="ignore"):
        for node in order:
            if node in values:
                continue
            op = node.op
            if op == "const":
                values[node] = node.attrs["value"]
                continue
            if op in ("var", "param"):
                values.update(bind((node,), env or {}))
                continue
            args = [values[s] for s in node.src]
            if node.shape == () and node.dtype == "float64" and op in scalar_rules:
                try:
                    values[node] = scalar_rules[op](node, *args)
                    continue
                except _FLOAT_ERRORS:
                    values[node] = float(impl_rules[op](node, *args))
                    continue
            out = impl_rules[op](node, *args)
            values[node] = _as_dtype(out, node)
    return values


def _as_dtype(out, node: Node):
    out = np.asarray(out)
    if out.dtype != node.dtype:
        out = out.astype(node.dtype)
    if node.shape == () and node.dtype == "float64":
        return float(out)
    return out


def value(output: Node, env: Mapping | None = None, **kwargs):
    """The value of one node: `gv.value(f, x=1, y=2)` or `gv.value(f, {"x": 1, "y": 2})`."""
    env = dict(env or {}, **kwargs)
    return evaluate(output, env)[output]
