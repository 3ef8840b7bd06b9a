"""Diagrams: deterministic DOT, slide conventions, frames, renderer choice, the CLI."""
from pathlib import Path

import pytest
from click.testing import CliRunner

import gradviz as gv
from gradviz.cli import cli
from gradviz.errors import GradvizError
from gradviz.render import backend, draw, steps
from gradviz.render.dot import gate_label
from gradviz.render.expand import expand_composites
from gradviz.render.steps import backprop_frames
from gradviz.render.styles import node_style
from gradviz.core.rules import primitives

GOLDEN = Path(__file__).parent / "golden"
NEURON = "1/(1+exp(-(w0*x0+w1*x1+w2)))"
NEURON_AT = {"w0": 2, "x0": -1, "w1": -3, "x1": -2, "w2": -3}


def test_every_primitive_has_a_style():
    assert set(primitives()) - set(node_style) == set()


def test_dot_source_is_golden_and_deterministic():
    x, y = gv.vars("x y")
    assert draw(x * y, {"x": 2, "y": 3}).dot == (GOLDEN / "x_times_y.dot").read_text()
    a, b = gv.vars("x y")
    assert draw(a * b, {"x": 2, "y": 3}).dot == draw(x * y, {"x": 2, "y": 3}).dot


def test_slide_circuit_numbers_on_the_picture():
    f = gv.parse(NEURON)
    dot = draw(f, NEURON_AT).dot
    for text in ("= 0.7311", "grad -0.1966", "grad 0.3932", "grad -0.3932", "grad -0.5898",
                 "grad 0.1966", "local -0.5344", "<B>1/x</B>", "<B>+1</B>", "<B>exp</B>",
                 "<B>*-1</B>"):
        assert text in dot, text


def test_views_show_what_they_say():
    x, y, z = gv.vars("x y z")
    f = (x + y) * z
    at = {"x": -2, "y": 5, "z": -4}
    forward = draw(f, at, view="forward").dot
    gradients = draw(f, at, view="gradients").dot
    assert "= -12" in forward and ">grad " not in forward
    assert "grad -4" in gradients and "= -12" not in gradients
    formulas = draw(f, at, formulas=True).dot
    assert ">z<" in formulas  # d((x+y)*z)/d(x+y) = z, written on the edge
    structure = draw(f).dot
    assert ">= " not in structure and ">grad " not in structure


def test_fan_out_draws_one_edge_per_use_and_sums_the_gradient():
    x = gv.var("x")
    dot = draw(x * x, {"x": 3}).dot
    assert dot.count("n0 -> n1") == 2
    assert dot.count("grad 3</FONT>") == 2  # each edge carries its contribution
    assert "grad 6" in dot  # and the node their sum


def test_expand_draws_sigmoid_as_the_slide_gates():
    x, w = gv.vars("x w")
    f = gv.sigmoid(w * x)
    expanded = expand_composites(f)
    labels = [gate_label(n) for n in gv.Graph(expanded).nodes if not n.is_leaf]
    assert labels == ["*", "*-1", "exp", "+1", "1/x"]
    assert gv.value(expanded, x=0.5, w=2) == pytest.approx(gv.value(f, x=0.5, w=2))
    assert "<B>1/x</B>" in draw(f, {"x": 0.5, "w": 2}, expand=True).dot


def test_backward_graph_view_links_gradients_to_variables():
    x, y = gv.vars("x y")
    dot = draw(x * x + y, {"x": 3, "y": 1}, view="backward-graph").dot
    assert "df/dx" in dot and "df/dy" in dot and "#fff1e5" in dot  # gradient nodes styled apart


def test_check_marks_kinks_amber_and_wrong_rules_red():
    from gradviz.core.custom_ops import define_op, remove_op

    x, y = gv.vars("x y")
    assert "#bf8700" in draw(gv.relu(x) * y, {"x": 0, "y": 1}, check=True).dot
    cube = define_op("cube_wrong", forward=lambda v: v ** 3, vjp=lambda g, out, v: g * 2 * v * v)
    try:
        dot = draw(cube(x) + y, {"x": 1.5, "y": 1}, check=True).dot
        line = next(ln for ln in dot.splitlines() if "<B>cube_wrong</B>" in ln)
        assert 'color="#cf222e"' in line and "penwidth=3" in line
    finally:
        remove_op("cube_wrong")


def test_tensor_graph_shows_shapes_and_layer_clusters():
    import numpy as np

    from gradviz.nn.models import build_model

    model = build_model("mlp", (4,), 3, hidden=(8,))
    x = gv.var("x", (5, 4), "float32")
    loss = gv.sum(model(x, train=False))
    env = dict(model.init(np.random.default_rng(0)))
    env[x] = np.ones((5, 4), np.float32)
    dot = draw(loss, env).dot
    assert "subgraph cluster_1" in dot and "float32 [5, 8]" in dot and "mean" in dot
    collapsed = draw(loss, env, collapse=True).dot
    assert "Linear(4 -&gt; 8)" in collapsed and "40 params" in collapsed


def test_frames_follow_reverse_topological_order():
    f = gv.parse(NEURON)
    graph, frames = backprop_frames(f, NEURON_AT)
    ops = [n for n in graph.nodes if not n.is_leaf]
    assert len(frames) == 1 + 1 + len(ops) + 1
    assert frames[0].lines == ["forward pass: every node's value"]
    assert frames[-1].lines[0].startswith("done: df/dw0 = -0.1966")
    last_step = frames[-2]
    assert last_step.marks.highlight is ops[0]  # w0*x0 is the first op, so the last step
    assert set(last_step.marks.final) >= set(graph.variables()) - {graph.nodes[4]}


def test_steps_writes_frames_and_a_self_contained_page(tmp_path):
    x = gv.var("x")
    written = steps(x * x + 1, {"x": 3}, tmp_path / "frames")
    names = sorted(Path(p).name for p in written)
    assert names[-1] == "step-004.svg" and "index.html" in names
    page = (tmp_path / "frames" / "index.html").read_text()
    assert page.count("<svg") == 5 and "ArrowRight" in page
    assert "http://" not in page.replace("http://www.w3.org", "")
    assert "https://" not in page


def test_renderer_order_and_pdf_needs_real_dot(monkeypatch, tmp_path):
    monkeypatch.setenv("GRADVIZ_DOT", "graphviz-pure")
    renderer = backend.find_renderer()
    assert renderer is not None and not renderer.full
    with pytest.raises(GradvizError, match="PDF needs a full Graphviz"):
        backend.render("digraph { a }", "pdf")
    assert backend.render("digraph { a }", "svg").lstrip().startswith(b"<?xml")
    assert backend.render("digraph { a }", "png")[:4] == b"\x89PNG"
    monkeypatch.setenv("GRADVIZ_DOT", str(tmp_path / "missing-dot"))
    with pytest.raises(GradvizError, match="GRADVIZ_DOT"):
        backend.find_renderer()


def run(*args):
    return CliRunner().invoke(cli, list(args))


def test_cli_draw_formats(tmp_path):
    for name in ("c.svg", "c.png", "c.dot"):
        out = tmp_path / name
        result = run("draw", "(x+y)*z", "--at", "x=-2,y=5,z=-4", "-o", str(out))
        assert result.exit_code == 0, result.output
        assert out.stat().st_size > 100
    assert (tmp_path / "c.dot").read_text().startswith("digraph")


def test_cli_steps(tmp_path):
    result = run("steps", NEURON, "--at", "w0=2,x0=-1,w1=-3,x1=-2,w2=-3", "-o",
                 str(tmp_path / "f"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "f" / "step-010.svg").exists()


@pytest.mark.parametrize("args, message", [
    (["draw", "x*y", "--at", "x=1", "--check", "-o", "OUT.svg"], "no value for 'y'"),
    (["draw", "x*", "-o", "OUT.svg"], "syntax error"),
    (["draw", "x*y", "-o", "OUT.pdf", "--at", "x=1,y=2"], "PDF needs"),
    (["draw", "x*y", "-o", "OUT.txt"], "cannot tell the format"),
    (["steps", "x*y", "--at", "x=1", "-o", "OUT"], "no value for 'y'"),
])
def test_cli_bad_input_exit_2_and_no_file(tmp_path, monkeypatch, args, message):
    monkeypatch.setenv("GRADVIZ_DOT", "graphviz-pure")
    args = [a.replace("OUT", str(tmp_path / "out")) for a in args]
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_training_step_collapses_to_layers_loss_and_backward():
    from gradviz.nn.models import build_model
    from gradviz.nn.optim import get_optimizer
    from gradviz.nn.step import build_train_step

    model = build_model("mlp", (4,), 3, hidden=(8,))
    step = build_train_step(model, 16, (4,), optimizer=get_optimizer("sgd"))
    collapsed = draw(step.graph.outputs, collapse=True).dot
    for box in ("<B>Linear(4 -&gt; 8)</B>", "<B>Linear(8 -&gt; 3)</B>", "<B>loss</B>",
                "<B>Linear(4 -&gt; 8) backward</B>", "<B>Linear(8 -&gt; 3) update</B>"):
        assert box in collapsed, box
    assert collapsed.count("->") < 30  # page-sized: a handful of boxes and edges
    assert ">lr<" in collapsed and ">x<" in collapsed  # inputs stay visible
    full = draw(step.graph.outputs).dot
    assert 'label="backward pass and update"' in full and "subgraph cluster_loss" in full
    with pytest.raises(GradvizError, match="one scalar output"):
        draw(step.graph.outputs, {"x": 1})


def test_kernels_outline_what_the_cpu_compiler_fuses(tmp_path):
    from gradviz.compiler.cpu.backend import cpu_schedule

    x, w, b = gv.vars("x w b")
    f = gv.tanh(x * w + b) * 2 + gv.sin(x)
    dot = draw(f, kernels=True).dot
    kernels = cpu_schedule([f]).kernels
    assert dot.count("subgraph cluster_kernel_") == len(kernels) >= 1
    assert 'label="kernel 0: elementwise"' in dot
    result = run("draw", "tanh(x*w+b)", "--kernels", "-o", str(tmp_path / "k.dot"))
    assert result.exit_code == 0 and "kernel 0" in (tmp_path / "k.dot").read_text()
