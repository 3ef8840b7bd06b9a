"""`gradviz grad` through click's test runner: golden numbers, JSON shape, exit codes."""
import json

import pytest
from click.testing import CliRunner

from gradviz.cli import cli


def run(*args):
    return CliRunner().invoke(cli, list(args))


def grad_json(*args):
    result = run("grad", *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


GOLDEN = [
    ("(x+y)*z", "x=-2,y=5,z=-4", -12, {"x": -4, "y": -4, "z": 3}),
    ("1/(1+exp(-(w0*x0+w1*x1+w2)))", "w0=2,x0=-1,w1=-3,x1=-2,w2=-3", 0.7311,
     {"w0": -0.1966, "x0": 0.3932, "w1": -0.3932, "x1": -0.5898, "w2": 0.1966}),
    ("abs(4 - (x*w + b))", "x=2,w=3,b=1", 3, {"x": 3, "w": 2, "b": 1}),
]


@pytest.mark.parametrize("expr, at, value, grads", GOLDEN, ids=[g[0] for g in GOLDEN])
def test_golden_examples_by_backprop_and_finite_differences(expr, at, value, grads):
    out = grad_json(expr, "--at", at)
    assert out["expression"] == expr
    assert out["value"] == pytest.approx(value, abs=1e-4)
    assert out["agree"] is True
    assert set(out["gradients"]) == set(grads)
    for name, want in grads.items():
        entry = out["gradients"][name]
        assert entry["backprop"] == pytest.approx(want, abs=1e-4)
        assert entry["numeric"] == pytest.approx(want, abs=1e-4)
        assert entry["agree"] is True and entry["status"] == "ok"


SYMBOLIC = [
    ("(x+y)*z", "x=-2,y=5,z=-4", {"x": "z", "y": "z", "z": "x + y"}),
    ("abs(4 - (x*w + b))", "x=2,w=3,b=1", {"b": "sign(b + w*x - 4)"}),
    ("(w*x+b-y)**2/2", "w=0.5,x=2,b=1,y=3", {"w": "x*(b + w*x - y)"}),
]


@pytest.mark.parametrize("expr, at, formulas", SYMBOLIC, ids=[s[0] for s in SYMBOLIC])
def test_symbolic_formula_and_value(expr, at, formulas):
    out = grad_json(expr, "--at", at)
    for name, formula in formulas.items():
        entry = out["gradients"][name]
        assert entry["formula"] == formula
        assert entry["symbolic"] == pytest.approx(entry["backprop"], rel=1e-12)
        assert entry["proof"] == "proved"


def test_sigmoid_neuron_symbolic_values():
    out = grad_json("1/(1+exp(-(w0*x0+w1*x1+w2)))", "--at", "w0=2,x0=-1,w1=-3,x1=-2,w2=-3")
    assert out["gradients"]["w0"]["symbolic"] == pytest.approx(-0.19661193324148185, rel=1e-12)
    assert out["gradients"]["w0"]["formula"].startswith("x0*exp(")


def test_latex_flag():
    out = grad_json("sin(x)*y", "--at", "x=0,y=2", "--latex")
    assert out["gradients"]["x"]["latex"] == r"y \cos{\left(x \right)}"
    result = run("grad", "sin(x)*y", "--at", "x=0,y=2", "--latex")
    assert r"\frac{\partial f}{\partial y} = \sin{\left(x \right)}" in result.output


def test_wrong_sympy_rule_makes_gradients_disagree(monkeypatch):
    import sympy

    from gradviz.verify import symbolic

    monkeypatch.setitem(symbolic.sympy_rules, "tanh", lambda n, x: sympy.tanh(2 * x))
    result = run("grad", "tanh(x)", "--at", "x=0.3", "--json")
    assert result.exit_code == 1
    out = json.loads(result.output)
    assert out["agree"] is False and out["gradients"]["x"]["agree"] is False
    table = run("grad", "tanh(x)", "--at", "x=0.3")
    assert table.exit_code == 1 and "DISAGREE" in table.output


def test_table_output():
    result = run("grad", "(x+y)*z", "--at", "x=-2,y=5,z=-4")
    assert result.exit_code == 0
    assert "f = -12" in result.output
    assert "df/dz  3" in result.output
    assert "agree" in result.output


def test_wrt_and_repeated_at():
    out = grad_json("x*y*z", "--at", "x=1,y=2", "--at", "z=3", "--wrt", "y")
    assert list(out["gradients"]) == ["y"] and out["gradients"]["y"]["backprop"] == 3


def test_kink_is_reported_not_a_disagreement():
    out = grad_json("relu(x) + y", "--at", "x=0,y=1")
    assert out["gradients"]["x"]["status"] == "kink"
    assert out["gradients"]["x"]["agree"] is None
    assert out["agree"] is True


@pytest.mark.parametrize("args, message", [
    (["__import__('os').system('id')"], "attribute access"),
    (["x*y", "--at", "x=1"], "no value for 'y'"),
    (["x*y", "--at", "x=1,y=2,q=3"], "does not use"),
    (["x", "--at", "x=abc"], "not a number"),
    (["x", "--at", "x"], "name=value"),
    (["x", "--at", "x=1,x=2"], "twice"),
    (["x", "--at", "x=inf"], "finite"),
    (["x", "--at", "x=1", "--wrt", "y"], "does not use"),
    (["foo(x)", "--at", "x=1"], "unknown function 'foo'"),
    (["x +", "--at", "x=1"], "column"),
    (["log(x)", "--at", "x=-1"], "not defined at this point"),
    (["x", "--bogus"], "No such option"),
])
def test_bad_input_is_one_line_and_exit_2(args, message):
    result = run("grad", *args)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gradviz: error:")
    assert message in lines[0]
    assert "Traceback" not in result.output


def test_help_lists_commands():
    result = run("--help")
    assert result.exit_code == 0 and "grad" in result.output


# gradient_report: the library function `gradviz grad` prints


def test_the_python_api_example_runs():
    from pathlib import Path

    page = (Path(__file__).resolve().parent.parent / "docs" / "python-api.md").read_text()
    block = page.split("<!-- gradient-report example -->\n```python\n")[1].split("```")[0]
    exec(compile(block, "docs/python-api.md", "exec"), {})


@pytest.mark.parametrize("args", [
    ("(x+y)*z", "--at", "x=-2,y=5,z=-4"),
    ("relu(w*x)", "--at", "x=1,w=0", "--wrt", "w", "--latex"),
    ("x*y + exp(x)", "--at", "x=0.5,y=2", "--nodes"),
])
def test_the_command_prints_the_report(args):
    import gradviz as gv
    from gradviz.cli.common import parse_names, parse_points

    expr, at = args[0], parse_points(args[2])
    wrt = parse_names(args[args.index("--wrt") + 1]) if "--wrt" in args else []
    report = gv.gradient_report(expr, at=at, wrt=wrt, latex="--latex" in args,
                                nodes="--nodes" in args)
    text = run("grad", *args)
    assert text.output == report.text() + "\n"
    assert text.exit_code == (0 if report.ok else 1)
    assert json.loads(run("grad", *args, "--json").output) == report.to_json()


def test_a_report_from_nodes_names_the_variables():
    import gradviz as gv

    a, b = gv.vars("a b")
    report = gv.gradient_report(a * b + a, at={a: 2.0, "b": 3.0}, wrt=[a])
    assert [r.name for r in report.rows] == ["a"]
    assert report.expression == "a * b + a" and report.point == {"a": 2.0, "b": 3.0}
    assert report.row("a").backprop == 4.0 and report.row("a").formula == "b + 1"
    with pytest.raises(KeyError):
        report.row("b")


def test_a_report_says_what_is_missing():
    import gradviz as gv

    with pytest.raises(gv.GradvizError, match="no value for 'z'"):
        gv.gradient_report("x*z", at={"x": 1.0})
    with pytest.raises(gv.GradvizError, match="--wrt names 'q'"):
        gv.gradient_report("x*z", at={"x": 1.0, "z": 2.0}, wrt=["q"])
