"""Networks drawn for a slide: one box per layer, named as the model names them.

A forward graph becomes its chain of layers (`C1 -> S2 -> ... -> F6 -> output`), each box with
the model's name for the layer, what it is made of, its parameter count and its output shape. A
training step (outputs: loss, [correct count], new parameters, new optimizer state) becomes the
forward chain, the loss, a mirrored backward chain (`output backward -> F6 backward -> ... ->
C1 backward`, each box under its layer) and one update box per parameter group, with no pair of
arrows running both ways between two boxes: the backward chain's edges are drawn against the
rank direction (`dir=back`) so that they never fold the layout.

Layers come from `gradviz.nn` (a `Sequential` tags the nodes each layer builds: see
`gradviz.nn.module.layer_of`); graphs built otherwise (ONNX files, hand-made graphs) are grouped
by parameter names (`0.weight` is in layer `0`).
"""
from __future__ import annotations

import html
import sys
from dataclasses import dataclass

from gradviz.core.ir import Graph, Node, toposort
from gradviz.render.styles import FAMILIES

TITLE_PT, DETAIL_PT = 14, 11
MUTED = "#57606a"


@dataclass(frozen=True)
class Group:
    """A box: `key` (unique), `kind` (forward, loss, backward, update, accuracy, optimizer),
    `order` along the forward chain, title and detail lines."""

    key: str
    kind: str
    order: int
    title: str
    detail: str = ""
    params: int = 0


def _tag(node: Node):
    module = sys.modules.get("gradviz.nn.module")  # no model was built without it
    return module.layer_of(node) if module is not None else None


def forward_groups(graph: Graph, nodes) -> dict[Node, Group]:
    """The layer group of each forward node: by the model's tags, else by parameter names."""
    groups: dict[Node, Group] = {}
    tags = {node: _tag(node) for node in nodes}
    if any(t is not None for t in tags.values()):
        for node, t in tags.items():
            if t is not None:
                groups[node] = Group(f"f:{t.key}", "forward", t.order, t.title, t.detail,
                                     t.params)
        return groups
    from gradviz.render.dot import _natural, layer_clusters

    clusters = {n: k for n, k in layer_clusters(graph).items() if n in nodes}
    keys = sorted(set(clusters.values()), key=_natural)
    for node, key in clusters.items():
        params = sum(n.size for n, k in clusters.items() if k == key and n.op == "param")
        groups[node] = Group(f"f:{key}", "forward", keys.index(key), f"layer {key}", "", params)
    return groups


def cluster_titles(graph: Graph, layers: dict[Node, str]) -> dict[str, str]:
    """For the expanded view's dashed clusters (keyed by parameter-name prefix): the model's
    name of each layer, when the model tagged its parameters (`C1: Conv2d(1 -> 6, 5x5) + Tanh`)."""
    titles = {}
    for node, key in layers.items():
        if node.op == "param" and key not in titles:
            t = _tag(node)
            if t is not None:
                titles[key] = f"{t.title}: {t.detail}" if t.detail and t.title not in t.detail \
                    else t.title
    return titles


def _ancestors(outputs) -> dict[Node, set[int]]:
    """node -> indices of the outputs that depend on it."""
    reach: dict[Node, set[int]] = {}
    for i, out in enumerate(outputs):
        for node in toposort(out):
            reach.setdefault(node, set()).add(i)
    return reach


def step_groups(graph: Graph) -> dict[Node, Group] | None:
    """Boxes of a training-step graph (first output the loss, later ones computed from its
    gradient), or None when `graph` is not one."""
    outputs = list(graph.outputs)
    if len(outputs) < 2:
        return None
    forward = set(toposort(outputs[0]))
    reach = _ancestors(outputs)
    fwd_groups = forward_groups(graph, forward)
    if not fwd_groups:
        return None
    chain = sorted({g.order: g for g in fwd_groups.values()}.items())
    by_order = dict(chain)
    top = chain[-1][0]
    groups: dict[Node, Group] = dict(fwd_groups)
    loss = Group("loss", "loss", top + 1, "loss")
    for node in forward:
        if node not in groups and not node.is_leaf:
            groups[node] = loss
    touched, out_group = _updates(graph, outputs, forward, fwd_groups)
    if not out_group:
        return None
    accuracy = Group("accuracy", "accuracy", top + 1, "correct count")
    optimizer = Group("optimizer", "optimizer", -1, "lr, optimizer step")
    backward_of = lambda g: Group("b:" + g.key[2:], "backward", g.order, f"{g.title} backward")  # noqa: E731
    update_of = lambda g: Group("u:" + g.key[2:], "update", g.order, f"{g.title} update")  # noqa: E731
    backward: list[Node] = []
    for node in graph.nodes:
        if node in groups or node.is_leaf:
            continue
        targets = {out_group[i] for i in reach.get(node, ()) if i in out_group}
        if node in touched:
            groups[node] = update_of(targets.pop()) if len(targets) == 1 else optimizer
        elif not targets:
            groups[node] = accuracy
        else:
            order = max(g.order for g in targets)
            reads = [fwd_groups[s].order for s in node.src if s in fwd_groups]
            if reads:
                order = max(order, max(reads))
            backward.append(node)
            groups[node] = backward_of(by_order[order])
    _backward_of_parameterless(groups, backward, fwd_groups, by_order, backward_of)
    return groups


def _updates(graph: Graph, outputs, forward: set, fwd_groups) -> tuple[set, dict[int, Group]]:
    """The update's nodes (those that read the rate or optimizer state: leaves no forward node
    reads) and, per later output, the parameter group it updates."""
    touched = {n for n in graph.variables() if n not in forward}
    for node in graph.nodes:
        if node not in forward and any(s in touched for s in node.src):
            touched.add(node)
    param_group = {node.name: g for node, g in fwd_groups.items() if node.op == "param"}
    out_group: dict[int, Group] = {}
    for i, out in enumerate(outputs[1:], start=1):
        if out in forward or out not in touched:
            continue
        found = None
        for node in toposort(out):
            if node in touched and not node.is_leaf:
                for s in node.src:
                    if s.op == "param" and s.name in param_group:
                        found = param_group[s.name]
                    elif s.is_leaf and s.name and s not in forward:
                        owner = next((p for p in param_group if s.name.startswith(p + ".")), None)
                        if owner is not None:
                            found = param_group[owner]
            if found is not None:
                break
        if found is not None:
            out_group[i] = found
    return touched, out_group


def _backward_of_parameterless(groups, backward, fwd_groups, by_order, backward_of) -> None:
    """Layers without parameters (S2, S4) have no parameter gradient of their own: the backward
    nodes of the layer below them that are made before that layer reads its own forward values
    are theirs (autodiff makes nodes in reverse layer order)."""
    first_read: dict[int, int] = {}
    for node in backward:
        order = groups[node].order
        if any(s in fwd_groups and fwd_groups[s].order == order for s in node.src):
            first_read[order] = min(first_read.get(order, node.uid), node.uid)
    for node in backward:
        order = groups[node].order
        above = by_order.get(order + 1)
        if above is not None and not above.params and order in first_read \
                and node.uid < first_read[order] \
                and not any(s in fwd_groups for s in node.src):
            groups[node] = backward_of(above)


def chain_groups(graph: Graph) -> dict[Node, Group] | None:
    """Boxes of a forward graph: the layers, and the rest (a loss) as one box."""
    nodes = set(graph.nodes)
    groups = forward_groups(graph, nodes)
    if not groups:
        return None
    top = max(g.order for g in groups.values())
    rest = Group("loss", "loss", top + 1, "loss")
    for node in graph.nodes:
        if node not in groups and not node.is_leaf:
            groups[node] = rest
    return groups


def _rows(group: Group, members: list[Node], forward: set[Node]) -> list[str]:
    rows = [f'<FONT POINT-SIZE="{TITLE_PT}"><B>{html.escape(group.title)}</B></FONT>']
    small = []
    if group.kind == "forward":
        if group.detail:
            small.append(group.detail)
        out = next((n for n in reversed(members) if n in forward and not n.is_leaf), None)
        facts = []
        if group.params:
            facts.append(f"{group.params:,} params")
        if out is not None:
            facts.append("out " + "x".join(map(str, out.shape)) if out.shape else "out scalar")
        if facts:
            small.append(", ".join(facts))
    elif group.kind == "update":
        params = [n for n in members if n.op == "param"]
        if params:
            small.append(f"{sum(p.size for p in params):,} params")
    for line in small:
        rows.append(f'<FONT POINT-SIZE="{DETAIL_PT}" COLOR="{MUTED}">{html.escape(line)}</FONT>')
    cells = "".join(f"<TR><TD>{r}</TD></TR>" for r in rows)
    return f'<<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="1">{cells}</TABLE>>'


STYLE = {
    "forward": FAMILIES["layer"],
    "loss": {"shape": "box", "style": "filled,bold", "fillcolor": "#fff8c5", "color": "#9a6700"},
    "accuracy": {"shape": "box", "style": "filled,dashed", "fillcolor": "#f6f8fa",
                 "color": "#6e7781"},
    "backward": {"shape": "box", "style": "filled,bold", "fillcolor": "#fff1e5",
                 "color": "#bc4c00"},
    "update": {"shape": "box", "style": "rounded,filled", "fillcolor": "#fbefff",
               "color": "#8250df"},
    "optimizer": {"shape": "box", "style": "rounded,filled", "fillcolor": "#fbefff",
                  "color": "#8250df"},
}


def build_network(dot, graph: Graph, groups: dict[Node, Group]):
    """Add the boxes, the inputs and the edges between them to `dot` (a graphviz.Digraph)."""
    forward = set(toposort(graph.outputs[0]))
    groups = _with_leaves(graph, groups, forward)
    members: dict[Group, list[Node]] = {}
    for node in graph.nodes:
        if node in groups:
            members.setdefault(groups[node], []).append(node)
    key = _box_keys(graph, groups)
    _draw_boxes(dot, graph, groups, members, forward, key)
    _arrange_columns(dot, graph, groups, members, key)
    _draw_edges(dot, graph, groups, key)
    return {g.kind for g in members}


def _with_leaves(graph: Graph, groups: dict[Node, Group], forward: set) -> dict[Node, Group]:
    """`groups` plus the leaves that belong in a box: the learning rate joins the optimizer's
    shared nodes (Adam's step count) when there are some, so one box is what every update reads;
    leaves used by one box only go into it (parameters, optimizer state, masks, constants);
    constants used by several are left out; inputs (x, target, lr) stay visible."""
    users: dict[Node, set] = {}
    for node in graph.nodes:
        for s in node.src:
            users.setdefault(s, set()).add(groups.get(node))
    groups = dict(groups)
    shared = next((g for g in groups.values() if g.kind == "optimizer"), None)
    if shared is not None:
        for node in graph.variables():
            if node.op == "var" and node.name == "lr" and node not in forward:
                groups[node] = shared
    for node in graph.nodes:
        if node.is_leaf and node not in groups:
            homes = users.get(node, set()) - {None}
            if len(homes) == 1 and (node.op != "var" or "." in (node.name or "")):
                groups[node] = next(iter(homes))
    return groups


def _box_keys(graph: Graph, groups: dict[Node, Group]):
    """node -> the DOT id of its box (its group's, or its own), None for a constant left out."""
    from gradviz.render.dot import node_id

    def key(node: Node) -> str | None:
        if node in groups:
            return "box_" + "".join(c if c.isalnum() else "_" for c in groups[node].key)
        if node.op == "const":
            return None
        return node_id(graph, node)
    return key


def _draw_boxes(dot, graph: Graph, groups, members, forward: set, key) -> None:
    from gradviz.render.dot import _font, _table

    kinds = {"forward": 0, "loss": 0, "accuracy": 3, "backward": 1, "update": 2, "optimizer": 2}
    for group in sorted(members, key=lambda g: (kinds[g.kind], g.order)):
        dot.node(key(members[group][0]), _rows(group, members[group], forward), **STYLE[group.kind])
    for node in graph.nodes:
        if node in groups or node.op == "const":
            continue
        rows = [f'<FONT POINT-SIZE="{TITLE_PT}"><B>{html.escape(node.name or node.op)}</B></FONT>']
        if node.shape:
            rows.append(_font("x".join(map(str, node.shape)), MUTED, DETAIL_PT))
        dot.node(key(node), _table(rows), **FAMILIES["var" if node.op == "var" else "param"])


def _arrange_columns(dot, graph: Graph, groups, members, key) -> None:
    """Columns: a layer, its backward box and its update share a rank (the loss and the correct
    count beside the output layer, the input beside the first: a rank less each way, which is
    what makes LeNet-5's step fit a slide); within a column: backward | input | layer | update,
    by invisible edges."""
    ranks: dict[int, list[str]] = {}
    top = max(g.order for g in members if g.kind == "forward")
    for group in members:
        if group.kind in ("forward", "backward", "update"):
            ranks.setdefault(group.order, []).append(key(members[group][0]))
        elif group.kind in ("loss", "accuracy"):
            ranks.setdefault(top, []).append(key(members[group][0]))
    first = [n for n in graph.variables() if n not in groups and n.op == "var"
             and any(groups.get(u) is not None and groups[u].kind == "forward"
                     and groups[u].order == 0 for u in graph.nodes if n in u.src)]
    ranks.setdefault(0, []).extend(key(n) for n in first)
    for order in sorted(ranks):
        if len(ranks[order]) > 1:
            dot.body.append("\t{rank=same; " + "; ".join(ranks[order]) + "}\n")
    for order in sorted(ranks):
        row = {g.kind: key(members[g][0]) for g in members
               if (g.order == order and g.kind in ("forward", "backward", "update"))
               or (order == top and g.kind in ("loss", "accuracy"))}
        line = [row.get("backward"), *[k for k in ranks[order] if k.startswith("n")],
                row.get("forward"), row.get("loss"), row.get("accuracy"), row.get("update")]
        line = [k for k in line if k]
        for a, b in zip(line, line[1:]):
            dot.edge(a, b, style="invis")


def _draw_edges(dot, graph: Graph, groups, key) -> None:
    """One edge per pair of boxes; backward edges point back along the chain (dir=back), so no
    two boxes have arrows both ways."""
    seen = set()
    for node in graph.nodes:
        for s in node.src:
            a, b = key(s), key(node)
            if a is None or b is None or a == b or (a, b) in seen:
                continue
            seen.add((a, b))
            ga, gb = groups.get(s), groups.get(node)
            if ga is not None and gb is not None and ga.kind == "forward" and gb.kind == "update":
                continue  # the update reads the layer's parameters: implied by the column
            backwards = ga is not None and gb is not None and (
                (ga.kind == "backward" and gb.kind == "backward" and ga.order > gb.order)
                or (ga.kind == "loss" and gb.kind == "backward"))
            attrs = {}
            if gb is not None and gb.kind in ("backward", "update", "optimizer"):
                attrs["color"] = "#bc4c00" if gb.kind == "backward" else "#8250df"
            if gb is not None and gb.kind == "backward" and (
                    (ga is not None and ga.kind == "forward") or (ga is None and s.is_leaf)):
                attrs.update(style="dashed", color="#8c959f", constraint="false")
            if (ga is not None and ga.kind == "optimizer") or (s.op == "var" and s.name == "lr"):
                attrs.update(style="dotted", constraint="false")
            if backwards:
                dot.edge(b, a, dir="back", **attrs)
            else:
                dot.edge(a, b, **attrs)
