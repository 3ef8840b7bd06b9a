"""How each primitive is drawn: `node_style[op]` gives its symbol and its family.

Families pick the shape and fill: arithmetic gates are small circles, functions rounded boxes,
shape and reduction ops plain boxes, layer-sized ops (matmul, conv, pool) bold boxes, leaves
(variables, parameters, constants) boxes of their own colour. Each op registers its style where
it is defined; a registry test checks that every primitive has one.
"""
from __future__ import annotations

from dataclasses import dataclass

from gradviz import ops  # noqa: F401  (registers every primitive's style)
from gradviz.core import rules


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

# The leaves' styles, then every primitive's, registered where the op is defined (`style=` of
# `gradviz.core.rules.primitive`).
node_style: dict[str, Style] = {
    "var": Style("", "var"),
    "param": Style("", "param"),
    "const": Style("", "const"),
    **{op: Style(*style) for op, style in rules.styles.items()},
}


def style_of(op: str) -> Style:
    """The style of primitive `op`; ops registered at run time (custom ops) are drawn as
    functions named by their primitive."""
    return node_style.get(op) or Style(op, "function")
