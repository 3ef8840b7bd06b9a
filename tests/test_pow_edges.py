"""x**y with both operands variables at x = 0 (issue 12, item 1), and the two helper primitives
its gradient is built from: `dpow(a, b)` = b*a**(b-1), 0 where b = 0 (d/da), and
`xlogy(u, v)` = u*log(v), 0 where u = 0 (d/db = xlogy(a**b, a)). PyTorch and autograd give
d/dx = d/dy = 0 at x = 0, y = 2, the maths' answer; where the maths has no derivative
(d/dy at x = 0, y = 0: 0**y jumps) the verdict says so. Regular points: the op spec rows."""
import math

import numpy as np
import pytest
import sympy as sp
from click.testing import CliRunner

import gradviz as gv
from gradviz.cli import cli
from gradviz.core.autodiff import adjoints
from gradviz.verify.report import gradient_report
from gradviz.verify.symbolic import symbol, to_sympy, value_at

# (x, y) -> (df/dx, df/dy) of x**y, the maths' values where they exist (and PyTorch's and
# autograd's: both give these at every point here but (0, 0), where they give d/dy = 0)
EDGES = [((0.0, 2.0), (0.0, 0.0)), ((0.0, 1.0), (1.0, 0.0)), ((0.0, 0.5), (math.inf, 0.0)),
         ((0.0, 3.0), (0.0, 0.0)), ((2.0, 0.0), (0.0, math.log(2.0)))]


@pytest.mark.parametrize("at, want", EDGES)
def test_backprop_and_the_gradient_graph_at_zero_base(at, want):
    x, y = gv.vars("x y")
    f = x ** y
    env = dict(zip("xy", at))
    fast = gv.backprop(f, env)  # Python floats (scalar_vjp)
    assert (fast.grad(x), fast.grad(y)) == want
    assert (gv.value(gv.grad(f, x), env), gv.value(gv.grad(f, y), env)) == want  # graph


def test_grad_at_zero_two_agrees_three_ways():
    report = gradient_report("x**y", {"x": 0, "y": 2})
    for name in "xy":
        r = report.row(name)
        assert (r.backprop, r.numeric, r.symbolic, r.verdict) == (0.0, 0.0, 0.0, "agree")
    assert report.summary == "backprop, finite differences and SymPy agree"
    result = CliRunner().invoke(cli, ["grad", "x**y", "--at", "x=0,y=2"])
    assert result.exit_code == 0, result.output
    assert "nan" not in result.output and "DISAGREE" not in result.output


def test_zero_to_the_zero_is_a_jump_in_y_and_flat_in_x():
    report = gradient_report("x**y", {"x": 0, "y": 0})
    dx, dy = report.row("x"), report.row("y")
    assert (dx.backprop, dx.symbolic, dx.verdict) == (0.0, 0.0, "agree")  # x**0 = 1 for all x
    assert dy.verdict == "not differentiable here (jump)" and dy.agree is None
    assert dy.backprop == dy.symbolic == -math.inf  # the formula's limit; never nan
    assert report.ok


def test_elsewhere_nothing_changes():
    r = gradient_report("x**y", {"x": 1.5, "y": -0.5})
    assert r.summary == "backprop, finite differences and SymPy agree"
    assert [row.formula for row in r.rows] == ["x**y*y/x", "x**y*log(x)"]
    assert gradient_report("x**y", {"x": -2, "y": 2}).row("y").verdict == "undefined nearby"


def test_node_checks_at_zero_base():
    report = gradient_report("x**y", {"x": 0, "y": 2}, nodes=True)
    assert report.ok and all(row.symbolic == 0.0 for row in report.nodes.rows)


def test_symbolic_value_takes_the_limit_only_where_the_formula_is_indeterminate():
    x, y = symbol("x"), symbol("y")
    assert value_at(x ** y * sp.log(x), {"x": 0.0, "y": 2.0}) == 0.0
    assert value_at(x ** y * y / x, {"x": 0.0, "y": 2.0}) == 0.0
    assert value_at(x ** y * sp.log(x), {"x": 0.0, "y": 0.0}) == -math.inf
    assert value_at(sp.sin(x) / x, {"x": 0.0}) == 1.0
    assert math.isnan(value_at(x / sp.Abs(x), {"x": 0.0}))  # the two sides differ
    assert value_at(x * y + 1, {"x": 2.0, "y": 3.0}) == 7.0


# -- second derivatives: the backward graph differentiates again ---------------------------------
def test_second_derivatives_of_a_power():
    x, y = gv.vars("x y")
    f = x ** y
    sx, sy = symbol("x"), symbol("y")
    for a in (x, y):
        for b in (x, y):
            d2 = gv.grad(gv.grad(f, a), b)
            want = sp.diff(sx ** sy, symbol(a.name), symbol(b.name))
            for at in ({"x": 2.0, "y": 3.0}, {"x": 0.7, "y": -1.3}):
                exact = float(want.subs({sx: at["x"], sy: at["y"]}))
                assert gv.value(d2, at) == pytest.approx(exact, rel=1e-12), (a.name, b.name)
            assert sp.simplify(to_sympy(d2) - want) == 0
    # at x = 0, y = 2: d2f/dx2 = 2 and d2f/dydx = d/dy (y*x**(y-1)) = 0, as autograd gives
    at = {"x": 0.0, "y": 2.0}
    assert gv.value(gv.grad(gv.grad(f, x), x), at) == 2.0
    assert gv.value(gv.grad(gv.grad(f, x), y), at) == 0.0


def test_check_proves_claims_about_powers():
    from gradviz.verify.claims import check_claim_text

    assert check_claim_text("x**y", "y", "log(x)*x**y").verdict == "verified"
    assert check_claim_text("x**y", "x", "y*x**(y-1)").verdict == "verified"
    assert check_claim_text("x**x", "x", "exp(x*log(x))*(log(x)+1)").verdict == "verified"


# -- the helpers themselves ------------------------------------------------------------------------
def test_helpers_conventions_in_the_interpreter():
    u = np.array([0.0, 0.0, 0.0, 2.0, 1.0, -1.0])
    v = np.array([0.0, 2.0, -1.0, 0.5, 0.0, 3.0])
    a, b = gv.var("a", (6,)), gv.var("b", (6,))
    xlogy, dpow = gv.xlogy(a, b), gv.dpow(a, b)
    got = gv.evaluate([xlogy, dpow], {a: u, b: v})
    np.testing.assert_array_equal(got[xlogy], [0.0, 0.0, 0.0, 2 * math.log(0.5), -math.inf,
                                               -math.log(3.0)])
    np.testing.assert_array_equal(got[dpow], [0.0, 0.0, -math.inf, 0.5 * 2.0 ** -0.5, 0.0,
                                              3.0 * (-1.0) ** 2])
    p, q = gv.vars("p q")
    assert gv.value(gv.xlogy(p, q), p=0.0, q=0.0) == 0.0   # float rules
    assert gv.value(gv.dpow(p, q), p=0.0, q=0.0) == 0.0
    assert gv.value(gv.xlogy(p, q), p=1.0, q=0.0) == -math.inf  # the float rule falls back
    assert gv.parse("xlogy(x, y) + dpow(x, y)").src[0].op == "xlogy"


def _edge_graph(dtype, edges=EDGES, zero_zero=True):
    """x**y, its gradients and the two helpers on vectors of the `edges` points (and (0, 0))."""
    n = len(edges) + zero_zero
    a, b = gv.var("a", (n,), dtype), gv.var("b", (n,), dtype)
    f = a ** b
    adj = adjoints(f, gv.const(np.ones(f.shape), dtype))
    outputs = [f, adj.of[a], adj.of[b], gv.xlogy(a, b), gv.dpow(a, b)]
    xs = [p[0][0] for p in edges] + [0.0] * zero_zero
    ys = [p[0][1] for p in edges] + [0.0] * zero_zero
    env = {a: np.array(xs, dtype), b: np.array(ys, dtype)}
    return outputs, env


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_compiled_cpu_keeps_the_conventions(dtype):
    outputs, env = _edge_graph(dtype)
    got = gv.compile(outputs)(env)
    want = gv.evaluate(outputs, env)
    for node, value in zip(outputs, got):
        assert np.asarray(value).dtype == np.dtype(dtype)
        np.testing.assert_allclose(value, want[node], rtol=1e-6)
    dx, dy = got[1], got[2]
    np.testing.assert_array_equal(dx[:-1], np.array([w[1][0] for w in EDGES], dtype))
    np.testing.assert_allclose(dy[:-1], np.array([w[1][1] for w in EDGES], dtype), rtol=1e-6)
