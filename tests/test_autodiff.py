"""Backprop: the lecture examples, fan-out, deep graphs, gradients of intermediates, second order."""
import math

import numpy as np
import pytest

import gradviz as gv
from gradviz.core.autodiff import adjoints, local_derivatives


def test_slide_circuit_x_plus_y_times_z():
    x, y, z = gv.vars("x y z")
    q = (x + y).named("q")
    f = (q * z).named("f")
    r = gv.backprop(f, x=-2, y=5, z=-4)
    assert r.value == -12
    assert (r.grad(x), r.grad(y), r.grad(z)) == (-4, -4, 3)
    assert r.grad(q) == -4 and r.grad("q") == -4  # intermediate nodes too
    assert r.values[q] == 3


def test_slide_sigmoid_neuron():
    w0, x0, w1, x1, w2 = gv.vars("w0 x0 w1 x1 w2")
    f = 1 / (1 + gv.exp(-(w0 * x0 + w1 * x1 + w2)))
    r = gv.backprop(f, w0=2, x0=-1, w1=-3, x1=-2, w2=-3)
    assert r.value == pytest.approx(0.7311, abs=1e-4)
    want = {"w0": -0.1966, "x0": 0.3932, "w1": -0.3932, "x1": -0.5898, "w2": 0.1966}
    for name, g in want.items():
        assert r.grad(name) == pytest.approx(g, abs=1e-4)
    # the sigmoid primitive gives the same gradients as the gate chain
    s = gv.sigmoid(w0 * x0 + w1 * x1 + w2)
    rs = gv.backprop(s, w0=2, x0=-1, w1=-3, x1=-2, w2=-3)
    for name in want:
        assert rs.grad(name) == pytest.approx(r.grad(name), rel=1e-12)


def test_slide_abs_error():
    f = gv.parse("abs(4 - (x*w + b))")
    r = gv.backprop(f, x=2, w=3, b=1)
    assert r.value == 3
    assert r.gradients() == {"x": 3, "w": 2, "b": 1}


def test_reused_value_has_two_edges_and_gradients_sum():
    x = gv.var("x")
    f = x * x
    assert f.src == (x, x)
    r = gv.backprop(f, x=3)
    assert r.grad(x) == 6
    assert r.edge_grads[(f, 0)] == 3 and r.edge_grads[(f, 1)] == 3


def test_fan_out_through_intermediate():
    x = gv.var("x")
    a = gv.exp(x)
    f = a * gv.sin(a) + a
    r = gv.backprop(f, x=0.3)
    ea = math.exp(0.3)
    assert r.grad(x) == pytest.approx(ea * (math.sin(ea) + ea * math.cos(ea)) + ea, rel=1e-12)


def test_deep_chain_has_no_recursion_limit():
    x = gv.var("x")
    f = x
    for _ in range(10_000):
        f = f * 1.0001 + 0.0001
    r = gv.backprop(f, x=1.0)
    assert r.grad(x) == pytest.approx(1.0001 ** 10_000, rel=1e-9)
    listing = str(gv.Graph(f)).splitlines()
    assert len(listing) == 40_001
    assert listing[-1].endswith("add(%39998, %39999)   <- output")
    assert "…" in str(f) and len(str(f)) <= 2000  # long text is abbreviated, not recursed into


def test_second_order():
    x, y = gv.vars("x y")
    f = x ** 3 * y + gv.sin(x * y)
    dfdx = gv.grad(f, x)
    d2 = gv.grad(dfdx, [x, y])
    at = {"x": 0.7, "y": -1.3}
    assert gv.value(dfdx, at) == pytest.approx(3 * 0.49 * -1.3 + -1.3 * math.cos(-0.91))
    assert gv.value(d2[0], at) == pytest.approx(6 * 0.7 * -1.3 - 1.69 * math.sin(-0.91))
    assert gv.value(d2[1], at) == pytest.approx(3 * 0.49 + math.cos(-0.91) + 0.91 * math.sin(-0.91))


def test_second_order_of_tensor_graph():
    w = gv.var("w", (3,))
    f = gv.sum(gv.tanh(w) * w)
    g = gv.sum(gv.grad(f, w))
    hess_diag_sum = gv.grad(g, w)
    v = np.array([0.1, -0.5, 0.9])
    t = np.tanh(v)
    # d/dw [ (1-t^2) w + t ] = -2 t (1-t^2) w + 2 (1-t^2)
    np.testing.assert_allclose(gv.value(hess_diag_sum, w=v), -2 * t * (1 - t * t) * v + 2 * (1 - t * t))


def test_mlp_gradients_against_numpy():
    rng = np.random.default_rng(0)
    X = gv.var("X", (5, 4))
    W1, b1 = gv.param("W1", (4, 3)), gv.param("b1", (3,))
    W2 = gv.param("W2", (3, 1))
    loss = gv.mean((gv.tanh(X @ W1 + b1) @ W2) ** 2)
    env = {"X": rng.normal(size=(5, 4)), "W1": rng.normal(size=(4, 3)),
           "b1": rng.normal(size=3), "W2": rng.normal(size=(3, 1))}
    r = gv.backprop(loss, env)
    h = np.tanh(env["X"] @ env["W1"] + env["b1"])
    out = h @ env["W2"]
    dout = 2 * out / out.size
    dW2 = h.T @ dout
    dh = dout @ env["W2"].T * (1 - h * h)
    np.testing.assert_allclose(r.grad("W2"), dW2)
    np.testing.assert_allclose(r.grad("W1"), env["X"].T @ dh)
    np.testing.assert_allclose(r.grad("b1"), dh.sum(0))


def test_unused_variable_gets_zero_and_constants_get_no_gradient_graph():
    x, y = gv.vars("x y")
    f = x * 2
    assert gv.backprop(f, x=1, y=5).grad(y) == 0
    assert gv.value(gv.grad(f, y)) == 0
    adj = adjoints(f)
    assert all(n.op != "const" for n in adj.of)


def test_local_derivatives_are_the_slide_factors():
    x, y = gv.vars("x y")
    assert [str(d) for d in local_derivatives(x * y)] == ["y", "x"]
    assert [str(d) for d in local_derivatives(x + y)] == ["1", "1"]


def test_grad_needs_scalar_output():
    with pytest.raises(gv.GradvizError, match="scalar output"):
        gv.grad(gv.var("v", (3,)) * 2, gv.var("w"))


def test_missing_value_is_a_clear_error():
    x, y = gv.vars("x y")
    with pytest.raises(gv.GradvizError, match="no value for var 'y'"):
        gv.backprop(x * y, x=1)


def test_listing_is_deterministic_and_readable():
    def build():
        x, y, z = gv.vars("x y z")
        return (x + y) * z
    assert str(gv.Graph(build())) == str(gv.Graph(build()))
    lines = str(gv.Graph(build())).splitlines()
    assert lines[3].split() == ["%3", "=", "float64", "add(%0:x,", "%1:y)"]
    assert lines[4].endswith("<- output")
    assert str(build()) == "(x + y) * z"
