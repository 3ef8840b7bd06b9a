"""Op builders. Importing this package registers every primitive in `gradviz.core.rules` and gives
`Node` its Python operators (`+ - * / ** @`, unary `-`, `abs()`)."""
from __future__ import annotations

from gradviz.core.ir import Node
from gradviz.ops.elementwise import (abs_, add, cos, div, elu, exp, leaky_relu, log, maximum,
                                     minimum, mul, neg, pow_, relu, sigmoid, sign, sin, sqrt, step,
                                     sub, tanh)
from gradviz.ops.leaves import const, lift, param, var, vars
from gradviz.ops.linalg import matmul
from gradviz.ops.conv import (amax, avg_pool2d, conv2d, dropout, flatten, log_softmax, max_pool2d,
                            maxout, softmax, softplus)
from gradviz.ops.reduce import mean, sum
from gradviz.ops.shape import broadcast_to, make, reshape, sum_to, transpose

__all__ = ["abs_", "add", "broadcast_to", "const", "cos", "div", "elu", "exp", "leaky_relu",
           "lift", "log", "make", "matmul", "maximum", "mean", "minimum", "mul", "neg", "param",
           "pow_", "relu", "reshape", "sigmoid", "sign", "sin", "sqrt", "step", "sub", "sum",
           "sum_to", "tanh", "transpose", "var", "vars",
           "amax", "avg_pool2d", "conv2d", "dropout", "flatten", "log_softmax", "max_pool2d",
           "maxout", "softmax", "softplus"]


def _install_operators() -> None:
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
