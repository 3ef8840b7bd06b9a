"""Property: on random expression graphs over the scalar ops, at random points away from kinks,
backprop, finite differences, sympy.diff and the translated backward graph all agree."""
import math

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import gradviz as gv
from gradviz.verify.finite_differences import agrees, numeric_grad
from gradviz.verify.symbolic import DIFFERENT, symbolic_gradients

X, Y, Z = gv.vars("x y z")

UNARY = {
    "neg": gv.neg, "exp": gv.exp, "abs": abs, "sin": gv.sin, "cos": gv.cos, "tanh": gv.tanh,
    "sigmoid": gv.sigmoid, "relu": gv.relu, "leaky_relu": lambda a: gv.leaky_relu(a, 0.1),
    "elu": lambda a: gv.elu(a, 0.7), "step": lambda a: gv.step(a) * a, "sign": lambda a: gv.sign(a) * a,
    # domains kept valid by construction
    "log": lambda a: gv.log(1.0 + a * a), "sqrt": lambda a: gv.sqrt(0.5 + a * a),
    "pow_const": lambda a: a ** 3, "pow_frac": lambda a: (1.0 + a * a) ** 1.5,
}
BINARY = {
    "add": gv.add, "sub": gv.sub, "mul": gv.mul, "div": lambda a, b: a / (1.0 + b * b),
    "pow": lambda a, b: (1.0 + gv.sigmoid(a)) ** b, "maximum": gv.maximum, "minimum": gv.minimum,
}

leaves = st.sampled_from([X, Y, Z]) | st.sampled_from([0.5, 2.0, -1.5]).map(gv.const)
expressions = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.tuples(st.sampled_from(sorted(UNARY)), inner).map(lambda t: UNARY[t[0]](t[1])),
        st.tuples(st.sampled_from(sorted(BINARY)), inner, inner).map(
            lambda t: BINARY[t[0]](t[1], t[2]))),
    max_leaves=5)
coordinate = st.floats(-2.0, 2.0, allow_nan=False).map(lambda v: round(v, 3))


@settings(max_examples=25, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(expressions, coordinate, coordinate, coordinate)
def test_four_gradients_agree(f, x, y, z):
    point = {"x": x, "y": y, "z": z}
    variables = [n for n in gv.Graph(f).variables()]
    assume(variables)
    result = gv.backprop(f, point)
    assume(math.isfinite(result.value))
    numeric = numeric_grad(f, point, variables)
    assume(all(n.status == "ok" for n in numeric.values()))
    symbolic = symbolic_gradients(f, variables)
    for v in variables:
        analytic = result.grad(v)
        assume(math.isfinite(analytic) and abs(analytic) < 1e8)
        assert agrees(analytic, numeric[v], rtol=1e-6, atol=1e-7), (str(f), v.name)
        sym = symbolic[v]
        assert sym.proof.status != DIFFERENT, (str(f), v.name, sym.expr, sym.backward)
        assert sym.value(point) == pytest.approx(analytic, rel=1e-8, abs=1e-10), (str(f), v.name)
