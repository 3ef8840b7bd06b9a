"""One naming of intermediate nodes in every view: explain (text, LaTeX, JSON), draw, steps and
grad --nodes call the same node by the same name, on the slides' circuits."""
import json
import re

import pytest
from click.testing import CliRunner

import gradviz as gv
from gradviz.cli import cli
from gradviz.core.ir import Graph
from gradviz.core.text import named_definition, node_names
from gradviz.render.diagram import draw
from gradviz.render.dot import node_id
from gradviz.render.steps import backprop_frames
from gradviz.verify.explain import explain

NEURON = "1/(1+exp(-(w0*x0+w1*x1+w2)))"
NEURON_AT = {"w0": 2, "x0": -1, "w1": -3, "x1": -2, "w2": -3}
CIRCUITS = [("(x+y)*z", {"x": -2, "y": 5, "z": -4}, "x"), (NEURON, NEURON_AT, "w0"),
            ("abs(4-(x*w+b))", {"x": 2, "w": 3, "b": 1}, "w")]


def test_the_neuron_is_named_as_one_circuit():
    names = node_names(gv.parse(NEURON))
    ops = {name: named_definition(node, names) for node, name in names.items()
           if not node.is_leaf}
    assert ops == {"a": "w0 * x0", "b": "w1 * x1", "c": "a + b", "d": "c + w2", "g": "-d",
                   "h": "exp(g)", "j": "1 + h", "f": "1 / j"}
    assert list(ops) == ["a", "b", "c", "d", "g", "h", "j", "f"]  # topological order


def test_letters_skip_variable_names_and_named_nodes_keep_theirs():
    names = node_names(gv.parse("abs(4-(x*w+b))"))
    assert [v for n, v in names.items() if not n.is_leaf] == ["a", "c", "d", "f"]  # b is taken
    x, y, z = gv.vars("x y z")
    q = (x + y).named("q")
    names = node_names(q * z + x)
    assert names[q] == "q" and [v for n, v in names.items() if not n.is_leaf] == ["q", "a", "f"]
    f = gv.var("f")
    out = f * x
    assert node_names(out)[f] == "f" and node_names(out)[out] == "a"  # the variable keeps f


def test_many_nodes_get_numbered_letters():
    x = gv.var("x")
    f = x
    for _ in range(30):
        f = gv.sin(f)
    names = list(node_names(f).values())
    assert len(set(names)) == len(names) == 31
    assert names[1:4] == ["a", "b", "c"] and names[21:23] == ["a1", "b1"]  # x is taken


@pytest.mark.parametrize("expr, at, wrt", CIRCUITS, ids=[c[0] for c in CIRCUITS])
def test_every_view_uses_the_same_names(expr, at, wrt):
    output = gv.parse(expr)
    graph = Graph(output)
    names = node_names(graph)
    ops = {node: name for node, name in names.items() if not node.is_leaf}

    # explain: every intermediate node defined under its name, factors between those names
    e = explain(output, wrt, at)
    assert [d.name for d in e.definitions] == list(ops.values())
    by_name = {name: node for node, name in names.items()}
    for path in e.paths:
        for factor in path.factors:
            assert by_name[factor.by] in by_name[factor.of].src
    latex = e.latex()
    for name in ops.values():
        assert re.search(rf"^{name} &= ", latex, re.M), name
    js = json.loads(CliRunner().invoke(cli, ["explain", expr, "--wrt", wrt, "--at", _at(at),
                                             "--json"]).output)
    assert [n["name"] for n in js["nodes"]] == list(ops.values())

    # grad --nodes: rows are `name = definition on operand names`, inputs by name
    out = json.loads(CliRunner().invoke(cli, ["grad", expr, "--at", _at(at), "--nodes",
                                              "--json"]).output)
    labels = {f"{name} = {named_definition(node, names)}" for node, name in ops.items()}
    assert {row["node"] for row in out["nodes"]} == labels
    assert {row["input"] for row in out["nodes"]} <= set(names.values())

    # draw: each op node carries its name under its symbol
    source = draw(output, at).dot
    for node, name in ops.items():
        line = next(ln for ln in source.splitlines() if ln.strip().startswith(node_id(graph, node) + " "))
        assert f">{name}</FONT>" in line, (name, line)

    # steps: every caption's chain rule uses the same names, along the graph's real edges
    _, frames = backprop_frames(output, at)
    edges = {(names[u], names[s]) for u in ops for s in u.src if s in names}
    seen = set()
    for frame in frames:
        for line in frame.lines:
            m = re.match(r"df/d(\w+) \+= df/d(\w+) \* d(\w+)/d(\w+) =", line)
            if m:
                operand, node, node2, operand2 = m.groups()
                assert (node, operand) == (node2, operand2)
                seen.add((node, operand))
    assert seen == edges


def _at(point: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in point.items())
