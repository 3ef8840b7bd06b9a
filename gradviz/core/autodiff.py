"""Reverse-mode autodiff. The backward pass is a graph of the same primitives.

`adjoints(output)` walks the forward graph in reverse topological order, asks each primitive's
VJP rule for one gradient node per operand, and sums the contributions a node receives from its
users with `add` (a reused value, such as `x` in `x*x`, gets one contribution per edge). The
result can be evaluated, drawn, translated to SymPy, compiled, or differentiated again.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np

from gradviz.errors import GradvizError
from gradviz.core.interpret import evaluate
from gradviz.core.ir import Graph, Node, toposort
from gradviz.ops import add, const
from gradviz.core.rules import scalar_vjp_rules, vjp_rules, zero_gradient

VARIABLE_OPS = ("var", "param")


@dataclass
class Adjoints:
    """The backward graph of one output.

    `of[n]` is the node computing d output / d n, for every node `n` on a path from a variable
    to the output. `edges[(user, i)]` is the contribution that flows into operand `i` of `user`
    (upstream gradient times local derivative); `of[n]` is the sum of n's edge contributions.
    """

    output: Node
    seed: Node
    of: dict[Node, Node] = field(default_factory=dict)
    edges: dict[tuple[Node, int], Node] = field(default_factory=dict)


def _depends_on_variables(order: Sequence[Node]) -> set[Node]:
    active: set[Node] = set()
    for node in order:
        if node.op in VARIABLE_OPS:
            active.add(node)
        elif node.op not in zero_gradient:
            for s in node.src:
                if s in active:
                    active.add(node)
                    break
    return active


def adjoints(output: Node, seed: Node | None = None) -> Adjoints:
    """Build the backward graph of `output` (seeded with ones, or with `seed`)."""
    if seed is None:
        seed = const(np.ones(output.shape) if output.shape else 1.0, dtype=output.dtype)
    elif seed.shape != output.shape:
        raise GradvizError(f"seed shape {seed.shape} does not match output shape {output.shape}")
    order = toposort(output)
    active = _depends_on_variables(order)
    result = Adjoints(output, seed)
    incoming: dict[Node, list[Node]] = {output: [seed]} if output in active else {}
    for node in reversed(order):
        parts = incoming.pop(node, None)
        if parts is None:
            continue
        g = parts[0]
        for part in parts[1:]:
            g = add(g, part)
        result.of[node] = g
        if node.op in VARIABLE_OPS or node.op == "const":
            continue
        contributions = vjp_rules[node.op](node, g)
        for i, (operand, contribution) in enumerate(zip(node.src, contributions)):
            if contribution is None or operand not in active:
                continue
            result.edges[(node, i)] = contribution
            incoming.setdefault(operand, []).append(contribution)
    return result


def _zeros_like(node: Node) -> Node:
    return const(np.zeros(node.shape) if node.shape else 0.0, dtype=node.dtype)


def grad(output: Node, wrt: Node | Sequence[Node]):
    """Gradient node(s) of `output` (a scalar) with respect to `wrt` (a node or a list).

    The result is an ordinary graph: evaluate it, draw it, or take `grad` of it again.
    Nodes the output does not depend on get a zero constant.
    """
    if output.shape != ():
        raise GradvizError(f"grad needs a scalar output, got shape {output.shape} "
                           "(reduce it with sum() or mean() first)")
    adj = adjoints(output)
    if isinstance(wrt, Node):
        return _adjoint_or_zero(adj, wrt)
    return [_adjoint_or_zero(adj, w) for w in wrt]


def _adjoint_or_zero(adj: Adjoints, node: Node) -> Node:
    found = adj.of.get(node)
    return _zeros_like(node) if found is None else found


class Backprop:
    """Values and gradients of every node of a graph at one point (see `backprop`).

    `values[n]` and `grads[n]` (d output / d n) for the nodes of the forward graph,
    `edge_grads[(user, i)]` the contribution along each edge, and `adjoints` the backward graph.
    """

    def __init__(self, output: Node, order: list[Node], values: dict, grads: dict,
                 edge_grads: dict | Callable[[], dict], adjoints_: Adjoints | None = None):
        self.output = output
        self.graph = Graph(output, order)
        self.values = values
        self.grads = grads
        self._edge_grads = edge_grads
        self._adjoints = adjoints_

    @property
    def edge_grads(self) -> dict[tuple[Node, int], object]:
        """{(user, operand index): contribution along that edge}."""
        if callable(self._edge_grads):
            self._edge_grads = self._edge_grads()
        return self._edge_grads

    @property
    def adjoints(self) -> Adjoints:
        """The backward graph (built on first use when the fast scalar path computed values)."""
        if self._adjoints is None:
            self._adjoints = adjoints(self.output)
        return self._adjoints

    @property
    def value(self):
        """The output's value."""
        return self.values[self.output]

    def _find(self, key) -> Node:
        if isinstance(key, Node):
            return key
        matches = [n for n in self.graph.nodes if n.name == key]
        if not matches:
            raise GradvizError(f"no node named {key!r} in the graph")
        return matches[0]

    def grad(self, key):
        """d output / d key, where key is a node or a variable's name (0 if it has no effect)."""
        node = self._find(key)
        if node in self.grads:
            return self.grads[node]
        return 0.0 if node.shape == () and node.dtype == "float64" else np.zeros(node.shape,
                                                                                  node.dtype)

    def __getitem__(self, key):
        return self.grad(key)

    @property
    def variables(self) -> list[Node]:
        return self.graph.variables()

    def gradients(self) -> dict[str, object]:
        """{variable name: gradient} for every variable and parameter."""
        return {n.name: self.grad(n) for n in self.variables}

    def __repr__(self) -> str:
        grads = ", ".join(f"{k}={v!r}" for k, v in self.gradients().items())
        return f"<Backprop value={self.value!r} grads: {grads}>"

    def _repr_svg_(self) -> str | None:
        """In a notebook: the diagram with values and gradients (see gradviz.notebook)."""
        from gradviz.notebook import backprop_svg

        return backprop_svg(self)


def backprop(output: Node, env: Mapping | None = None, **values) -> Backprop:
    """Forward and backward pass in one call: the value of every node and the gradient of the
    output with respect to every node (intermediates too), at the point given by `env` or by
    keyword (`gv.backprop(f, x=-2, y=5, z=-4)`).

    Graphs of float64 scalars run on Python floats through `scalar_vjp_rules`; every other graph
    (and any scalar graph where a float rule raises, e.g. 1/0) evaluates the backward graph.
    """
    env = dict(env or {}, **values)
    order = toposort(output)
    forward = evaluate(output, env, order=order)
    fast = _scalar_backward(output, order, forward)
    if fast is not None:
        return Backprop(output, order, forward, *fast)
    adj = adjoints(output)
    targets: list[Node] = [*adj.of.values(), *adj.edges.values()]
    every = evaluate(targets, env, values=forward)
    grads = {n: every[g] for n, g in adj.of.items()}
    edge_grads = {e: every[g] for e, g in adj.edges.items()}
    return Backprop(output, order, forward, grads, edge_grads, adj)


def _scalar_backward(output: Node, order: list[Node], values: dict):
    """Gradients on Python floats, in exactly the order and arithmetic of the backward graph;
    None when the graph is not all float64 scalars with float VJP rules, or a rule raises."""
    rules = scalar_vjp_rules
    active: set[Node] = set()
    for node in order:  # one pass: is every node a float64 scalar with a float rule? which
        op = node.op    # nodes depend on a variable (as in `_depends_on_variables`)?
        if node.shape != () or node.dtype != "float64":
            return None
        if op in rules:
            for s in node.src:
                if s in active:
                    active.add(node)
                    break
        elif op == "var" or op == "param":
            active.add(node)
        elif op != "const" and op not in zero_gradient:
            return None
    grads: dict[Node, float] = {output: 1.0} if output in active else {}
    local: dict[Node, tuple] = {}
    get = grads.get
    try:
        for node in reversed(order):
            g = get(node)
            if g is None:
                continue
            rule = rules.get(node.op)
            if rule is None:  # a leaf, or a zero-gradient op such as step
                continue
            src = node.src
            if len(src) == 2:
                contributions = rule(node, g, values[node], values[src[0]], values[src[1]])
            else:
                contributions = rule(node, g, values[node], *map(values.__getitem__, src))
            local[node] = contributions
            for operand, c in zip(src, contributions):
                if operand in active:
                    previous = get(operand)
                    grads[operand] = c if previous is None else previous + c
    except (ValueError, ZeroDivisionError, OverflowError):
        return None

    def edge_grads() -> dict:
        return {(node, i): c for node, cs in local.items()
                for i, (operand, c) in enumerate(zip(node.src, cs)) if operand in active}

    return grads, edge_grads


_NO_VJP = frozenset({"var", "param", "const"})


def local_derivatives(node: Node) -> tuple[Node | None, ...]:
    """d node / d operand for each operand of a scalar `node`, as nodes (None where the operand
    gets no gradient, e.g. through `step`): the factors written on the edges of a chain-rule
    diagram. Built by the node's own VJP rule with an upstream gradient of 1."""
    if node.is_leaf:
        return ()
    if node.shape != ():
        raise GradvizError("local derivatives are defined here for scalar nodes only")
    if node.op in zero_gradient:
        return tuple(None for _ in node.src)
    return tuple(vjp_rules[node.op](node, const(1.0, dtype=node.dtype)))
