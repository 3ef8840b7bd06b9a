"""DOT source for annotated graphs: forward values, gradients, local derivatives, checks.

`build(graph, marks)` turns one `Marks` (what to write where) into a `graphviz.Digraph`. The
whole-diagram view and every backprop frame are `Marks` over the same nodes, so they look alike.

Conventions, as on the chain-rule slides: left to right; variables and parameters are boxes with
their name; op nodes show their symbol; values in green, gradients in red, local derivatives in
blue. A scalar constant operand of a gate is folded into its label (`*-1`, `+1`, `1/x`), so the
sigmoid chain reads like the slide. Every node gets an id from its position in the deterministic
topological order, so the DOT text is the same on every run.
"""
from __future__ import annotations

import html
from dataclasses import dataclass, field

import numpy as np

from gradviz.core.ir import Graph, Node, toposort
from gradviz.render.styles import FAMILIES, style_of
from gradviz.core.text import format_number

VALUE, GRAD, LOCAL, MUTED = "#1a7f37", "#cf222e", "#0969da", "#6e7781"
WRONG, KINK, HIGHLIGHT = "#cf222e", "#bf8700", "#8250df"
FOLDABLE = ("add", "sub", "mul", "div", "pow", "maximum", "minimum")


@dataclass
class Marks:
    """What one picture writes on a graph. Every field is optional.

    values[n]: forward value of node n; grads[n]: its gradient (the running sum in a frame);
    final: nodes whose gradient is complete (others' are shown as partial sums); edges[(u, i)]:
    the contribution flowing into operand i of u; local[(u, i)] / formulas[(u, i)]: the local
    derivative d u / d operand i as a number / as text; checks[n]: "wrong" or "kink";
    highlight: the node a frame is about; caption: text under the picture.
    """

    values: dict = field(default_factory=dict)
    grads: dict = field(default_factory=dict)
    final: set | None = None
    edges: dict = field(default_factory=dict)
    local: dict = field(default_factory=dict)
    formulas: dict = field(default_factory=dict)
    checks: dict = field(default_factory=dict)
    highlight: Node | None = None
    caption: str = ""
    output_name: str = "f"


def fmt(value) -> str:
    """A value as short text: 4 significant digits for scalars, statistics for tensors."""
    arr = np.asarray(value)
    if arr.ndim == 0:
        return format_number(arr, 4, rounded=True)
    if arr.size == 0:
        return "empty"
    return (f"mean {float(arr.mean()):.3g}, range [{float(arr.min()):.3g}, "
            f"{float(arr.max()):.3g}]")


def folded_constant(node: Node) -> tuple[int, float] | None:
    """(operand index, value) of the scalar constant folded into this gate's label, if any."""
    if node.op not in FOLDABLE or node.shape != ():
        return None
    consts = [i for i, s in enumerate(node.src) if s.op == "const" and s.shape == ()]
    if len(consts) != 1:
        return None
    i = consts[0]
    return i, float(node.src[i].attrs["value"])


def gate_label(node: Node) -> str:
    """The symbol written in a node: the op's symbol, with a folded constant when there is one."""
    style = style_of(node.op)
    folded = folded_constant(node)
    if folded is None:
        return style.symbol
    i, c = folded
    text = format_number(c)
    if node.op == "add":
        return f"+{text}" if c >= 0 else f"-{format_number(-c)}"
    if node.op == "mul":
        return f"*{text}"
    if node.op == "sub":
        return f"-{text}" if i == 1 else f"{text}-x"
    if node.op == "div":
        return f"/{text}" if i == 1 else f"{text}/x"
    if node.op == "pow":
        return f"**{text}" if i == 1 else f"{text}**x"
    return f"{style.symbol} {text}"


def _font(text: str, color: str, size: int = 10) -> str:
    return f'<FONT COLOR="{color}" POINT-SIZE="{size}">{html.escape(text)}</FONT>'


def _table(rows: list[str]) -> str:
    cells = "".join(f"<TR><TD>{r}</TD></TR>" for r in rows)
    return f'<<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="1">{cells}</TABLE>>'


class Namer:
    """Names for nodes in pictures and captions: `gradviz.core.text.node_names`, the naming every
    view shares (`explain`, `steps`, `grad --nodes`): variables by name, the output `f`, other
    operations by letters in topological order; written small in the node so that captions can
    refer to them. Constants are named by their value."""

    def __init__(self, graph: Graph, output_name: str = "f"):
        from gradviz.core.text import node_names

        self.graph = graph
        self.output = graph.outputs[0]
        self.output_name = output_name
        self.names: dict[Node, str] = node_names(graph, output_name)

    def __call__(self, node: Node) -> str:
        if node in self.names:
            return self.names[node]
        if node.op == "const" and node.shape == ():
            return format_number(node.attrs["value"])
        return f"n{self.graph.ids[node]}"


def node_id(graph: Graph, node: Node) -> str:
    return f"n{graph.ids[node]}"


def hidden_nodes(graph: Graph) -> set[Node]:
    """Constants folded into a gate label and used nowhere else are not drawn."""
    users: dict[Node, int] = {}
    folded_into: dict[Node, int] = {}
    for node in graph.nodes:
        for s in node.src:
            users[s] = users.get(s, 0) + 1
        f = folded_constant(node)
        if f is not None:
            c = node.src[f[0]]
            folded_into[c] = folded_into.get(c, 0) + 1
    return {c for c, n in folded_into.items() if users.get(c, 0) == n}


def layer_clusters(graph: Graph) -> dict[Node, str]:
    """Layer of each node, from parameter names (`0.weight` is in layer `0`): a node using a
    parameter is in its layer, and a node all of whose operands are in one layer (or constant)
    stays in it: the bias add, the activation."""
    cluster: dict[Node, str] = {}
    for node in graph.nodes:
        if node.op == "param" and node.name and "." in node.name:
            cluster[node] = node.name.rsplit(".", 1)[0]
            continue
        if node.is_leaf:
            continue
        own = [cluster[s] for s in node.src if s.op == "param" and s in cluster]
        found = {cluster[s] for s in node.src if s in cluster}
        if own:
            cluster[node] = own[0]
        elif len(found) == 1 and all(s in cluster or s.op == "const" for s in node.src):
            cluster[node] = found.pop()
    return cluster


LOSS, BACKWARD = "loss", "backward pass and update"


def step_regions(graph: Graph, layers: dict[Node, str]) -> dict[Node, str]:
    """For a graph whose later outputs are computed from the first one's gradient (a training
    step: loss first, then new parameters), the nodes outside the first output's forward graph
    form one region, and the forward nodes outside any layer (the loss) another."""
    if len(graph.outputs) < 2:
        return {}
    forward = set(toposort(graph.outputs[0]))
    regions: dict[Node, str] = {}
    for node in graph.nodes:
        if node.is_leaf or node in layers:
            continue
        regions[node] = LOSS if node in forward else BACKWARD
    return regions if BACKWARD in regions.values() else {}


KERNEL_PREFIX = "kernel "


def _cluster_label(key: str) -> str:
    return key if key in (LOSS, BACKWARD) or key.startswith(KERNEL_PREFIX) else f"layer {key}"


def kernel_groups(graph: Graph) -> dict[Node, str]:
    """Which compiled CPU kernel computes each node (`kernel 3: elementwise`); views cost
    nothing (they are index arithmetic) and belong to none."""
    from gradviz.compiler.cpu.backend import cpu_schedule

    sched = cpu_schedule(list(graph.outputs))
    width = len(str(len(sched.kernels)))
    return {node: f"{KERNEL_PREFIX}{kernel.index:0{width}d}: {kernel.kind}"
            for node, kernel in sched.kernel_of.items() if node in graph.ids}


def _cluster_order(key: str):
    return ({LOSS: 1, BACKWARD: 2}.get(key, 0), _natural(key))


def _node_rows(node: Node, marks: Marks, namer: Namer) -> list[str]:
    if node.op in ("var", "param"):
        title = f"<B>{html.escape(node.name)}</B>"
    elif node.op == "const":
        title = f"<B>{html.escape(fmt(node.attrs['value']) if node.shape == () else 'const')}</B>"
    else:
        title = f"<B>{html.escape(gate_label(node))}</B>"
    rows = [title]
    if not node.is_leaf:
        rows.append(_font(namer(node), MUTED, 9))
    if node.shape != ():
        rows.append(_font(f"{node.dtype} {list(node.shape)}", MUTED, 9))
    if node in marks.values and node.op != "const":
        rows.append(_font(("= " if node.shape == () else "") + fmt(marks.values[node]), VALUE))
    if node in marks.grads:
        grad = fmt(marks.grads[node])
        partial = marks.final is not None and node not in marks.final
        prefix = "grad so far " if partial else "grad "
        rows.append(_font(prefix + grad, GRAD))
    return rows


def _edge_label(key, marks: Marks) -> str | None:
    rows = []
    if key in marks.local:
        rows.append(_font(f"local {fmt(marks.local[key])}", LOCAL, 9))
    if key in marks.formulas:
        rows.append(_font(marks.formulas[key], LOCAL, 9))
    if key in marks.edges:
        rows.append(_font(f"grad {fmt(marks.edges[key])}", GRAD, 9))
    if not rows:
        return None
    # a white cell keeps the numbers legible where the layout lets a label touch its edge
    cells = "".join(f"<TR><TD>{r}</TD></TR>" for r in rows)
    return (f'<<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="0" '
            f'BGCOLOR="white">{cells}</TABLE>>')


def build(graph: Graph, marks: Marks, *, clusters: bool = True, kernels: bool = False,
          collapse: bool = False,
          title: str | None = None, rankdir: str = "LR", legend: bool = True):
    """A `graphviz.Digraph` of `graph` annotated with `marks`, laid out in `rankdir` (LR or TB),
    with a colour legend under it unless `legend` is false."""
    import graphviz

    from gradviz.render import network
    from gradviz.render.styles import NETWORK_LEGEND, VALUE_LEGEND, caption_label

    dot = graphviz.Digraph("gradviz", graph_attr={
        "rankdir": rankdir, "fontname": "Helvetica", "nodesep": "0.25", "ranksep": "0.45",
        "bgcolor": "white", "labelloc": "b"}, node_attr={"fontname": "Helvetica",
                                                        "fontsize": "12"},
        edge_attr={"fontname": "Helvetica", "fontsize": "10", "color": "#57606a"})
    lines = [line for x in (title, marks.caption) if x for line in x.split("\n")]

    def finish(shown: list[tuple[str, str, str]]):
        label = caption_label(lines, shown if legend else [])
        if label:
            dot.attr(label=label, fontsize="12")
        return dot

    namer = Namer(graph, marks.output_name)
    hidden = hidden_nodes(graph)
    if kernels:
        layers = kernel_groups(graph)
    else:
        layers = layer_clusters(graph) if clusters else {}
        if clusters:
            layers.update(step_regions(graph, layers))
    if collapse and not kernels:
        groups = network.step_groups(graph) or network.chain_groups(graph)
        if groups:
            dot.graph_attr.update(nodesep="0.3", ranksep="0.25")
            kinds = network.build_network(dot, graph, groups)
            return finish([NETWORK_LEGEND[k] for k in NETWORK_LEGEND
                           if k in kinds or k == "input"])
    if collapse and layers:  # kernels: one box per kernel
        return _build_collapsed(finish([]), graph, marks, layers, hidden)
    titles = network.cluster_titles(graph, layers) if clusters and not kernels else {}

    _add_nodes(dot, graph, marks, namer, layers, hidden, titles)
    _add_edges(dot, graph, marks, hidden)
    shown = [kind for kind, present in (
        ("values", marks.values), ("grads", marks.grads), ("local", marks.local or marks.formulas),
        ("kink", "kink" in marks.checks.values()), ("wrong", "wrong" in marks.checks.values()))
        if present]
    return finish([VALUE_LEGEND[k] for k in shown])


def _add_nodes(dot, graph: Graph, marks: Marks, namer, layers, hidden, titles) -> None:
    """Every shown node, in a dashed cluster per layer (unclustered nodes first)."""
    import graphviz

    by_layer: dict[str, list[Node]] = {}
    for node in graph.nodes:
        if node in hidden:
            continue
        by_layer.setdefault(layers.get(node, ""), []).append(node)
    for layer in sorted(by_layer, key=lambda k: (k != "", _cluster_order(k) if k else 0)):
        target = dot
        if layer:
            target = graphviz.Digraph(f"cluster_{_natural_id(layer)}")
            target.attr(label=titles.get(layer, _cluster_label(layer)), style="rounded,dashed",
                        color=MUTED, fontcolor=MUTED)
        for node in by_layer[layer]:
            family = style_of(node.op).family
            rows = _node_rows(node, marks, namer)
            if family == "gate" and (node.shape != () or _widest(rows) > GATE_TEXT):
                family = "function"  # long text (tensor statistics) does not fit in a circle
            attrs = dict(FAMILIES[family])
            if node in marks.checks:
                attrs.update(color=WRONG if marks.checks[node] == "wrong" else KINK,
                             penwidth="3")
            if node is marks.highlight:
                attrs.update(color=HIGHLIGHT, penwidth="3")
            if node is namer.output:
                attrs["peripheries"] = "2"
            target.node(node_id(graph, node), _table(rows), **attrs)
        if layer:
            dot.subgraph(target)


def _add_edges(dot, graph: Graph, marks: Marks, hidden) -> None:
    """One edge per operand (`x*x` has two), labelled with its local derivative and gradient."""
    for node in graph.nodes:
        if node in hidden:
            continue
        for i, s in enumerate(node.src):
            if s in hidden:
                continue
            label = _edge_label((node, i), marks) if s.shape == () else None
            attrs = {"label": label} if label else {}
            if marks.highlight is node:
                attrs.update(color=HIGHLIGHT, penwidth="2")
            dot.edge(node_id(graph, s), node_id(graph, node), **attrs)


#: A gate is a circle while its widest line has at most this many characters, else a rounded
#: box: a circle's diameter is its text's diagonal, so long lines made giant circles.
GATE_TEXT = 9


def _widest(rows: list[str]) -> int:
    import re

    return max((len(html.unescape(re.sub(r"<[^>]*>", "", r))) for r in rows), default=0)


def _natural_id(key: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in key)


def _natural(key: str):
    return [int(p) if p.isdigit() else p for p in key.split(".")]


def _build_collapsed(dot, graph: Graph, marks: Marks, layers: dict[Node, str], hidden: set):
    """One box per layer (its ops and output shape), other nodes as usual. Constants and
    dotted-name leaves (optimizer state such as `0.weight.m`) used only inside one box go into
    it; inputs such as `x`, `target` and `lr` stay visible."""
    layers = dict(layers)
    users: dict[Node, set] = {}
    for node in graph.nodes:
        for s in node.src:
            users.setdefault(s, set()).add(layers.get(node))
    for node in graph.nodes:
        if node.is_leaf and node not in layers and (node.op == "const" or "." in (node.name or "")):
            homes = users.get(node, set())
            if len(homes) == 1 and None not in homes:
                layers[node] = next(iter(homes))
    def key(node: Node) -> str:
        return f"cluster_box_{_natural_id(layers[node])}" if node in layers else node_id(graph, node)

    members: dict[str, list[Node]] = {}
    for node in graph.nodes:
        if node in layers:
            members.setdefault(layers[node], []).append(node)
    forward = set(toposort(graph.outputs[0]))
    for layer in sorted(members, key=_cluster_order):
        nodes = members[layer]
        ops = [n.op for n in nodes if not n.is_leaf]
        kinds = sorted(set(ops), key=ops.index)
        params = sum(n.size for n in nodes if n.op == "param")
        out = next((n for n in reversed(nodes) if n in forward), nodes[-1])
        rows = [f"<B>{html.escape(_cluster_label(layer))}</B>", _font(", ".join(kinds), MUTED, 9)]
        if params:
            rows.append(_font(f"{params:,} parameters", MUTED, 9))
        if layer != BACKWARD:
            rows.append(_font(f"out {out.dtype} {list(out.shape)}", MUTED, 9))
        if out in marks.values:
            rows.append(_font(fmt(marks.values[out]), VALUE))
        dot.node(f"cluster_box_{_natural_id(layer)}", _table(rows), **FAMILIES["layer"])
    namer = Namer(graph, marks.output_name)
    for node in graph.nodes:
        if node in layers or node in hidden:
            continue
        dot.node(node_id(graph, node), _table(_node_rows(node, marks, namer)),
                 **FAMILIES[style_of(node.op).family])
    seen = set()
    for node in graph.nodes:
        if node in hidden:
            continue
        for s in node.src:
            if s in hidden:
                continue
            edge = (key(s), key(node))
            if edge[0] != edge[1] and edge not in seen:
                seen.add(edge)
                dot.edge(*edge)
    return dot
