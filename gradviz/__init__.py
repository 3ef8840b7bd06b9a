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
    # graph building (the op builders: every function the op modules register with
    # `gradviz.core.rules.builder`, looked up in `_builders()`)
    "Node": "gradviz.core.ir", "Graph": "gradviz.core.ir", "toposort": "gradviz.core.ir",
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


def _builders() -> dict:
    """Public name -> op builder (importing the ops registers them)."""
    importlib.import_module("gradviz.ops")
    return importlib.import_module("gradviz.core.rules").builders


def __getattr__(name: str):
    if name == "__all__":  # computed on first use: it needs the ops, `import gradviz` does not
        value = sorted([*_EXPORTS, *_builders()])
    elif name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    elif not name.startswith("__") and name in _builders():
        value = _builders()[name]
    else:
        raise AttributeError(f"module 'gradviz' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return __getattr__("__all__")
