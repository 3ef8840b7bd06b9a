"""User-defined ops: a forward function, a VJP rule, and optionally a SymPy rule.

    import gradviz as gv

    cube = gv.define_op("cube", forward=lambda x: x ** 3,
                        vjp=lambda g, out, x: g * 3 * x * x,
                        sympy=lambda x: x ** 3)
    x = gv.var("x")
    gv.backprop(cube(x) + x, x=2.0).grad(x)      # 13.0
    gv.check_nodes(cube(x) + x, {"x": 2.0})      # VJP vs finite differences vs SymPy, per node

The op is elementwise: its operands share one shape (numbers are lifted, shapes broadcast), and
`forward` gets NumPy arrays (or floats) and returns one of the same shape. `vjp(g, out, *inputs)`
gets *nodes* (the upstream gradient, the op's own output node, its inputs) and returns one node
per input, built with gradviz operations, so the backward pass stays a graph that can be drawn,
translated to SymPy and differentiated again. `sympy(*args)` gets SymPy expressions.

The op joins the rule tables under `name` (and the expression language, when the name is free
there), so every tool that reads the tables sees it; backends without a lowering for it say so.
"""
from __future__ import annotations

import inspect
from typing import Callable

import numpy as np

from gradviz.core import rules
from gradviz.errors import GradvizError, ShapeError
from gradviz.core.ir import Node
from gradviz.core.sizes import broadcast_shapes

_defined: set[str] = set()
_in_parser: set[str] = set()  # user ops this module added to the expression language


def define_op(name: str, *, forward: Callable, vjp: Callable, sympy: Callable | None = None,
              arity: int | None = None) -> Callable[..., Node]:
    """Register an elementwise op and return its builder (`cube(x)`).

    `arity` is the number of inputs (default: the number of parameters of `forward`).
    Defining a user op again under the same name replaces it; built-in ops cannot be replaced.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise GradvizError(f"an op name must be an identifier, got {name!r}")
    if name in rules.shape_rules and name not in _defined:
        raise GradvizError(f"{name!r} is a built-in op and cannot be redefined")
    if name in _defined:
        remove_op(name)
    arity = _arity(forward) if arity is None else int(arity)
    if arity < 1:
        raise GradvizError("a custom op needs at least one input")

    def shape(*src: Node, **_attrs):
        if len(src) != arity:
            raise ShapeError(f"{name} takes {arity} input(s), got {len(src)}")
        first = src[0]
        for other in src[1:]:
            if other.shape != first.shape or other.dtype != first.dtype:
                raise ShapeError(f"{name}: inputs differ in shape or dtype")
        return first.shape, first.dtype

    def impl(node: Node, *values):
        return np.asarray(forward(*values), dtype=node.dtype)

    def vjp_rule(node: Node, g: Node):
        grads = vjp(g, node, *node.src)
        grads = (grads,) if isinstance(grads, Node) or grads is None else tuple(grads)
        if len(grads) != arity:
            raise GradvizError(f"the VJP rule of {name!r} returned {len(grads)} gradient(s) for "
                               f"{arity} input(s)")
        return grads

    rules.primitive(name, shape=shape, impl=impl, vjp=vjp_rule,
                    sympy=None if sympy is None else lambda sp, *args: sympy(*args))
    _defined.add(name)

    def build(*inputs) -> Node:
        return _build(name, inputs)

    build.__name__ = name
    build.__doc__ = f"The user-defined op {name!r}."
    _register_function(name, build, arity)
    return build


def remove_op(name: str) -> None:
    """Unregister a user-defined op (built-in ops cannot be removed)."""
    if name not in _defined:
        raise GradvizError(f"{name!r} is not a user-defined op")
    rules.unregister(name)
    if name in _in_parser:
        rules.functions.pop(name, None)
        _in_parser.discard(name)
    _defined.discard(name)


def defined_ops() -> list[str]:
    """The names of the user-defined ops, sorted."""
    return sorted(_defined)


def _register_function(name: str, build: Callable, arity: int) -> None:
    import gradviz.ops  # noqa: F401  (the built-in functions first: a user op never hides one)

    if name not in rules.functions:
        rules.functions[name] = rules.Function(build, arity=arity, summary="user-defined op")
        _in_parser.add(name)


def _arity(forward: Callable) -> int:
    try:
        params = inspect.signature(forward).parameters.values()
    except (TypeError, ValueError):
        raise GradvizError("cannot tell how many inputs forward takes; pass arity=") from None
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if any(p.kind == inspect.Parameter.VAR_POSITIONAL for p in params):
        raise GradvizError("forward takes *args; pass arity=")
    return sum(1 for p in params if p.kind in kinds and p.default is inspect.Parameter.empty)


def _build(name: str, inputs) -> Node:
    from gradviz.ops import broadcast_to, lift, make

    like = next((x for x in inputs if isinstance(x, Node)), None)
    nodes = [lift(x, like=like) for x in inputs]
    try:
        shape = broadcast_shapes(*(n.shape for n in nodes))
    except ValueError:
        raise ShapeError(f"{name}: shapes {[n.shape for n in nodes]} cannot be broadcast "
                         "together") from None
    return make(name, *(broadcast_to(n, shape) for n in nodes))
