"""Graph <-> SymPy: the op spec table, the two symbolic gradient routes, proofs, formula text."""
import math

import numpy as np
import pytest
import sympy as sp

import gradviz as gv
from gradviz.errors import GradvizError
from gradviz.verify.symbolic import (DIFFERENT, NOT_PROVED, PROVED, diff, evaluate, formula_text,
                                     from_sympy, is_zero, prove_equal, symbol,
                                     symbolic_gradients, sympy_rules, to_sympy)
from op_specs import SPECS

SCALAR = [s for s in SPECS if s.scalar]


def test_every_scalar_spec_has_a_sympy_rule():
    # every primitive has a rule or is tensor-only: tests/test_registry.py
    assert {s.primitive for s in SCALAR} <= set(sympy_rules)


@pytest.mark.parametrize("spec", SCALAR, ids=[s.name for s in SCALAR])
def test_spec_value_and_derivative_match_interpreter_and_backprop(spec):
    nodes = spec.nodes()
    out = spec.build(*nodes)
    expr = to_sympy(out)
    for seed in (5, 6):
        point = {n.name: float(v) for n, v in zip(nodes, spec.inputs(seed=seed))}
        assert evaluate(expr, point) == pytest.approx(gv.value(out, point), rel=1e-12, abs=1e-14)
        result = gv.backprop(out, point)
        for node in nodes:
            d = diff(expr, symbol(node.name))
            assert evaluate(d, point) == pytest.approx(result.grad(node), rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("spec", SCALAR, ids=[s.name for s in SCALAR])
def test_spec_gradients_two_ways_are_proved_equal(spec):
    nodes = spec.nodes()
    for g in symbolic_gradients(spec.build(*nodes), nodes).values():
        assert g.proof.status == PROVED, (spec.name, g.expr, g.backward)


@pytest.mark.parametrize("spec", SCALAR, ids=[s.name for s in SCALAR])
def test_spec_round_trips_through_sympy(spec):
    nodes = spec.nodes()
    expr = to_sympy(spec.build(*nodes))
    variables = {n.name: n for n in nodes}
    back = from_sympy(expr, variables)
    point = {n.name: float(v) for n, v in zip(nodes, spec.inputs(seed=7))}
    assert gv.value(back, point) == pytest.approx(evaluate(expr, point), rel=1e-12, abs=1e-14)


def test_symbols_are_real_so_abs_differentiates_to_sign():
    x = gv.var("x")
    assert diff(to_sympy(abs(x)), symbol("x")) == sp.sign(symbol("x"))


def test_constants_become_exact_numbers():
    x = gv.var("x")
    assert to_sympy((x * 0.5 + 0.1) ** 2) == (symbol("x") / 2 + sp.Rational(1, 10)) ** 2
    assert to_sympy(x * 0.1234567891).args[0] == sp.Float(0.1234567891, 17)
    # the float of a known constant is that constant (gelu's rules, log10, the parser's pi)
    assert to_sympy(x * math.pi) == sp.pi * symbol("x")
    assert to_sympy(x * math.sqrt(0.5)) == symbol("x") / sp.sqrt(2)
    assert to_sympy(x / math.log(10.0)) == symbol("x") / sp.log(10)
    assert to_sympy(x * (math.pi + 1e-15)).args[0] != sp.pi  # only the exact float


def test_step_and_sign_have_zero_derivative_away_from_the_kink():
    x = gv.var("x")
    assert diff(to_sympy(gv.step(x) * x), symbol("x")) == sp.Heaviside(symbol("x"), 0)
    assert diff(to_sympy(gv.sign(x)), symbol("x")) == 0


def test_kinked_ops_are_proved_equal_almost_everywhere():
    x, y = gv.vars("x y")
    f = gv.maximum(x * y, y) + gv.relu(x - y) + gv.minimum(x, 2.0) * abs(y)
    for g in symbolic_gradients(f).values():
        assert g.proof.status == PROVED


def test_backward_graph_of_backward_graph_translates():
    x, y = gv.vars("x y")
    f = x ** 3 * y + gv.sin(x * y)
    dfdx = gv.grad(f, x)
    d2 = gv.grad(dfdx, y)
    sx, sy = symbol("x"), symbol("y")
    want = sp.diff(sx ** 3 * sy + sp.sin(sx * sy), sx, sy)
    assert is_zero(to_sympy(d2) - want)


def test_prove_equal_statuses():
    x, y = symbol("x"), symbol("y")
    assert prove_equal(sp.tanh(x) ** 2, 1 - 1 / sp.cosh(x) ** 2).status == PROVED
    differ = prove_equal(x * y, x + y)
    assert differ.status == DIFFERENT
    a, b = differ.values
    assert a != pytest.approx(b) and a == pytest.approx(differ.point["x"] * differ.point["y"])


def test_prove_equal_falls_back_to_random_points(monkeypatch):
    from gradviz.verify import symbolic

    monkeypatch.setattr(symbolic, "is_zero", lambda expr: False)
    x = symbol("x")
    proof = symbolic.prove_equal(sp.sin(x) ** 2 + sp.cos(x) ** 2, sp.Integer(1), points=12)
    assert proof.status == NOT_PROVED and proof.points == 12


def test_random_points_skip_where_undefined():
    x = symbol("x")
    proof = prove_equal(sp.log(x) * 0 + 1, sp.Integer(2) - 1)
    assert proof.status == PROVED
    assert math.isnan(evaluate(sp.log(x), {"x": -1.0}))


def test_from_sympy_builds_readable_graphs():
    x, y = symbol("x"), symbol("y")
    variables = {}
    node = from_sympy(x * sp.exp(-x) / (1 + sp.exp(-x)) ** 2 - 3 * y / 2, variables)
    assert str(node) == "x * exp(-x) / (1 + exp(-x)) ** 2 - 3 * y / 2"
    assert set(variables) == {"x", "y"}
    assert str(from_sympy(sp.sqrt(x) + sp.Max(x, y, 0) + sp.Heaviside(x))) == \
        "sqrt(x) + step(x) + max(max(0, x), y)"
    with pytest.raises(GradvizError, match="takes a SymPy expression"):
        from_sympy("x + 1")
    with pytest.raises(GradvizError, match="no gradviz op for SymPy"):
        from_sympy(sp.acosh(x))
    assert str(from_sympy(sp.atan2(y, x) + sp.erf(sp.atan(x)))) == "atan2(y, x) + erf(atan(x))"


def test_formula_text_parses_back_to_the_same_function():
    f = gv.parse("relu(w*x) + max(x, b) * abs(b) + leaky_relu(x, 0.1) + elu(w, 0.5)")
    point = {"w": 0.7, "x": -1.3, "b": 0.4}
    for node, g in symbolic_gradients(f).items():
        text = g.text()
        again = gv.parse(text, {})
        assert gv.value(again, point) == pytest.approx(gv.backprop(f, point).grad(node),
                                                       rel=1e-12)


def test_big_formulas_name_shared_subterms():
    ws = gv.vars("w0 w1 w2 w3")
    h = sum(gv.tanh(w * (i + 1.0)) for i, w in enumerate(ws))
    f = gv.sigmoid(h * h + gv.exp(h))
    g = symbolic_gradients(f, [ws[0]])[ws[0]]
    text = g.text()
    assert text.count(";") >= 1 and text.startswith("c0 = ")
    assert "w0" in text


def test_tensor_graphs_are_refused():
    a = gv.var("a", (2, 3))
    with pytest.raises(GradvizError, match="scalar graphs"):
        to_sympy(gv.sum(a))


def test_two_variables_with_one_name_are_refused():
    with pytest.raises(GradvizError, match="two different variables"):
        to_sympy(gv.var("x") + gv.var("x"))


def test_deep_graph_translates_without_recursion():
    x = gv.var("x")
    f = x
    for _ in range(3000):
        f = f + 1.0
    assert to_sympy(f) == symbol("x") + 3000


def test_latex_of_a_gradient():
    w0, x0 = gv.vars("w0 x0")
    g = symbolic_gradients(gv.exp(w0 * x0), [w0])[w0]
    assert g.latex() == r"x_{0} e^{w_{0} x_{0}}"
    assert g.value({"w0": 1.0, "x0": 2.0}) == pytest.approx(2 * np.exp(2.0), rel=1e-14)


def test_substitute_stops_the_translation():
    a = gv.var("a", (2, 3))
    total = gv.sum(a)  # a tensor op behind the substituted node is never translated
    s = sp.Symbol("s", real=True)
    assert to_sympy(gv.exp(total) * 2, {total: s}) == 2 * sp.exp(s)


@pytest.mark.skipif(not hasattr(__import__("signal"), "setitimer"), reason="needs SIGALRM timers")
def test_time_budget_stops_a_runaway_computation_and_restores_the_signal():
    import signal
    import time

    from gradviz.verify.symbolic import _within

    def forever():
        while True:
            time.sleep(0.001)

    before = signal.getsignal(signal.SIGALRM)
    assert _within(0.05, forever) is None
    assert _within(0.05, lambda: 42) == 42
    assert signal.getsignal(signal.SIGALRM) is before
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
