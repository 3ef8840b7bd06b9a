"""The one intermediate representation: a frozen `Node` per value, scalar or tensor.

A node is an operation (`op`, a primitive's name) applied to an ordered tuple of operand nodes
(`src`), with static attributes (`attrs`), a `shape` (`()` for a scalar) and a `dtype`. Leaves are
nodes too: `var` and `param` (given values at evaluation time) and `const` (value in attrs).
Runtime values never live on nodes: evaluation returns `{node: value}`.

Nodes are numbered in creation order (`uid`). An operand always exists before the nodes that use
it, so sorting by `uid` is a topological order; it is deterministic for a given construction.
"""
from __future__ import annotations

import functools
import itertools
import math
from operator import attrgetter
from typing import Iterable, Iterator

LEAF_OPS = frozenset({"var", "param", "const"})
DTYPES = ("float64", "float32")

_uids = itertools.count()
_set = object.__setattr__


class Node:
    """One value in an expression graph. Immutable; compared and hashed by identity.

    Build nodes with the functions in `gradviz` (`var`, `const`, `exp`, ...) and Python operators
    (`+ - * / ** @`, unary `-`), not with this constructor.
    """

    __slots__ = ("op", "src", "attrs", "shape", "dtype", "name", "uid", "__weakref__")

    op: str
    src: tuple["Node", ...]
    attrs: dict
    shape: tuple[int, ...]
    dtype: str
    name: str | None
    uid: int

    def __init__(self, op: str, src: tuple = (), attrs: dict | None = None,
                 shape: tuple = (), dtype: str = "float64", name: str | None = None):
        _set(self, "op", op)
        _set(self, "src", src)
        _set(self, "attrs", attrs if attrs is not None else {})
        _set(self, "shape", shape)
        _set(self, "dtype", dtype)
        _set(self, "name", name)
        _set(self, "uid", next(_uids))

    def __setattr__(self, key, value):
        raise AttributeError(f"Node is immutable (tried to set {key!r})")

    def __delattr__(self, key):
        raise AttributeError(f"Node is immutable (tried to delete {key!r})")

    # -- description -------------------------------------------------------------------------
    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def is_leaf(self) -> bool:
        return self.op in LEAF_OPS

    def named(self, name: str) -> "Node":
        """A copy of this node carrying `name` (used by listings, diagrams and explanations)."""
        return Node(self.op, self.src, self.attrs, self.shape, self.dtype, name)

    def __repr__(self) -> str:
        label = f" {self.name!r}" if self.name else ""
        shape = "" if self.shape == () else f" {self.shape}"
        return f"<Node {self.op}{label}{shape}>"

    def __str__(self) -> str:
        from gradviz.core.text import expression_text

        return expression_text(self)

    def __bool__(self):
        raise TypeError("a gradviz Node has no truth value; evaluate it first")

    def _repr_svg_(self) -> str | None:
        """In a notebook: the graph's structural diagram (small graphs; see gradviz.notebook)."""
        from gradviz.notebook import graph_svg

        return graph_svg(self)

    # Operators are attached by gradviz.ops (they need the op builders).


def toposort(outputs: Node | Iterable[Node]) -> list[Node]:
    """All nodes the outputs depend on, operands before users, in a deterministic order.

    Iterative (no recursion), so graphs of any depth are fine.
    """
    stack = [outputs] if isinstance(outputs, Node) else list(outputs)
    seen: set[Node] = set()
    add, pop, extend = seen.add, stack.pop, stack.extend
    while stack:
        node = pop()
        if node not in seen:
            add(node)
            extend(node.src)
    return sorted(seen, key=_uid)


_uid = attrgetter("uid")


class Graph:
    """A view of the nodes that some outputs depend on, with stable local ids (0, 1, 2, ...).

    `str(graph)` is a readable listing, one node per line, operands by local id.
    """

    def __init__(self, outputs: Node | Iterable[Node], order: list[Node] | None = None):
        self.outputs: tuple[Node, ...] = (outputs,) if isinstance(outputs, Node) else tuple(outputs)
        self.nodes: list[Node] = toposort(self.outputs) if order is None else order

    @functools.cached_property
    def ids(self) -> dict[Node, int]:
        """{node: local id}: its position in `nodes`."""
        return {n: i for i, n in enumerate(self.nodes)}

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    def variables(self) -> list[Node]:
        """The `var` and `param` leaves, in topological order."""
        return [n for n in self.nodes if n.op in ("var", "param")]

    def label(self, node: Node) -> str:
        """`%3` for node 3, or its name when it has one (`%3:q`)."""
        i = self.ids[node]
        return f"%{i}:{node.name}" if node.name else f"%{i}"

    def __str__(self) -> str:
        lines = []
        for node in self.nodes:
            lines.append(f"{self.label(node):<10} = {_describe(node, self)}"
                         f"{'   <- output' if node in self.outputs else ''}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<Graph {len(self.nodes)} nodes, {len(self.outputs)} output(s)>"

    def _repr_svg_(self) -> str | None:
        """In a notebook: the structural diagram (small graphs; see gradviz.notebook)."""
        from gradviz.notebook import graph_svg

        return graph_svg(self)


def _describe(node: Node, graph: Graph) -> str:
    type_ = f"{node.dtype}{list(node.shape)}" if node.shape else node.dtype
    if node.op == "const":
        import numpy as np

        value = node.attrs["value"]
        body = f"const {np.array2string(np.asarray(value), threshold=6, precision=6)}"
    elif node.is_leaf:
        body = f"{node.op} {node.name!r}"
    else:
        args = ", ".join(graph.label(s) for s in node.src)
        attrs = "".join(f", {k}={v!r}" for k, v in sorted(node.attrs.items()))
        body = f"{node.op}({args}{attrs})"
    return f"{type_:<16} {body}"
