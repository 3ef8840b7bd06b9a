"""Rule tables: what each primitive means, one table per aspect, keyed by the primitive's name.

The op modules (`gradviz.ops.*`) fill the tables that define an op:

- `shape_rules[op](*src_nodes, **attrs) -> (shape, dtype)`: checks operands, gives the result type;
- `impl_rules[op](node, *values)`: the NumPy reference implementation (the oracle for backends);
- `scalar_rules[op](node, *floats)`: the same on Python floats, for fast scalar graphs (optional;
  may raise ValueError/ZeroDivisionError/OverflowError, the interpreter then falls back to NumPy);
- `vjp_rules[op](node, g) -> tuple`: one gradient *node* (or None) per operand, given the output
  gradient node `g`. Rules build nodes of the same primitives, so gradients are graphs.
- `scalar_vjp_rules[op](node, g, y, *xs) -> tuple`: the same VJP on Python floats (g the upstream
  gradient, y the node's value, xs its operands' values), for the fast scalar `backprop` path
  (optional; the spec tests check it gives exactly what the node rule gives).

Translation tables (SymPy, code generators, Graphviz styles) live in the modules that use them,
keyed by the same names; a registry test checks every primitive appears in each.
"""
from __future__ import annotations

from typing import Callable

shape_rules: dict[str, Callable] = {}
impl_rules: dict[str, Callable] = {}
scalar_rules: dict[str, Callable] = {}
vjp_rules: dict[str, Callable] = {}
scalar_vjp_rules: dict[str, Callable] = {}

# Primitives whose derivative is zero wherever it exists (indicator functions such as `step`).
# Autodiff does not propagate through them.
zero_gradient: set[str] = set()

# Primitives with a kink where the derivative jumps; `kinks[op](node, *values)` says whether the
# given operand values sit on one (used to report "not differentiable here").
kinks: dict[str, Callable] = {}


def primitive(name: str, *, shape: Callable, impl: Callable, vjp: Callable | None,
              scalar: Callable | None = None, scalar_vjp: Callable | None = None,
              kink: Callable | None = None) -> str:
    """Register primitive `name` in the core tables. `vjp=None` means zero gradient everywhere."""
    if name in shape_rules:
        raise ValueError(f"primitive {name!r} is already registered")
    shape_rules[name] = shape
    impl_rules[name] = impl
    if scalar is not None:
        scalar_rules[name] = scalar
    if vjp is None:
        zero_gradient.add(name)
    else:
        vjp_rules[name] = vjp
    if scalar_vjp is not None:
        scalar_vjp_rules[name] = scalar_vjp
    if kink is not None:
        kinks[name] = kink
    return name


def primitives() -> list[str]:
    """Every registered primitive (leaves excluded), sorted."""
    return sorted(shape_rules)
