"""Rule tables: what each primitive means, one table per aspect, keyed by the primitive's name.

Every table is filled by one call, `primitive(...)`, made in the op's own module
(`gradviz.ops.*`), so an op is defined in one place. What a primitive means:

- `shape_rules[op](*src_nodes, **attrs) -> (shape, dtype)`: checks operands, gives the result type;
- `impl_rules[op](node, *values)`: the NumPy reference implementation (the oracle for backends);
- `scalar_rules[op](node, *floats)`: the same on Python floats, for fast scalar graphs (optional;
  may raise ValueError/ZeroDivisionError/OverflowError, the interpreter then falls back to NumPy);
- `vjp_rules[op](node, g) -> tuple`: one gradient *node* (or None) per operand, given the output
  gradient node `g`. Rules build nodes of the same primitives, so gradients are graphs.
- `scalar_vjp_rules[op](node, g, y, *xs) -> tuple`: the same VJP on Python floats (g the upstream
  gradient, y the node's value, xs its operands' values), for the fast scalar `backprop` path
  (optional; the spec tests check it gives exactly what the node rule gives).

and how the other parts of gradviz translate it (plain data and callables, so that importing the
ops imports neither SymPy nor Numba; the modules that own SymPy, the compilers and the diagrams
read these tables):

- `sympy_rules[op](sp, *operands, **attrs)`: its SymPy expression, given the `sympy` module, the
  operands' SymPy expressions and the node's numeric attrs as SymPy numbers
  (`gradviz.verify.symbolic`). Ops that only mean something on tensors are in `tensor_only`.
- `scalar_code[op]`: an elementwise op as a scalar expression template for the compiled
  backends (`gradviz.compiler.templates`). Other ops have backend kernels instead.
- `styles[op] = (symbol, family)`: how a diagram draws it (`gradviz.render.styles`).

Builders (the functions users call) register with `builder`: `builders` is the public API
(`gv.<name>`), `functions` the expression language (`gradviz.parse`). `tests/test_registry.py`
checks every table in both directions.
"""
from __future__ import annotations

from dataclasses import dataclass
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

# Translations (see the module docstring).
sympy_rules: dict[str, Callable] = {}
tensor_only: set[str] = set()
scalar_code: dict[str, str] = {}
styles: dict[str, tuple[str, str]] = {}
_tensor_only = tensor_only  # the set, under a name that `primitive`'s keyword does not hide


def primitive(name: str, *, shape: Callable, impl: Callable, vjp: Callable | None,
              scalar: Callable | None = None, scalar_vjp: Callable | None = None,
              kink: Callable | None = None, sympy: Callable | None = None,
              tensor_only: bool = False, code: str | None = None,
              style: tuple[str, str] | None = None) -> str:
    """Register primitive `name` in every table. `vjp=None` means zero gradient everywhere;
    `sympy=` or `tensor_only=True`, `code=` (elementwise ops) and `style=(symbol, family)` are
    its translations."""
    if name in shape_rules:
        raise ValueError(f"primitive {name!r} is already registered")
    if sympy is not None and tensor_only:
        raise ValueError(f"primitive {name!r}: a tensor-only op has no SymPy rule")
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
    if sympy is not None:
        sympy_rules[name] = sympy
    if tensor_only:
        _tensor_only.add(name)
    if code is not None:
        scalar_code[name] = code
    if style is not None:
        styles[name] = tuple(style)
    return name



def unregister(name: str) -> None:
    """Remove primitive `name` from every table (user-defined ops are removable)."""
    for table in (shape_rules, impl_rules, scalar_rules, vjp_rules, scalar_vjp_rules, kinks,
                  sympy_rules, scalar_code, styles):
        table.pop(name, None)
    zero_gradient.discard(name)
    _tensor_only.discard(name)


def primitives() -> list[str]:
    """Every registered primitive (leaves excluded), sorted."""
    return sorted(shape_rules)


# -- builders -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Function:
    """A function callable from expression strings: `build(*nodes, *constants)`.

    `arity` node arguments (None: two or more, folded left), then up to `constants` optional
    numeric literal arguments (a slope, an alpha)."""

    build: Callable
    arity: int | None = 1
    constants: int = 0
    summary: str = ""


# public name -> builder: `gv.<name>` (gradviz/__init__.py) and `gradviz.ops.<builder.__name__>`
builders: dict[str, Callable] = {}
# name in the expression language -> Function (gradviz.core.parser)
functions: dict[str, Function] = {}


def builder(name: str | None = None, *, parse: str | None = None, arity: int | None = 1,
            constants: int = 0, summary: str = "") -> Callable:
    """Decorator: register a builder as public `gv.<name>` (default: the function's name), and,
    with `parse=`, as a function of the expression language (see `Function`)."""
    def register(fn: Callable) -> Callable:
        public = name or fn.__name__
        if public in builders:
            raise ValueError(f"builder {public!r} is already registered")
        builders[public] = fn
        if parse is not None:
            if parse in functions:
                raise ValueError(f"function {parse!r} is already in the expression language")
            functions[parse] = Function(fn, arity, constants, summary)
        return fn
    return register
