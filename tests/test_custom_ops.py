"""User-defined ops, and finding the node whose derivative rule is wrong."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

import gradviz as gv
from gradviz.cli import cli
from gradviz.core.custom_ops import define_op, defined_ops, remove_op
from gradviz.verify.node_checks import OK, SYMPY_WRONG, WRONG, check_nodes
from gradviz.verify.finite_differences import numeric_grad
from gradviz.core.rules import primitives


@pytest.fixture(autouse=True)
def clean_registry():
    before = set(primitives())
    yield
    for name in defined_ops():
        remove_op(name)
    assert set(primitives()) == before


def cube_op(vjp=lambda g, out, x: g * 3 * x * x):
    return define_op("cube", forward=lambda x: x ** 3, vjp=vjp, sympy=lambda x: x ** 3)


def test_custom_op_runs_everywhere_the_tables_reach():
    cube = cube_op()
    x, y = gv.vars("x y")
    f = gv.sin(cube(x * y)) + x
    r = gv.backprop(f, x=1.5, y=-0.7)
    u = 1.5 * -0.7
    assert r.value == pytest.approx(np.sin(u ** 3) + 1.5, rel=1e-14)
    assert r.grad(x) == pytest.approx(np.cos(u ** 3) * 3 * u ** 2 * -0.7 + 1, rel=1e-12)
    from gradviz.verify.symbolic import PROVED, symbolic_gradients
    assert all(g.proof.status == PROVED for g in symbolic_gradients(f).values())
    assert str(gv.parse("cube(x) + 1")) == "cube(x) + 1"
    d2 = gv.grad(gv.grad(cube(x), x), x)  # the VJP rule built nodes, so it differentiates again
    assert gv.value(d2, x=2.0) == pytest.approx(12.0)


def test_wrong_vjp_is_located_by_node():
    cube = cube_op(vjp=lambda g, out, x: g * 3 * x)  # forgot a factor of x
    x, y = gv.vars("x y")
    f = gv.sin(cube(x * y)) + x
    point = {"x": 1.5, "y": -0.7}
    whole = gv.backprop(f, point).grad(x)
    assert whole != pytest.approx(numeric_grad(f, point)[x].value)  # the symptom
    report = check_nodes(f, point)
    bad = report.first_wrong
    assert bad is not None and bad.status == WRONG
    assert bad.label == "b = cube(a)" and bad.operand_label == "a"
    u = 1.5 * -0.7
    assert bad.vjp == pytest.approx(3 * u, rel=1e-12)
    assert bad.numeric == pytest.approx(3 * u ** 2, rel=1e-8)
    assert bad.symbolic == pytest.approx(3 * u ** 2, rel=1e-12)
    assert [r.status for r in report.rows if r is not bad] == [OK] * (len(report.rows) - 1)
    assert "first wrong node: b = cube(a): its VJP rule gives -3.15 for d/da" in str(report)


def test_wrong_operand_of_a_two_input_op():
    sqdiff = define_op("sqdiff", forward=lambda a, b: (a - b) ** 2,
                       vjp=lambda g, out, a, b: (g * 2 * (a - b), g * 2 * (a - b)))
    x, y = gv.vars("x y")
    report = check_nodes(sqdiff(x, y) * 3, {"x": 2.0, "y": 0.5})
    statuses = [(r.label, r.operand_label, r.status) for r in report.rows]
    assert statuses[:2] == [("a = sqdiff(x, y)", "x", OK), ("a = sqdiff(x, y)", "y", WRONG)]
    assert report.rows[0].symbolic is None  # no SymPy rule given


def test_wrong_sympy_rule_is_reported_too():
    define_op("cube", forward=lambda x: x ** 3, vjp=lambda g, out, x: g * 3 * x * x,
              sympy=lambda x: x ** 2)
    report = check_nodes(gv.parse("cube(x)"), {"x": 2.0})
    assert report.first_wrong.status == SYMPY_WRONG
    assert (report.first_wrong.vjp, report.first_wrong.symbolic) == (12.0, 4.0)


def test_builtin_graphs_check_out_including_tensors_and_kinks():
    a, b = gv.var("a", (2, 3)), gv.var("b", (3,))
    f = gv.sum(gv.tanh(a * b) @ gv.const(np.ones((3, 2))))
    report = check_nodes(f, {"a": np.arange(6.0).reshape(2, 3) / 6, "b": [0.5, -1.0, 2.0]})
    assert report.ok and {r.status for r in report.rows} == {OK}
    kink = check_nodes(gv.parse("relu(x) * y"), {"x": 0.0, "y": 2.0})
    assert kink.ok and kink.rows[0].status == "kink"


def test_tensor_custom_op_is_elementwise():
    soft_sign = define_op("soft_sign", forward=lambda x: x / (1 + np.abs(x)),
                         vjp=lambda g, out, x: g / ((1 + abs(x)) * (1 + abs(x))))
    v = gv.var("v", (4,))
    out = gv.sum(soft_sign(v) * 2.0)
    point = {"v": np.array([-2.0, -0.5, 0.5, 3.0])}
    assert np.allclose(gv.backprop(out, point).grad(v), 2 / (1 + np.abs(point["v"])) ** 2)
    assert check_nodes(out, point).ok


def test_redefining_replaces_and_builtins_are_protected():
    cube_op(vjp=lambda g, out, x: g * 3 * x)
    cube = cube_op()
    assert gv.backprop(cube(gv.var("x")), x=2.0).grad("x") == 12.0
    with pytest.raises(gv.GradvizError, match="built-in op"):
        define_op("exp", forward=np.exp, vjp=lambda g, out, x: g * out, arity=1)
    with pytest.raises(gv.GradvizError, match="identifier"):
        define_op("my op", forward=lambda x: x, vjp=lambda g, out, x: g)
    with pytest.raises(gv.GradvizError, match="pass arity"):
        define_op("wrapped", forward=lambda *xs: sum(xs), vjp=lambda g, out, *xs: g)
    pair = define_op("pairsum", forward=lambda a, b: a + b, vjp=lambda g, out, a, b: g)
    with pytest.raises(gv.GradvizError, match="returned 1 gradient"):
        gv.grad(pair(gv.var("p"), gv.var("q")), gv.var("p"))


def test_grad_cli_nodes_flag_names_the_wrong_node():
    runner = CliRunner()
    fine = runner.invoke(cli, ["grad", "abs(4 - (x*w + b))", "--at", "x=2,w=3,b=1", "--nodes"])
    assert fine.exit_code == 0 and "every node's local derivative checks out" in fine.output
    cube_op(vjp=lambda g, out, x: g * 3 * x)  # visible to the parser in this process
    bad = runner.invoke(cli, ["grad", "cube(x) + x", "--at", "x=2", "--nodes", "--json"])
    assert bad.exit_code == 1
    out = json.loads(bad.output)
    assert out["wrong_node"] == "a = cube(x)"
    assert out["nodes"][0] == {"node": "a = cube(x)", "operand": 0, "input": "x", "vjp": 6.0,
                               "numeric": pytest.approx(12.0), "symbolic": 12.0,
                               "status": "wrong"}


def test_grad_cli_without_a_sympy_rule_still_compares_the_other_two():
    define_op("soft_sign", forward=lambda x: x / (1 + np.abs(x)),
              vjp=lambda g, out, x: g / ((1 + abs(x)) * (1 + abs(x))))
    result = CliRunner().invoke(cli, ["grad", "soft_sign(x)*2", "--at", "x=0.5", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["agree"] is True and "no SymPy rule for op 'soft_sign'" in out["symbolic_error"]
    entry = out["gradients"]["x"]
    assert entry["symbolic"] is None and entry["formula"] is None and entry["agree"] is True
    table = CliRunner().invoke(cli, ["grad", "soft_sign(x)*2", "--at", "x=0.5"])
    assert "agree (no SymPy)" in table.output and "no SymPy formulas:" in table.output

