"""Finite differences: accuracy, error estimates, kinks reported as such."""
import math

import numpy as np
import pytest

import gradviz as gv
from gradviz.verify.finite_differences import KINK, OK, UNDEFINED, agrees, numeric_grad, step_size
from op_specs import KINKS


def test_step_scales_with_magnitude():
    assert step_size(0.0) == pytest.approx(6.06e-6, rel=1e-2)
    assert step_size(1e6) == pytest.approx(6.06, rel=1e-2)
    assert (1e6 + step_size(1e6)) - 1e6 == step_size(1e6)  # exactly representable


@pytest.mark.parametrize("text, at, name, exact", [
    ("exp(x)", {"x": 3.0}, "x", math.exp(3.0)),
    ("sin(x) * x", {"x": 1e4}, "x", math.sin(1e4) + 1e4 * math.cos(1e4)),
    ("x ** 3", {"x": 1e-3}, "x", 3e-6),
    ("log(x)", {"x": 1e5}, "x", 1e-5),
])
def test_accurate_with_honest_error_bound(text, at, name, exact):
    variables = {}
    f = gv.parse(text, variables)
    fd = numeric_grad(f, at)[variables[name]]
    assert fd.status == OK
    assert abs(fd.value - exact) <= max(fd.error, 1e-12 * abs(exact))
    assert fd.error < 1e-5 * max(1.0, abs(exact))


@pytest.mark.parametrize("case", KINKS, ids=[k.expression for k in KINKS])
def test_kinks_are_reported_not_failed(case):
    variables = {}
    f = gv.parse(case.expression, variables)
    fd = numeric_grad(f, case.point)[variables[case.variable]]
    assert fd.status == KINK
    assert agrees(gv.backprop(f, case.point).grad(case.variable), fd) is None


def test_smooth_points_near_a_kink_are_not_kinks():
    variables = {}
    f = gv.parse("relu(x)", variables)
    assert numeric_grad(f, {"x": 1e-3})[variables["x"]].status == OK
    g = gv.parse("x ** 2", variables)
    assert numeric_grad(g, {"x": 0.0})[variables["x"]].status == OK


def test_undefined_nearby():
    variables = {}
    f = gv.parse("sqrt(x)", variables)
    assert numeric_grad(f, {"x": 0.0})[variables["x"]].status == UNDEFINED


def test_tensor_variables_entrywise():
    w = gv.var("w", (2, 3))
    f = gv.sum(gv.tanh(w) ** 2)
    v = np.linspace(-1, 1, 6).reshape(2, 3)
    fd = numeric_grad(f, {"w": v})[w]
    exact = 2 * np.tanh(v) * (1 - np.tanh(v) ** 2)
    np.testing.assert_allclose(fd.value, exact, atol=1e-9)
    assert fd.differentiable
    assert agrees(gv.backprop(f, w=v).grad(w), fd)


def test_agrees_catches_a_wrong_gradient():
    x = gv.var("x")
    fd = numeric_grad(x * x, {"x": 3.0})[x]
    assert agrees(6.0, fd) is True
    assert agrees(6.001, fd) is False
