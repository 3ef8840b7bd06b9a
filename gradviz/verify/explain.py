"""The chain rule written out, as on the slides: one factor per edge, along every path from the
output down to one variable, each factor as a formula and a number, and the paths summed.

Nodes are named as in every other view (`gradviz.core.text.node_names`: letters in topological
order, or the name given with `Node.named`; the output is `f`), and every intermediate node is
defined, also those off the paths to the variable, so the names match `draw` and `steps`. Each factor d(user)/d(operand) is the node's local derivative (its own VJP rule with an
upstream gradient of 1), shown as a formula in the names of the node's operands.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

from gradviz.core.autodiff import backprop, local_derivatives
from gradviz.errors import EvaluationError, GradvizError
from gradviz.core.interpret import evaluate
from gradviz.core.ir import Graph, Node, toposort
from gradviz.core.rules import kinks
from gradviz.core.text import expression_text, format_number, node_names

MAX_PATHS = 32  # a DAG can have exponentially many paths: list this many, sum the rest


@dataclass
class Factor:
    """d `of` / d `by` on one edge (`by` is operand number `operand` of `of`): its formula
    (expression-language text, None when the op has no SymPy rule), LaTeX, and value at the
    point. `repeated` says `of` uses the same value as more than one operand (as x*x does);
    `kink` that `of` sits on a kink here (relu at 0, max at a tie), where the value shown is
    gradviz's convention, not a derivative."""

    of: str
    by: str
    operand: int
    formula: str | None
    latex: str | None
    value: float
    repeated: bool = False
    kink: bool = False

    def symbol(self) -> str:
        """`df/dx`, or `da/dx[2]` for the second of two edges from the same value."""
        return f"d{self.of}/d{self.by}" + (f"[{self.operand + 1}]" if self.repeated else "")


@dataclass
class Path:
    """One path from the output to the variable: its factors (output end first) and product."""

    factors: list[Factor]
    product: float


@dataclass
class Definition:
    """A named intermediate node: `name = definition` (in its operands' names), and its value."""

    name: str
    definition: str
    latex: str
    value: float


@dataclass
class Explanation:
    """The chain rule for d output / d `wrt` at `point`: definitions of the named nodes, the
    listed paths, how many paths there are in all (`path_count`; those past `MAX_PATHS` are
    summed into `rest`), and the derivative by backprop."""

    expression: str
    wrt: str
    point: dict[str, float]
    value: float
    definitions: list[Definition]
    paths: list[Path]
    path_count: int
    rest: float
    derivative: float

    def to_json(self) -> dict:
        """The `explain --json` object."""
        return {
            "expression": self.expression, "wrt": self.wrt, "point": self.point,
            "value": self.value,
            "nodes": [{"name": d.name, "definition": d.definition, "value": d.value}
                      for d in self.definitions],
            "paths": [{"factors": [{"of": f.of, "by": f.by, "formula": f.formula,
                                    "value": f.value} for f in p.factors],
                       "product": p.product} for p in self.paths],
            "path_count": self.path_count,
            "derivative": self.derivative,
        }

    def text(self, digits: int = 2) -> str:
        """Plain text, factors rounded to `digits` significant digits (the slides use 2)."""
        at = ", ".join(f"{k}={format_number(v, 10)}" for k, v in self.point.items())
        lines = [f"f = {self.expression}" + (f"   at {at}" if at else ""), ""]
        width = max((len(d.name) + 3 + len(d.definition) for d in self.definitions), default=0)
        for d in self.definitions:
            lines.append(f"  {(d.name + ' = ' + d.definition).ljust(width)}   = {format_number(d.value, 4)}")
        lines.append("")
        head = f"df/d{self.wrt}"
        if not self.paths:
            lines.append(f"{head} = 0   (f does not depend on {self.wrt})")
            return "\n".join(lines)
        pad = " " * len(head)
        for k, path in enumerate(self.paths, 1):
            if self.path_count > 1:
                lines.append(f"path {k} of {self.path_count}:")
            if not path.factors:
                lines.append(f"{head} = 1")
                continue
            lines.append(f"{head} = " + " · ".join(f.symbol() for f in path.factors))
            lines.append(f"{pad} = " + "".join(f"({f.formula if f.formula is not None else '?'})"
                                                for f in path.factors))
            lines.append(f"{pad} = " + "".join(f"({format_number(f.value, digits)})" for f in path.factors))
            lines.append(f"{pad} = {format_number(path.product, 4)}")
        if any(f.repeated for p in self.paths for f in p.factors):
            lines.append("")
            lines.append("[k]: along the k-th operand, where a node uses the same value twice")
        kinks = sorted({f.of for p in self.paths for f in p.factors if f.kink})
        if kinks:
            lines.append("")
            lines.append(f"not differentiable here: {', '.join(kinks)} sits on a kink (the "
                         "one-sided derivatives differ); its factor is gradviz's convention")
        if self.path_count > 1:
            terms = [format_number(p.product, 4) for p in self.paths]
            if self.path_count > len(self.paths):
                terms.append(f"{format_number(self.rest, 4)} (the other "
                             f"{self.path_count - len(self.paths)} paths)")
            lines.append("")
            lines.append(f"{head} = sum of the paths = {' + '.join(terms)} = "
                         f"{format_number(self.derivative, 4)}")
        return "\n".join(lines)

    def latex(self, digits: int = 2) -> str:
        """LaTeX (an `aligned` block per path) for slides."""
        import sympy as sp

        def sym(name: str) -> str:
            return sp.latex(sp.Symbol(name))

        def partial(a: str, b: str) -> str:
            return rf"\frac{{\partial {sym(a)}}}{{\partial {sym(b)}}}"

        out = []
        if self.definitions:
            out.append(r"\begin{aligned}")
            out += [rf"{sym(d.name)} &= {d.latex} = {format_number(d.value, 4)} \\"
                    for d in self.definitions]
            out.append(r"\end{aligned}")
        head = partial("f", self.wrt)
        if not self.paths:
            out.append(rf"{head} = 0")
        for path in self.paths:
            if not path.factors:
                out.append(rf"{head} = 1")
                continue
            out += [r"\begin{aligned}",
                    rf"{head} &= " + " ".join(partial(f.of, f.by) for f in path.factors) + r" \\",
                    "&= " + " ".join(rf"\left({f.latex if f.latex is not None else '?'}\right)"
                                     for f in path.factors) + r" \\",
                    "&= " + "".join(f"({format_number(f.value, digits)})" for f in path.factors) + r" \\",
                    rf"&= {format_number(path.product, 4)}", r"\end{aligned}"]
        if self.path_count > 1:
            out.append(rf"{head} = \sum_{{\text{{{self.path_count} paths}}}} = "
                       f"{format_number(self.derivative, 4)}")
        return "\n".join(out)

    def _repr_latex_(self) -> str:
        """In a notebook: `.latex()`, each block in `$$ $$` (see gradviz.notebook)."""
        from gradviz.notebook import explanation_latex

        return explanation_latex(self)


def explain(output: Node, wrt: Node | str, env: Mapping) -> Explanation:
    """The chain rule for d output / d wrt at the point `env` ({name or node: value}), path by
    path (see `Explanation.text`, `.latex` and `.to_json`)."""
    order = toposort(output)
    if isinstance(wrt, str):
        found = [n for n in order if n.op in ("var", "param") and n.name == wrt]
        if not found:
            raise GradvizError(f"the expression does not use {wrt!r}")
        wrt = found[0]
    if output.shape != ():
        raise GradvizError("explain needs a scalar expression")
    result = backprop(output, env)
    values = result.values
    if not math.isfinite(float(values[output])):
        raise EvaluationError(f"the expression is not defined at this point (its value is "
                              f"{values[output]})")

    on_path = _reaching(order, wrt)
    names = node_names(Graph(output, order))
    counts = _path_counts(order, on_path, wrt)

    edges: dict[Node, list[tuple[int, Factor]]] = {}
    for node in order:
        if node in on_path and not node.is_leaf:
            edges[node] = _factors(node, on_path, names, values)

    paths, listed_sum = [], 0.0
    for path in _walk(output, wrt, edges, on_path):
        if len(paths) == MAX_PATHS:
            break
        product = math.prod(f.value for f in path)
        paths.append(Path(path, product))
        listed_sum += product
    derivative = float(result.grad(wrt))
    total = counts.get(output, 0)
    definitions = [_definition(n, names, values) for n in order
                   if n in names and not n.is_leaf]
    point = {n.name: float(values[n]) for n in order if n.op in ("var", "param")}
    rest = derivative - listed_sum if total > len(paths) else 0.0
    return Explanation(expression_text(output), wrt.name, point, float(values[output]),
                       definitions, paths, total, rest, derivative)


def _reaching(order: list[Node], wrt: Node) -> set[Node]:
    """The nodes with a path down to `wrt` (wrt included)."""
    reach = {wrt}
    for node in order:
        if any(s in reach for s in node.src):
            reach.add(node)
    return reach


def _path_counts(order: list[Node], on_path: set[Node], wrt: Node) -> dict[Node, int]:
    counts = {wrt: 1}
    for node in order:
        if node in on_path and node is not wrt:
            counts[node] = sum(counts[s] for s in node.src if s in on_path)
    return counts


def _operand_symbols(node: Node, names: dict[Node, str]) -> dict:
    """The node's named operands as SymPy symbols (constants stay numbers)."""
    import sympy

    return {s: sympy.Symbol(names[s], real=True) for s in node.src if s in names}


SHORTER_BY = 3  # operations a factor must save to be written with its own node's name


def _formula(graph: Node, substitute: dict, own: dict | None = None):
    """(text, latex) of a local formula in named operands, or (None, None) without SymPy rule.

    With `own` ({node: its symbol}), the formula may instead be written with the node's own
    name when that is much shorter: the sigmoid's s*(1 - s), not its expansion in exp."""
    import sympy

    from gradviz.verify import symbolic

    try:
        expr = symbolic.tidy(symbolic.to_sympy(graph, substitute))
        if own:
            alt = symbolic.tidy(symbolic.to_sympy(graph, {**substitute, **own}))
            if sympy.count_ops(alt) + SHORTER_BY <= sympy.count_ops(expr):
                expr = alt
    except GradvizError:
        return None, None
    return symbolic.formula_text(expr), symbolic.latex(expr)


def _factors(node: Node, on_path: set[Node], names, values) -> list:
    import sympy

    locals_ = local_derivatives(node)
    kink_rule = kinks.get(node.op)
    kink = bool(kink_rule and kink_rule(node, *(values[s] for s in node.src)))
    substitute = _operand_symbols(node, names)
    own = {node: sympy.Symbol(names[node], real=True)}
    out = []
    for i, (operand, local) in enumerate(zip(node.src, locals_)):
        if operand not in on_path:
            continue
        repeated = node.src.count(operand) > 1
        if local is None:  # no gradient flows through this edge (a step, a sign)
            out.append((i, Factor(names[node], names[operand], i, "0", "0", 0.0, repeated,
                                  kink)))
            continue
        value = float(evaluate(local, values=values)[local])
        text, tex = _formula(local, substitute, own)
        out.append((i, Factor(names[node], names[operand], i, text, tex, value, repeated,
                              kink)))
    return out


def _definition(node: Node, names, values) -> Definition:
    text, tex = _formula(node, _operand_symbols(node, names))
    if text is None:
        text = expression_text(node)
        tex = text
    return Definition(names[node], text, tex, float(values[node]))


def _walk(output: Node, wrt: Node, edges: dict, on_path: set[Node]):
    """Every path from output to wrt as a list of factors, in operand order (iteratively)."""
    if output not in on_path:
        return
    stack: list[tuple[Node, list]] = [(output, [])]
    while stack:
        node, factors = stack.pop()
        if node is wrt:
            yield factors
            continue
        for i, factor in reversed(edges[node]):
            stack.append((node.src[i], factors + [factor]))
