"""The three-way gradient check: backprop vs finite differences vs SymPy, and the verdict.

    import gradviz as gv
    report = gv.gradient_report("(x+y)*z", at={"x": -2, "y": 5, "z": -4})
    report.agree                       # True
    report.rows[0].backprop            # -4.0 (df/dx), also .numeric, .symbolic, .formula
    print(report.text())               # the table `gradviz grad` prints

`gradviz grad` prints `report.text()` (or `report.to_json()` with `--json`) and exits 1 unless
`report.ok`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable, Mapping

from gradviz.core.ir import Graph, Node
from gradviz.core.points import require_known, require_values
from gradviz.core.text import expression_text, format_number
from gradviz.errors import EvaluationError, GradvizError

if TYPE_CHECKING:
    from gradviz.verify.node_checks import NodeReport

SYMBOLIC_RTOL = 1e-9  # backprop and the SymPy formula compute the same real number
FD_RTOL, FD_ATOL = 1e-6, 1e-8  # backprop vs finite differences, plus 10 x the FD error bound
# finite differences confirm nothing when their error bound is not small next to the derivative
FD_USEFUL = 1e-3
AGREE = "backprop, finite differences and SymPy agree"
DISAGREE = "gradients DISAGREE"
TOLERANCE = (f"tolerance: backprop vs finite diff. {FD_ATOL:g} + {FD_RTOL:g}*|df| + 10*(± error); "
             f"vs symbolic {SYMBOLIC_RTOL:g}*max(1, |df|)")


def _json_number(value):
    """A float for JSON: None where it is not finite (JSON has no nan or inf; `status` and
    `verdict` say why)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _fmt(value: float) -> str:
    return format_number(value, 10, exact_integers=False)


@dataclass
class GradientRow:
    """One partial derivative df/d`name` by the three methods: `backprop`, `numeric` (finite
    differences, with its `numeric_error` and `status`: "ok", "kink" or "undefined"), and
    `symbolic` (the SymPy formula's value; None without SymPy) with its `formula`, `latex` and
    `proof` status ("proved", ...). `agree` is None where finite differences cannot judge (a
    kink, undefined nearby)."""

    name: str
    backprop: float
    numeric: float
    symbolic: float | None
    formula: str | None
    numeric_error: float
    status: str
    proof: str | None
    agree: bool | None
    latex: str | None = None
    detail: str | None = None  # "jump" (a kink where f jumps), "overflow", "imprecise"
    symbolic_note: str | None = None  # why there is no SymPy value ("gave up after 5 s")

    @property
    def verdict(self) -> str:
        """The row's last column: "agree", "DISAGREE", "not differentiable here (kink)", ..."""
        if self.status == "kink":
            return f"not differentiable here ({'jump' if self.detail == 'jump' else 'kink'})"
        if self.status == "undefined":
            return ("undefined: value overflows" if self.detail == "overflow" else
                    "undefined nearby")
        if self.detail == "imprecise":
            return "finite differences too imprecise here"
        if not self.agree:
            return "DISAGREE"
        if self.proof is None:
            return f"agree ({self.symbolic_note or 'no SymPy'})"
        return "agree" if self.proof == "proved" else "agree (symbolic routes not proved equal)"

    @property
    def compared(self) -> str:
        """Which methods this row compared: "all", "no sympy" (backprop and finite differences
        only), or "none" (finite differences could not judge: a kink, a jump, undefined)."""
        if self.agree is None:
            return "none"
        return "all" if self.proof is not None else "no sympy"

    def to_json(self) -> dict:
        out = {"backprop": _json_number(self.backprop), "numeric": _json_number(self.numeric),
               "symbolic": _json_number(self.symbolic), "formula": self.formula,
               "numeric_error": _json_number(self.numeric_error), "status": self.status,
               "proof": self.proof, "agree": self.agree, "verdict": self.verdict}
        if self.detail is not None:
            out["detail"] = self.detail
        if self.symbolic_note is not None:
            out["symbolic_note"] = self.symbolic_note
        if self.latex is not None:
            out["latex"] = self.latex
        return out


@dataclass
class GradientReport:
    """The value of `expression` at `point` and one `GradientRow` per variable; with
    `symbolic_error` when SymPy could not be used, and `nodes` (a `NodeReport`) when every
    node's local derivative was checked too."""

    expression: str
    point: dict[str, float]
    value: float
    rows: list[GradientRow]
    symbolic_error: str | None = None
    nodes: NodeReport | None = field(default=None, repr=False)

    @property
    def agree(self) -> bool:
        """No method disagrees (kinks and undefined neighbourhoods are not disagreement)."""
        return all(row.agree is not False for row in self.rows)

    @property
    def wrong_node(self) -> str | None:
        """The label of the first node whose local derivative is wrong (with `nodes`)."""
        if self.nodes is None or self.nodes.ok:
            return None
        return self.nodes.first_wrong.label

    @property
    def ok(self) -> bool:
        """The methods agree and no node is wrong: `gradviz grad`'s exit code 0."""
        return self.agree and self.wrong_node is None

    @property
    def summary(self) -> str:
        """The last line of the table: which methods were compared on which partial
        derivatives, and what was not compared and why."""
        names = lambda rows: ", ".join(f"df/d{r.name}" for r in rows)  # noqa: E731
        bad = [r for r in self.rows if r.agree is False]
        if bad:
            return f"{DISAGREE}: {names(bad)}"
        full = [r for r in self.rows if r.compared == "all"]
        if len(full) == len(self.rows) and all(r.proof == "proved" for r in full):
            return AGREE
        parts = []
        if full:
            parts.append(f"backprop, finite differences and SymPy agree on {names(full)}")
        partial = [r for r in self.rows if r.compared == "no sympy"]
        if partial:
            why = partial[0].symbolic_note or "no SymPy"
            parts.append(f"backprop and finite differences agree on {names(partial)} ({why})")
        skipped = [r for r in self.rows if r.compared == "none"]
        for verdict in dict.fromkeys(r.verdict for r in skipped):
            rows = [r for r in skipped if r.verdict == verdict]
            parts.append(f"{names(rows)} not compared: {verdict}")
        return "; ".join(parts)

    def row(self, name: str) -> GradientRow:
        """The row of variable `name`."""
        for row in self.rows:
            if row.name == name:
                return row
        raise KeyError(name)

    def to_json(self) -> dict:
        """The `gradviz grad --json` object."""
        out = {"expression": self.expression, "point": self.point, "value": self.value,
               "gradients": {row.name: row.to_json() for row in self.rows},
               "agree": self.agree, "summary": self.summary}
        if self.symbolic_error is not None:
            out["symbolic_error"] = self.symbolic_error
        if self.nodes is not None:
            out["nodes"] = self.nodes.to_json()
            out["wrong_node"] = self.wrong_node
        return out

    def table(self) -> str:
        """The value, the three methods side by side, the formulas and the summary line."""
        point = ", ".join(f"{k}={_fmt(v)}" for k, v in self.point.items())
        lines = [f"f = {self.expression}" + (f"   at {point}" if point else ""),
                 f"f = {_fmt(self.value)}", ""]
        cells = [("", "backprop", "finite diff.", "± error", "symbolic", "")]
        for r in self.rows:
            fd_missing = not math.isfinite(r.numeric)
            cells.append((f"df/d{r.name}", _fmt(r.backprop), "-" if fd_missing else _fmt(r.numeric),
                          "-" if fd_missing else f"{r.numeric_error:.1e}",
                          "-" if r.symbolic is None else _fmt(r.symbolic), r.verdict))
        widths = [max(len(c[i]) for c in cells) for i in range(len(cells[0]))]
        lines += ["  ".join(cell.ljust(w) for cell, w in zip(c, widths)).rstrip() for c in cells]
        lines.append("")
        if self.symbolic_error is not None:
            lines.append(f"no SymPy formulas: {self.symbolic_error}")
        elif self.rows and self.rows[0].symbolic_note is not None:
            lines.append(f"no SymPy formulas: SymPy "
                         f"{self.rows[0].symbolic_note.removeprefix('symbolic: ')}")
        for r in self.rows:
            if r.latex is not None:
                lines.append(f"\\frac{{\\partial f}}{{\\partial {r.name}}} = {r.latex}")
            elif r.formula is not None:
                lines.append(f"df/d{r.name} = {r.formula}")
        lines += ["", TOLERANCE, self.summary]
        return "\n".join(lines)

    def text(self) -> str:
        """What `gradviz grad` prints: the table, and the node checks when there are any."""
        if self.nodes is None:
            return self.table()
        from gradviz.verify.node_checks import node_table

        return f"{self.table()}\n\n{node_table(self.nodes.to_json())}"

    def _repr_html_(self) -> str:
        """In a notebook: the table as HTML (see gradviz.notebook)."""
        from gradviz.notebook import report_html

        return report_html(self)


def gradient_report(expression: str | Node, at: Mapping[str, float] | None = None,
                    wrt: Iterable[str | Node] | None = None, *, latex: bool = False,
                    nodes: bool = False, timeout: float | None = None) -> GradientReport:
    """Check the partial derivatives of `expression` (a string, or a scalar node) at the point
    `at` ({name: value}, one per variable) three ways: backprop, finite differences and SymPy
    (formula and value). `wrt` picks the variables (default: all). With `latex`, each formula
    in LaTeX too; with `nodes`, each node's local derivative is also checked on its own.
    SymPy runs in a child process killed after `timeout` seconds (default
    `symbolic.DEFAULT_TIMEOUT`); then the rows say "symbolic: gave up after N s" and the
    verdict rests on backprop and finite differences.

    Raises `GradvizError` for a missing or unknown variable, `EvaluationError` where the
    expression is not defined at the point.
    """
    from gradviz.core.autodiff import backprop
    from gradviz.verify.finite_differences import numeric_grad
    from gradviz.verify import symbolic as sym_module

    text, output, variables = _expression(expression)
    point = {(k.name if isinstance(k, Node) else k): v for k, v in (at or {}).items()}
    require_values(variables, point)
    names = [w.name if isinstance(w, Node) else w for w in (wrt or [])]
    require_known(names, variables, "--wrt")
    names = names or list(variables)
    result = backprop(output, point)
    if not math.isfinite(result.value):
        raise EvaluationError(f"the expression is not defined at this point (its value is "
                              f"{result.value})")
    wanted = [variables[n] for n in names]
    numeric = numeric_grad(output, point, wanted)
    timeout = sym_module.DEFAULT_TIMEOUT if timeout is None else timeout
    note = None
    try:
        found = sym_module.bounded(timeout, _symbolic_rows, output, wanted, point, latex)
        symbolic = {variables[name]: row for name, row in found.items()}
        symbolic_error = None
    except sym_module.GaveUp as exc:
        symbolic, symbolic_error = {}, None
        note = f"symbolic: gave up after {exc.seconds:g} s"
    except GradvizError as exc:  # e.g. a user-defined op without a SymPy rule
        symbolic, symbolic_error = {}, str(exc)
    rows = [_row(name, variables[name], result, numeric, symbolic, point, latex)
            for name in names]
    for row in rows:
        row.symbolic_note = note
    report = GradientReport(text, point, result.value, rows, symbolic_error)
    if nodes:
        from gradviz.verify.node_checks import check_nodes

        report.nodes = check_nodes(output, point)
    return report


def _expression(expression: str | Node) -> tuple[str, Node, dict[str, Node]]:
    """(text, output node, {name: variable}) of a string or a node."""
    if isinstance(expression, str):
        from gradviz.core.parser import parse

        variables: dict[str, Node] = {}
        output = parse(expression, variables)
        return expression, output, variables
    if not isinstance(expression, Node):
        raise GradvizError(f"expected an expression string or a node, got "
                           f"{type(expression).__name__}")
    variables = {n.name: n for n in Graph(expression).variables()}
    return expression_text(expression), expression, variables


@dataclass
class _Symbolic:
    """What the report needs from SymPy for one variable (plain data: it crosses a process)."""

    value: float
    text: str
    latex: str | None
    proof: str
    equal: bool | None


def _symbolic_rows(output: Node, wanted: list[Node], point: dict, latex: bool) -> dict:
    """{variable name: _Symbolic}: SymPy's formula, its value at the point, and the proof."""
    from gradviz.verify.symbolic import symbolic_gradients

    found = symbolic_gradients(output, wanted, around=point)
    return {node.name: _Symbolic(g.value(point), g.text(), g.latex() if latex else None,
                                 g.proof.status, g.proof.equal) for node, g in found.items()}


def _row(name, node, result, numeric, symbolic, point, latex: bool) -> GradientRow:
    from gradviz.verify.finite_differences import agrees

    fd = numeric[node]
    sym = symbolic.get(node)
    backprop = result.grad(node)
    agree = agrees(backprop, fd, rtol=FD_RTOL, atol=FD_ATOL)
    detail = fd.detail
    if agree is True and 10 * fd.error > FD_USEFUL * max(abs(backprop), abs(fd.value)) + FD_ATOL:
        agree, detail = None, "imprecise"  # an error bar this wide would confirm anything
    sym_value = None if sym is None else sym.value
    if agree is not None and sym is not None:
        agree = agree and sym.equal is not False and _close(sym_value, backprop)
    return GradientRow(name, backprop, fd.value, sym_value,
                       None if sym is None else sym.text, fd.error, fd.status,
                       None if sym is None else sym.proof, agree,
                       sym.latex if latex and sym is not None else None, detail)


def _close(a: float, b: float) -> bool:
    if a == b:  # equal infinities too
        return True
    return abs(a - b) <= SYMBOLIC_RTOL * max(abs(a), abs(b), 1.0)
