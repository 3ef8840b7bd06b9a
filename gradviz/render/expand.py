"""Composite ops drawn as the gates they stand for: `sigmoid(x)` as the slides' chain
`*-1 -> exp -> +1 -> 1/x`."""
from __future__ import annotations

from gradviz.core.ir import Node, toposort


def _sigmoid_gates(x: Node) -> Node:
    from gradviz.ops import add, div, exp, mul

    return div(1.0, add(exp(mul(x, -1.0)), 1.0))


EXPANSIONS = {"sigmoid": _sigmoid_gates}


def expand_composites(output: Node) -> Node:
    """The same function with every scalar node of an expandable op (sigmoid) replaced by its
    gate chain; variables are kept, so values given for the original graph still apply."""
    mapping: dict[Node, Node] = {}
    for node in toposort(output):
        src = tuple(mapping[s] for s in node.src)
        if node.op in EXPANSIONS and node.shape == ():
            new = EXPANSIONS[node.op](*src)
            if node.name:
                new = new.named(node.name)
        elif all(a is b for a, b in zip(src, node.src)):
            new = node
        else:
            new = Node(node.op, src, node.attrs, node.shape, node.dtype, node.name)
        mapping[node] = new
    return mapping[output]
