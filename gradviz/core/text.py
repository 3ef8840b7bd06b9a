"""Nodes as infix text in the expression language (`(x + y) * z`), for messages and listings.

Built bottom-up in topological order (no recursion). A value used many times is written out at
each use, so text can grow fast on DAGs with sharing: past `MAX_TEXT` characters a sub-expression
is abbreviated.
"""
from __future__ import annotations

import math
from typing import Iterable

from gradviz.core.ir import Graph, Node, toposort

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


#: Letters for intermediate nodes: e, f, i, l, o are left out (e**x, the output f, and 1/l/0).
LETTERS = "abcdghjkmnpqrstuvwxyz"


def node_names(graph: Graph | Node | Iterable[Node], output_name: str = "f") -> dict[Node, str]:
    """The one naming of a graph's nodes, shared by every view (`explain` and its LaTeX, `draw`,
    `steps`, `grad --nodes`): `{node: name}` for its variables, parameters and operations.

    Variables and parameters keep their names. The (first) output is `output_name` (`f`), and
    an intermediate node keeps the name given with `Node.named`, unless a variable already has
    that name. Every other operation gets a letter, in topological order (operands before
    their users): a, b, c, d, g, h, ... (e, f, i, l and o left out), skipping names in use,
    then a1, b1, ... Constants are not named."""
    if not isinstance(graph, Graph):
        graph = Graph(graph)
    nodes = graph.nodes
    output = graph.outputs[0] if graph.outputs else None
    names: dict[Node, str] = {}
    taken: set[str] = set()
    for n in nodes:
        if n.op in ("var", "param"):
            names[n] = n.name
            taken.add(n.name)
    if output is not None and not output.is_leaf:
        own = output.name if output.name and output.name not in taken else None
        names[output] = own or (output_name if output_name not in taken else None) or ""
        taken.add(names[output])
    for n in nodes:  # names given with Node.named: the first of each name keeps it
        if n.name and not n.is_leaf and n not in names and n.name not in taken:
            names[n] = n.name
            taken.add(n.name)
    fresh = _fresh_names(taken)
    for n in nodes:
        if not n.is_leaf and not names.get(n):
            names[n] = next(fresh)
    return {n: names[n] for n in nodes if n in names}  # in topological order


def _fresh_names(taken: set[str]):
    k = 0
    while True:
        for letter in LETTERS:
            name = f"{letter}{k}" if k else letter
            if name not in taken:
                yield name
        k += 1


def named_definition(node: Node, names: dict[Node, str]) -> str:
    """`node`'s operation written on its operands' names (`a + w2`, `exp(d)`): the definition
    of `names[node]`. Operands without a name (constants) are written out."""
    texts = {s: (names[s], _ATOM) if s in names else _text(s, {}) for s in node.src}
    return _text(node, texts)[0]


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
