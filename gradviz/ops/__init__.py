"""Op builders. Importing this package registers every primitive in `gradviz.core.rules` and gives
`Node` its Python operators (`+ - * / ** @`, unary `-`, `abs()`).

The builders are the ones the op modules register with `rules.builder`, under their Python names
(`abs_`, `pow_`, `sum`, ...); `gradviz` exports the same functions under their public names.
"""
from __future__ import annotations

from gradviz.core import rules
from gradviz.core.ir import Node
from gradviz.ops import composite, conv, elementwise, leaves, linalg, reduce, shape  # noqa: F401
from gradviz.ops.leaves import lift
from gradviz.ops.shape import make, sum_to

globals().update({fn.__name__: fn for fn in rules.builders.values()})

__all__ = sorted({"lift", "make", "sum_to", *(fn.__name__ for fn in rules.builders.values())})


def _install_operators() -> None:
    from gradviz.ops.elementwise import abs_, add, div, mul, neg, pow_, sub
    from gradviz.ops.linalg import matmul
    from gradviz.ops.reduce import mean, sum
    from gradviz.ops.shape import reshape, transpose

    def swap(f):
        return lambda self, other: f(other, self)

    methods = {
        "__add__": add, "__radd__": swap(add),
        "__sub__": sub, "__rsub__": swap(sub),
        "__mul__": mul, "__rmul__": swap(mul),
        "__truediv__": div, "__rtruediv__": swap(div),
        "__pow__": pow_, "__rpow__": swap(pow_),
        "__matmul__": lambda a, b: matmul(a, lift(b, like=a)),
        "__rmatmul__": lambda a, b: matmul(lift(b, like=a), a),
        "__neg__": neg,
        "__pos__": lambda self: self,
        "__abs__": abs_,
        "sum": sum, "mean": mean, "transpose": transpose,
        "reshape": lambda self, *shape: reshape(
            self, shape[0] if len(shape) == 1 and not isinstance(shape[0], int) else shape),
        "T": property(lambda self: transpose(self)),
    }
    for name, fn in methods.items():
        setattr(Node, name, fn)


_install_operators()
