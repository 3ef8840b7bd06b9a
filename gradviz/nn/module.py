"""`Module`: a layer or a model that builds its forward graph from an input node.

A module owns `param` leaves (created once, when the module is made) and child modules. Calling
it on an input node returns the output node; values never live in the module: `init(rng)` gives
initial values for the parameters, and `random_inputs(rng, batch)` values for the random inputs
(dropout masks) a training graph reads. Parameter names are dotted paths, stable across runs:
`0.weight`, `2.bias` (a child's index or key, then the parameter's own name).
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np

from gradviz.errors import GradvizError, ShapeError
from gradviz.core.ir import Node
from gradviz.ops import param, var


@dataclass(frozen=True)
class SummaryRow:
    """One line of a layer table: the child's `name` (its key in the parent), a description of
    the `layer`, its `output_shape` (without the batch axis), its parameter count and an optional
    `label` (such as LeNet-5's C1, S2, ...)."""

    name: str
    layer: str
    output_shape: tuple[int, ...]
    params: int
    label: str = ""


@dataclass(frozen=True)
class LayerTag:
    """Which layer of a model built a node, for pictures: `key` identifies the layer group
    (`0`, or `features.3`), `order` its position along the model, `title` what the model calls
    it (LeNet-5's `C1`; `Linear(784 -> 256)` for an unnamed layer), `detail` the layers folded
    into it (`Conv2d(1 -> 6, 5x5, pad 2) + Tanh`), `params` its parameter count."""

    key: str
    order: int
    title: str
    detail: str = ""
    params: int = 0


#: node -> the LayerTag of the layer (group) that built it; filled by `Sequential.forward`,
#: read by `gradviz.render` to name and fold layers. Weak: graphs no one holds are forgotten.
_LAYER_OF: "weakref.WeakKeyDictionary[Node, LayerTag]" = weakref.WeakKeyDictionary()


def layer_of(node: Node) -> LayerTag | None:
    """The layer (group) of a model that built `node`, if a `Sequential` did."""
    return _LAYER_OF.get(node)


def tag_nodes(output: Node, stop: Node, tag: LayerTag) -> None:
    """Tag `output` and every node it depends on, back to `stop` (excluded): the nodes one layer
    built (its parameters, constants and masks included)."""
    seen = {stop}
    todo = [output]
    while todo:
        node = todo.pop()
        if node in seen:
            continue
        seen.add(node)
        _LAYER_OF[node] = tag
        todo.extend(node.src)


class Module:
    """Base class of layers and models.

    Subclasses create parameters with `_param` in `__init__`, register children with
    `_child`, and implement `forward(x, train)`; layers with parameters implement
    `_initial_values(rng)`, layers with random inputs `_random_values(rng, batch)`.
    """

    init_scheme: str | None = None  # for activations: the init that suits the layer before them

    def __init__(self):
        self._params: dict[str, Node] = {}
        self._children: dict[str, Module] = {}
        self._prefix = ""

    # -- building ---------------------------------------------------------------------------
    def __call__(self, x: Node, *, train: bool = False) -> Node:
        """The output node of this module applied to `x` (batch first): `model(x)` builds the
        inference graph; `train=True` the training one (dropout active, reading mask inputs)."""
        if not isinstance(x, Node):
            raise GradvizError(f"{type(self).__name__} takes a graph node, not {type(x).__name__}")
        return self.forward(x, train)

    def forward(self, x: Node, train: bool) -> Node:
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def _param(self, local: str, shape, dtype: str) -> Node:
        node = param(self._prefix + local, shape, dtype)
        self._params[local] = node
        return node

    def _child(self, key: str, module: "Module") -> "Module":
        if not isinstance(module, Module):
            raise GradvizError(f"a layer must be a Module, got {type(module).__name__}")
        self._children[key] = module
        module._rename(f"{self._prefix}{key}.")
        return module

    def _rename(self, prefix: str) -> None:
        # Parameter nodes are immutable: renaming replaces them by named copies. This happens
        # while containers are assembled, before any graph uses the nodes.
        self._prefix = prefix
        for local, node in self._params.items():
            self._params[local] = node.named(prefix + local)
        for key, child in self._children.items():
            child._rename(f"{prefix}{key}.")

    # -- parameters -------------------------------------------------------------------------
    def named_parameters(self) -> list[tuple[str, Node]]:
        """(dotted name, param node) pairs: this module's own, then each child's, in order."""
        found = [(node.name, node) for node in self._params.values()]
        for child in self._children.values():
            found.extend(child.named_parameters())
        return found

    def parameters(self) -> list[Node]:
        """The `param` nodes of this module and its children, in a stable order."""
        return [node for _, node in self.named_parameters()]

    def num_parameters(self) -> int:
        """How many scalar parameters the module has."""
        return sum(node.size for node in self.parameters())

    def init(self, rng: np.random.Generator) -> dict[Node, np.ndarray]:
        """Initial values for every parameter: Glorot-uniform or He-normal weights (by the
        activation that follows the layer), zero biases. Deterministic for a given `rng`."""
        values: dict[Node, np.ndarray] = {}
        for local, value in self._initial_values(rng).items():
            node = self._params[local]
            values[node] = np.asarray(value, dtype=node.dtype).reshape(node.shape)
        for child in self._children.values():
            values.update(child.init(rng))
        return values

    def _initial_values(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        return {}

    def random_inputs(self, rng: np.random.Generator, batch: int) -> dict[Node, np.ndarray]:
        """Values for the random inputs (dropout masks) that training graphs built with this
        module read, for the graphs whose batch size is `batch`. Draws in a fixed order."""
        values = self._random_values(rng, batch)
        for child in self._children.values():
            values.update(child.random_inputs(rng, batch))
        return values

    def _random_values(self, rng: np.random.Generator, batch: int) -> dict[Node, np.ndarray]:
        return {}

    # -- description ------------------------------------------------------------------------
    def describe(self) -> str:
        """A one-line description for layer tables, e.g. `Linear(784 -> 10)`."""
        return type(self).__name__

    def __repr__(self) -> str:
        return self.describe()

    def _probe_dtype(self) -> str:
        params = self.parameters()
        return params[0].dtype if params else "float64"

    def output_shape(self, input_shape) -> tuple[int, ...]:
        """The output shape (without the batch axis) for inputs of `input_shape` (without it)."""
        probe = var("input", (1, *input_shape), self._probe_dtype())
        return self(probe, train=False).shape[1:]

    def summary(self, input_shape) -> list[SummaryRow]:
        """The layer table for inputs of `input_shape` (without the batch axis): one row for a
        layer, one row per child for a container."""
        return [SummaryRow("", self.describe(), self.output_shape(tuple(input_shape)),
                           self.num_parameters())]


def _dims(shape) -> str:
    return "x".join(str(d) for d in shape) if shape else "scalar"


def format_summary(rows: list[SummaryRow], input_shape) -> str:
    """A layer table as text: input, one line per row, and the total parameter count."""
    input_shape = tuple(input_shape)
    labels = any(r.label for r in rows)
    header = ["", "layer", "output shape", "params"] + (["note"] if labels else [])
    table = [["", "input", _dims(input_shape), "", ""]]
    for r in rows:
        table.append([r.name, r.layer, _dims(r.output_shape), f"{r.params:,}", r.label])
    total = sum(r.params for r in rows)
    table.append(["", "total", "", f"{total:,}", ""])
    width = len(header)
    table = [row[:width] for row in table]
    sizes = [max(len(row[i]) for row in [header, *table]) for i in range(width)]
    right = {0, 3}

    def line(row):
        cells = [c.rjust(s) if i in right else c.ljust(s) for i, (c, s) in enumerate(zip(row, sizes))]
        return "  ".join(cells).rstrip()

    rule = "-" * len(line(["-" * s for s in sizes]))
    return "\n".join([line(header), rule, *map(line, table[:-1]), rule, line(table[-1])])


def check_input(layer: Module, x: Node, ndim: int, what: str) -> None:
    """Raise a clear ShapeError when `x` does not have `ndim` axes (batch included)."""
    if x.ndim != ndim:
        raise ShapeError(f"{layer.describe()} needs {what} input, got shape {x.shape}")
