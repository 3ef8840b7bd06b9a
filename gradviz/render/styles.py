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


# -- the legend -------------------------------------------------------------------------------
#: What each colour means, for the legend under a picture: (text, colour, swatch family or "").
VALUE_LEGEND = {
    "values": ("value", "#1a7f37", ""),
    "grads": ("gradient", "#cf222e", ""),
    "local": ("local derivative", "#0969da", ""),
    "kink": ("kink (no derivative)", "#bf8700", ""),
    "wrong": ("wrong derivative", "#cf222e", ""),
}
NETWORK_LEGEND = {
    "input": ("input", "#1a7f37", "var"),
    "forward": ("layer (forward)", "#0969da", "layer"),
    "loss": ("loss", "#9a6700", "function"),
    "backward": ("backward", "#bc4c00", "gradient"),
    "update": ("update", "#8250df", "param"),
}


def caption_label(lines: list[str], entries: list[tuple[str, str, str]],
                  size: int = 12) -> str | None:
    """An HTML-like DOT label: the caption `lines`, then one legend row of `entries` (text,
    colour, swatch family: a filled box of that family's colours before the text, or "" for
    text in the colour). None when there is nothing to show."""
    import html

    if not lines and not entries:
        return None
    rows = [f'<TR><TD COLSPAN="{max(1, 2 * len(entries))}">{html.escape(line)}</TD></TR>'
            for line in lines]
    if entries:
        cells = []
        for text, colour, family in entries:
            if family:
                attrs = FAMILIES[family]
                cells.append(f'<TD BGCOLOR="{attrs["fillcolor"]}" COLOR="{attrs["color"]}" '
                             f'BORDER="1" WIDTH="16" HEIGHT="12"></TD>'
                             f'<TD ALIGN="LEFT"><FONT COLOR="#24292f">{html.escape(text)}'
                             "</FONT></TD>")
            else:
                cells.append(f'<TD>&#160;</TD><TD ALIGN="LEFT"><FONT COLOR="{colour}"><B>'
                             f"{html.escape(text)}</B></FONT></TD>")
        rows.append(f"<TR>{''.join(cells)}</TR>")
    return (f'<<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="2" CELLPADDING="2">'
            f'<TR><TD COLSPAN="{max(1, 2 * len(entries))}" HEIGHT="4"></TD></TR>'
            f"{''.join(rows)}</TABLE>>")
