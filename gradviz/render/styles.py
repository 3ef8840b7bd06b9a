"""How each primitive is drawn: `node_style[op]` gives its symbol and its family.

Families pick the shape and fill: arithmetic gates are small circles, functions rounded boxes,
shape and reduction ops plain boxes, layer-sized ops (matmul, conv, pool) bold boxes, leaves
(variables, parameters, constants) boxes of their own colour. A registry test checks that every
primitive has an entry.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Style:
    """`symbol` is the label of the gate; `family` one of FAMILIES."""

    symbol: str
    family: str


FAMILIES = {
    # family: DOT node attributes
    "gate": {"shape": "circle", "style": "filled", "fillcolor": "#fff8c5", "color": "#9a6700",
             "margin": "0.02", "width": "0.5"},
    "function": {"shape": "box", "style": "rounded,filled", "fillcolor": "#fff8c5",
                 "color": "#9a6700"},
    "shape": {"shape": "box", "style": "filled", "fillcolor": "#f6f8fa", "color": "#6e7781"},
    "layer": {"shape": "box", "style": "filled,bold", "fillcolor": "#ddf4ff", "color": "#0969da"},
    "indicator": {"shape": "box", "style": "rounded,filled,dashed", "fillcolor": "#f6f8fa",
                  "color": "#6e7781"},
    "var": {"shape": "box", "style": "filled", "fillcolor": "#dafbe1", "color": "#1a7f37"},
    "param": {"shape": "box", "style": "filled", "fillcolor": "#fbefff", "color": "#8250df"},
    "const": {"shape": "box", "style": "filled", "fillcolor": "#f6f8fa", "color": "#6e7781"},
    "gradient": {"shape": "box", "style": "rounded,filled", "fillcolor": "#fff1e5",
                 "color": "#bc4c00"},
}

node_style: dict[str, Style] = {
    "var": Style("", "var"),
    "param": Style("", "param"),
    "const": Style("", "const"),
    "add": Style("+", "gate"),
    "sub": Style("-", "gate"),
    "mul": Style("*", "gate"),
    "div": Style("/", "gate"),
    "neg": Style("*-1", "gate"),
    "pow": Style("**", "gate"),
    "maximum": Style("max", "gate"),
    "minimum": Style("min", "gate"),
    "exp": Style("exp", "function"),
    "log": Style("log", "function"),
    "sqrt": Style("sqrt", "function"),
    "abs": Style("abs", "function"),
    "sin": Style("sin", "function"),
    "cos": Style("cos", "function"),
    "tanh": Style("tanh", "function"),
    "sigmoid": Style("sigmoid", "function"),
    "softplus": Style("softplus", "function"),
    "relu": Style("relu", "function"),
    "leaky_relu": Style("leaky relu", "function"),
    "elu": Style("elu", "function"),
    "step": Style("step", "indicator"),
    "sign": Style("sign", "indicator"),
    "broadcast_to": Style("broadcast", "shape"),
    "reshape": Style("reshape", "shape"),
    "transpose": Style("transpose", "shape"),
    "sum": Style("sum", "shape"),
    "amax": Style("max over", "shape"),
    "matmul": Style("@", "layer"),
    "conv2d": Style("conv2d", "layer"),
    "conv2d_transpose": Style("conv2d^T", "layer"),
    "conv2d_weight_grad": Style("conv2d dW", "layer"),
    "max_pool2d": Style("max pool", "layer"),
    "max_pool2d_grad": Style("max pool^T", "layer"),
    "max_pool2d_gather": Style("max pool gather", "layer"),
    "avg_pool2d": Style("avg pool", "layer"),
    "avg_pool2d_transpose": Style("avg pool^T", "layer"),
}


def style_of(op: str) -> Style:
    """The style of primitive `op`; ops registered at run time (custom ops) are drawn as
    functions named by their primitive."""
    return node_style.get(op) or Style(op, "function")
