"""gradviz: the chain rule you can run, see, prove and train.

    import gradviz as gv
    x, y, z = gv.vars("x y z")
    f = (x + y) * z
    r = gv.backprop(f, x=-2, y=5, z=-4)
    r.value, r.grad(x), r.grad("z")        # -12.0, -4.0, 3.0

Names are imported lazily, so `import gradviz` (and `gradviz --help`) stay fast.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    # graph building
    "Node": "gradviz.core.ir", "Graph": "gradviz.core.ir", "toposort": "gradviz.core.ir",
    "var": "gradviz.ops", "vars": "gradviz.ops", "param": "gradviz.ops", "const": "gradviz.ops",
    "add": "gradviz.ops", "sub": "gradviz.ops", "mul": "gradviz.ops", "div": "gradviz.ops",
    "neg": "gradviz.ops", "exp": "gradviz.ops", "log": "gradviz.ops", "sqrt": "gradviz.ops",
    "sin": "gradviz.ops", "cos": "gradviz.ops", "tanh": "gradviz.ops",
    "sigmoid": "gradviz.ops", "relu": "gradviz.ops", "leaky_relu": "gradviz.ops",
    "elu": "gradviz.ops", "step": "gradviz.ops", "sign": "gradviz.ops",
    "maximum": "gradviz.ops", "minimum": "gradviz.ops", "sum": "gradviz.ops",
    "mean": "gradviz.ops", "reshape": "gradviz.ops", "transpose": "gradviz.ops",
    "broadcast_to": "gradviz.ops", "matmul": "gradviz.ops",
    "conv2d": "gradviz.ops", "max_pool2d": "gradviz.ops", "avg_pool2d": "gradviz.ops",
    "amax": "gradviz.ops", "softmax": "gradviz.ops", "log_softmax": "gradviz.ops",
    "softplus": "gradviz.ops", "flatten": "gradviz.ops", "dropout": "gradviz.ops",
    "maxout": "gradviz.ops",
    "parse": "gradviz.core.parser",
    # pictures
    "draw": "gradviz.render", "Diagram": "gradviz.render",
    # running
    "evaluate": "gradviz.core.interpret", "value": "gradviz.core.interpret",
    "grad": "gradviz.core.autodiff", "backprop": "gradviz.core.autodiff", "adjoints": "gradviz.core.autodiff",
    "Backprop": "gradviz.core.autodiff",
    "numeric_grad": "gradviz.verify.finite_differences", "NumericGradient": "gradviz.verify.finite_differences",
    "compile": "gradviz.compiler",
    # symbolic gradients, proofs, explanations, custom ops
    "to_sympy": "gradviz.verify.symbolic", "from_sympy": "gradviz.verify.symbolic",
    "symbolic_gradients": "gradviz.verify.symbolic",
    "check_claim": "gradviz.verify.claims", "check_nodes": "gradviz.verify.node_checks",
    "gradient_report": "gradviz.verify.report", "GradientReport": "gradviz.verify.report",
    "define_op": "gradviz.core.custom_ops", "remove_op": "gradviz.core.custom_ops",
    # errors
    "GradvizError": "gradviz.errors", "ParseError": "gradviz.errors",
    "ShapeError": "gradviz.errors",
}
_RENAMED = {"abs": ("gradviz.ops", "abs_"), "power": ("gradviz.ops", "pow_")}

__all__ = sorted([*_EXPORTS, *_RENAMED])


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    elif name in _RENAMED:
        module, attr = _RENAMED[name]
        value = getattr(importlib.import_module(module), attr)
    else:
        raise AttributeError(f"module 'gradviz' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return __all__
