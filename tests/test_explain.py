"""The chain rule written out: the slides' sigmoid neuron factor by factor, fan-out, many paths."""
import json

import pytest
from click.testing import CliRunner

import gradviz as gv
from gradviz.cli import cli
from gradviz.verify.explain import MAX_PATHS, explain

NEURON = "1/(1+exp(-(w0*x0+w1*x1+w2)))"
NEURON_AT = {"w0": 2, "x0": -1, "w1": -3, "x1": -2, "w2": -3}


def test_sigmoid_neuron_matches_the_slide():
    # dz/dw0 = dz/dv dv/du du/dr dr/dt dt/ds ds/dq dq/dw0 = (-0.53)(1)(0.37)(-1)(1)(1)(x0)
    result = explain(gv.parse(NEURON), "w0", NEURON_AT)
    assert result.path_count == 1
    (path,) = result.paths
    assert [round(f.value, 2) for f in path.factors] == [-0.53, 1, 0.37, -1, 1, 1, -1]
    assert [f.formula for f in path.factors] == ["-1/j**2", "1", "exp(g)", "-1", "1", "1", "x0"]
    assert [f"{f.of}/{f.by}" for f in path.factors] == [
        "f/j", "j/h", "h/g", "g/d", "d/c", "c/a", "a/w0"]
    assert path.product == pytest.approx(-0.19661193324148185, rel=1e-12)
    assert result.derivative == pytest.approx(path.product, rel=1e-12)
    assert [(d.name, d.definition) for d in result.definitions] == [
        ("a", "w0*x0"), ("b", "w1*x1"), ("c", "a + b"), ("d", "c + w2"), ("g", "-d"),
        ("h", "exp(g)"), ("j", "h + 1"), ("f", "1/j")]


def test_sigmoid_neuron_text_like_the_slide():
    text = explain(gv.parse(NEURON), "w0", NEURON_AT).text()
    assert "df/dw0 = df/dj · dj/dh · dh/dg · dg/dd · dd/dc · dc/da · da/dw0" in text
    assert "= (-1/j**2)(1)(exp(g))(-1)(1)(1)(x0)" in text
    assert "= (-0.53)(1)(0.37)(-1)(1)(1)(-1)" in text
    assert "= -0.1966" in text


def test_reused_value_gives_one_path_per_edge():
    x, y = gv.vars("x y")
    f = x * x + gv.sigmoid(x * y)
    result = explain(f, x, {"x": 3.0, "y": 0.5})
    assert result.path_count == 3
    first, second, third = result.paths
    assert [f.symbol() for f in first.factors] == ["df/da", "da/dx[1]"]
    assert [f.symbol() for f in second.factors] == ["df/da", "da/dx[2]"]
    assert third.factors[1].formula == "c*(1 - c)"  # the sigmoid, in its own name
    assert sum(p.product for p in result.paths) == pytest.approx(
        gv.backprop(f, x=3.0, y=0.5).grad(x), rel=1e-12)
    assert "[k]: along the k-th operand" in result.text()


def test_named_nodes_keep_their_names():
    x, y, z = gv.vars("x y z")
    q = (x + y).named("q")
    f = (q * z).named("f")
    result = explain(f, x, {"x": -2, "y": 5, "z": -4})
    (path,) = result.paths
    assert [f.symbol() for f in path.factors] == ["df/dq", "dq/dx"]
    assert [f.value for f in path.factors] == [-4, 1]


def test_too_many_paths_are_summed_not_listed():
    x = gv.var("x")
    f = x
    for _ in range(6):
        f = f * f  # x**64 along 2**6 paths
    result = explain(f, x, {"x": 1.01})
    assert result.path_count == 64 and len(result.paths) == MAX_PATHS
    listed = sum(p.product for p in result.paths)
    assert listed + result.rest == pytest.approx(64 * 1.01 ** 63, rel=1e-12)
    assert "(the other 32 paths)" in result.text()


def test_zero_gradient_edges_and_no_dependence():
    x, y = gv.vars("x y")
    result = explain(gv.step(x) * y, x, {"x": 1.0, "y": 2.0})
    assert [f.value for f in result.paths[0].factors] == [2.0, 0.0]
    assert result.derivative == 0
    unrelated = explain(y * 2, x, {"x": 1.0, "y": 2.0})
    assert unrelated.paths == [] and "f does not depend on x" in unrelated.text()


def run(*args):
    return CliRunner().invoke(cli, ["explain", *args])


def test_cli_text_json_latex():
    at = "w0=2,x0=-1,w1=-3,x1=-2,w2=-3"
    text = run(NEURON, "--wrt", "w0", "--at", at)
    assert text.exit_code == 0 and "(-0.53)(1)(0.37)(-1)(1)(1)(-1)" in text.output
    more = run(NEURON, "--wrt", "w0", "--at", at, "--digits", "4")
    assert "(-0.5344)(1)(0.3679)(-1)(1)(1)(-1)" in more.output
    out = json.loads(run(NEURON, "--wrt", "w0", "--at", at, "--json").output)
    assert out["path_count"] == 1 and out["derivative"] == pytest.approx(-0.19661, abs=1e-5)
    assert [f["formula"] for f in out["paths"][0]["factors"]][0] == "-1/j**2"
    assert out["nodes"][0] == {"name": "a", "definition": "w0*x0", "value": -2.0}
    latex = run(NEURON, "--wrt", "w0", "--at", at, "--latex").output
    assert r"\frac{\partial f}{\partial w_{0}} &= \frac{\partial f}{\partial j}" in latex
    assert r"\left(- \frac{1}{j^{2}}\right)" in latex


def test_kinks_are_flagged():
    x, y = gv.vars("x y")
    tie = explain(gv.maximum(x, y) * 2, x, {"x": 1.0, "y": 1.0})
    factors = tie.paths[0].factors
    assert [f.kink for f in factors] == [False, True]
    assert "not differentiable here: a sits on a kink" in tie.text()
    assert not any(f.kink for f in explain(gv.maximum(x, y), x, {"x": 2.0, "y": 1.0})
                   .paths[0].factors)


@pytest.mark.parametrize("args, message", [
    (["log(x)", "--wrt", "x", "--at", "x=-1"], "not defined at this point"),
    (["x*y", "--wrt", "x", "--at", "x=1"], "no value for 'y'"),
    (["x*y", "--wrt", "z", "--at", "x=1,y=2"], "does not use it"),
    (["x*y", "--wrt", "x"], "Missing option '--at'"),
    (["x*", "--wrt", "x", "--at", "x=1"], "syntax error"),
])
def test_bad_input_exits_2(args, message):
    result = run(*args)
    assert result.exit_code == 2 and message in result.output
    assert result.output.startswith("gradviz: error:")
