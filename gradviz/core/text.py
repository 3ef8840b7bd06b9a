"""Nodes as infix text in the expression language (`(x + y) * z`), for messages and listings.

Built bottom-up in topological order (no recursion). A value used many times is written out at
each use, so text can grow fast on DAGs with sharing: past `MAX_TEXT` characters a sub-expression
is abbreviated.
"""
from __future__ import annotations

import math

from gradviz.core.ir import Node, toposort

MAX_TEXT = 2000
_INFIX = {"add": ("+", 1), "sub": ("-", 1), "mul": ("*", 2), "div": ("/", 2), "pow": ("**", 4)}
_FUNCTION_NAMES = {"maximum": "max", "minimum": "min", "abs": "abs"}
_ATOM = 5


def format_number(value: float, digits: int | None = None, *, decimals: int | None = None,
                  fixed_below: float = math.inf, exact_integers: bool = True,
                  rounded: bool = False) -> str:
    """A float as short text; the one number formatter of every table, diagram and message.

    - `digits`: significant digits (the `g` format: `0.333`, `1.235e+04`); None: the shortest
      text that reads back as the same float (0.1 rather than 0.1000000000000000055).
    - `decimals`: a fixed number of decimals (the `f` format: `0.80`) for |value| below
      `fixed_below`; beyond it, `digits`.
    - `exact_integers`: whole numbers below 1e15 written as integers in full (2 rather than 2.0,
      123456789 rather than 1.235e+08); off, they follow `digits` like any other number.
    - `rounded`: round to `digits` significant digits first, then write the rounded float in
      its shortest form (12350 rather than 1.235e+04; the diagrams' labels).

    nan and ±inf are written `nan`, `inf`, `-inf` whatever the options.
    """
    value = float(value)
    if not math.isfinite(value):
        return str(value)
    if rounded and digits is not None:
        shown = float(f"{value:.{digits}g}")
        value, digits = (shown if math.isfinite(shown) else value), None  # 1.8e308 stays finite
    if decimals is not None and abs(value) < fixed_below:
        return f"{value:.{decimals}f}"
    if exact_integers and abs(value) < 1e15 and value == int(value):
        return str(int(value))
    if digits is None:
        return repr(value)
    return f"{value:.{digits}g}"


def expression_text(output: Node) -> str:
    """`output` as an expression string (named intermediate nodes are written out in full)."""
    texts: dict[Node, tuple[str, int]] = {}
    for node in toposort(output):
        texts[node] = _text(node, texts)
    return texts[output][0]


def _wrap(item: tuple[str, int], min_prec: int) -> str:
    text, prec = item
    return f"({text})" if prec < min_prec else text


def _text(node: Node, texts) -> tuple[str, int]:
    op = node.op
    if op in ("var", "param"):
        return node.name, _ATOM
    if op == "const":
        value = node.attrs["value"]
        if node.shape == ():
            text = format_number(value)
            return (text, _ATOM) if value >= 0 else (text, 3)
        return f"const{list(node.shape)}", _ATOM
    args = [texts[s] for s in node.src]
    if op in _INFIX:
        symbol, prec = _INFIX[op]
        if op == "pow":  # right-associative, binds tighter than unary minus on its left
            out = f"{_wrap(args[0], prec + 1)} ** {_wrap(args[1], prec)}"
        else:
            right_prec = prec + 1 if op in ("sub", "div") else prec
            out = f"{_wrap(args[0], prec)} {symbol} {_wrap(args[1], right_prec)}"
    elif op == "neg":
        prec = 3
        out = f"-{_wrap(args[0], 4)}"
    else:
        prec = _ATOM
        extra = [format_number(v) for k, v in sorted(node.attrs.items())
                 if k in ("slope", "alpha")]
        inner = ", ".join([a[0] for a in args] + extra)
        out = f"{_FUNCTION_NAMES.get(op, op)}({inner})"
    if len(out) > MAX_TEXT:
        return f"{op}(…)", _ATOM
    return out, prec
