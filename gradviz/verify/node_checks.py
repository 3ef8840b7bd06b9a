"""Which node is wrong: every node's local derivative checked on its own.

"analytic != numeric" for a whole graph says something is wrong, not what. Here each node is
cut out of the graph: its operands become fresh variables holding their values at the point, and
its VJP rule is compared with finite differences of that one op (and with `sympy.diff` of its
SymPy rule, for scalar nodes that have one). A tensor node is checked along a fixed random
cotangent (a dot-product test), so one finite difference per input entry suffices.

Rows name nodes as `explain`, `draw` and `steps` do (`gradviz.core.text.node_names`): `c = a + b`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from gradviz.errors import GradvizError
from gradviz.core.interpret import evaluate
from gradviz.core.ir import Graph, Node
from gradviz.verify.finite_differences import KINK, UNDEFINED, agrees, numeric_grad
from gradviz.core.rules import vjp_rules, zero_gradient
from gradviz.core.text import format_number, named_definition, node_names

OK, WRONG, SYMPY_WRONG = "ok", "wrong", "sympy wrong"
SYMPY_RTOL = 1e-6


@dataclass
class NodeCheck:
    """One edge checked: operand `operand` of `node`. `vjp` is what the node's VJP rule gives,
    `numeric` finite differences of the node alone, `symbolic` its SymPy rule's derivative (None
    without one). `status`: "ok", "wrong" (the VJP rule disagrees with finite differences),
    "sympy wrong" (only the SymPy rule does), "kink" or "undefined" (no verdict here)."""

    node: Node
    label: str
    operand: int
    operand_label: str
    vjp: object
    numeric: object
    symbolic: float | None
    status: str


@dataclass
class NodeReport:
    """The checks of every node of a graph, in topological order."""

    rows: list[NodeCheck]

    @property
    def ok(self) -> bool:
        return self.first_wrong is None

    @property
    def first_wrong(self) -> NodeCheck | None:
        """The first node (operands before users) whose rule is wrong, or None."""
        return next((r for r in self.rows if r.status in (WRONG, SYMPY_WRONG)), None)

    def to_json(self) -> list[dict]:
        return [{"node": r.label, "operand": r.operand, "input": r.operand_label,
                 "vjp": _plain(r.vjp), "numeric": _plain(r.numeric), "symbolic": r.symbolic,
                 "status": r.status} for r in self.rows]

    def __str__(self) -> str:
        return node_table(self.to_json())


def node_table(rows: list[dict]) -> str:
    """The table of `NodeReport.to_json()` rows, ending with the verdict on the first wrong node."""
    head = ("node", "input", "VJP rule", "finite diff.", "SymPy", "")
    cells = [head] + [(r["node"], r["input"], _fmt(r["vjp"]), _fmt(r["numeric"]),
                       "-" if r["symbolic"] is None else _fmt(r["symbolic"]), r["status"])
                      for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    bad = next((r for r in rows if r["status"] in (WRONG, SYMPY_WRONG)), None)
    if bad is None:
        lines.append("every node's local derivative checks out")
    elif bad["status"] == WRONG:
        lines.append(f"first wrong node: {bad['node']}: its VJP rule gives {_fmt(bad['vjp'])} "
                     f"for d/d{bad['input']}, finite differences give {_fmt(bad['numeric'])}")
    else:
        lines.append(f"first wrong node: {bad['node']}: its SymPy rule gives "
                     f"{_fmt(bad['symbolic'])} for d/d{bad['input']}, the VJP rule and finite "
                     f"differences give {_fmt(bad['vjp'])}")
    return "\n".join(lines)


def _plain(value):
    return np.asarray(value, dtype=np.float64).tolist()


def _fmt(value) -> str:
    """A scalar to 8 significant digits, a tensor as its size and largest magnitude."""
    arr = np.asarray(value, dtype=np.float64)
    if arr.shape == ():
        return format_number(arr, 8, exact_integers=False)
    return f"[{arr.size} values, |.|max {np.max(np.abs(arr)):.4g}]"


def check_nodes(output: Node, env: Mapping, *, symbolic: bool = True,
                seed: int = 0) -> NodeReport:
    """Check each node's local derivative at the point `env` on its own: VJP rule vs finite
    differences of that node alone vs SymPy (`symbolic=False` skips SymPy)."""
    from gradviz.core.autodiff import backprop
    from gradviz.ops import const, make, mul, sum as sum_, var

    graph = Graph(output)
    values = backprop(output, env).values
    rng = np.random.default_rng(seed)
    names = node_names(graph)  # the naming explain, draw and steps use
    rows = []
    for node in graph.nodes:
        if node.is_leaf:
            continue
        stand = [var(f"in{i}", s.shape, s.dtype) for i, s in enumerate(node.src)]
        alone = make(node.op, *stand, **node.attrs)
        point = {v: values[s] for v, s in zip(stand, node.src)}
        if node.shape == ():
            g, loss = const(1.0, dtype=node.dtype), alone
        else:
            w = const(rng.uniform(0.5, 1.5, size=node.shape), dtype=node.dtype)
            g, loss = w, sum_(mul(alone, w))
        grads = (None,) * len(stand) if node.op in zero_gradient else vjp_rules[node.op](alone, g)
        label = _label(node, names)
        for i, (s, v) in enumerate(zip(node.src, stand)):
            if s.op == "const":
                continue
            fd = numeric_grad(loss, point, [v])[v]
            if grads[i] is None:
                analytic = np.zeros(v.shape) if v.shape else 0.0
            else:
                analytic = evaluate(grads[i], point)[grads[i]]
            sym = _symbolic(alone, v, point) if symbolic and node.shape == () else None
            rows.append(NodeCheck(node, label, i, names[s], analytic, fd.value,
                                  sym, _status(analytic, fd, sym)))
    return NodeReport(rows)


def _status(analytic, fd, sym) -> str:
    if np.any(np.asarray(fd.status) == KINK):
        return KINK
    if np.any(np.asarray(fd.status) == UNDEFINED):
        return UNDEFINED
    if not agrees(analytic, fd):
        return WRONG
    if sym is not None and not abs(sym - float(analytic)) <= SYMPY_RTOL * max(
            1.0, abs(sym), abs(float(analytic))):
        return SYMPY_WRONG
    return OK


def _symbolic(alone: Node, v: Node, point: dict) -> float | None:
    """d alone / d v from the op's SymPy rule at the point; None where it has no rule."""
    from gradviz.verify import symbolic

    try:
        expr = symbolic.to_sympy(alone)
    except GradvizError:
        return None
    d = symbolic.diff(expr, symbolic.symbol(v.name))
    value = symbolic.value_at(d, {k.name: float(x) for k, x in point.items()})
    return value if math.isfinite(value) else None


def _label(node: Node, names: dict) -> str:
    """`c = a + b`: the node's name and its operation on its operands' names (the names of
    `gradviz.core.text.node_names`, shared with explain, draw and steps)."""
    text = named_definition(node, names)
    if len(text) > 32:
        text = text[:31] + "…"
    return f"{names[node]} = {text}"
