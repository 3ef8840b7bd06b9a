"""Values and gradients at the edges (issue 12): powers at 0, jumps, overflow, steep but smooth
functions, and honest verdicts and summaries. Each case is what autograd and PyTorch give where
they agree with the maths, and "not differentiable" / "undefined" where the maths says so."""
import json
import math

import pytest
from click.testing import CliRunner

import gradviz as gv
from gradviz.cli import cli
from gradviz.verify.finite_differences import numeric_grad
from gradviz.verify.report import gradient_report


def row(expr, at, name="x"):
    return gradient_report(expr, at).row(name)


def test_power_zero_exponent_has_zero_gradient_at_zero():
    x = gv.var("x")
    assert gv.backprop(x ** 0.0, x=0.0).grad(x) == 0.0
    assert gv.value(gv.grad(x ** 0.0, x), x=0.0) == 0.0
    r = row("x**0.0", {"x": 0})
    assert (r.backprop, r.numeric, r.symbolic, r.verdict) == (0.0, 0.0, 0.0, "agree")


def test_zero_base_has_zero_gradient_for_positive_exponents():
    y = gv.var("y")
    f = gv.power(0.0, y)
    assert gv.backprop(f, y=0.1).grad(y) == 0.0
    assert gv.value(gv.grad(f, y), y=0.1) == 0.0
    r = row("0.0**y", {"y": 0.1}, "y")
    assert (r.backprop, r.symbolic, r.formula, r.verdict) == (0.0, 0.0, "0", "agree")


def test_zero_to_the_zero_jumps():
    r = row("0**x", {"x": 0})
    assert r.backprop == 0.0  # PyTorch's convention
    assert r.agree is None and r.verdict.startswith("not differentiable here (jump)")


@pytest.mark.parametrize("expr, at, want", [("x**2.0", -3, -6.0), ("x**3.0", -2, 12.0),
                                            ("x**-1.0", -2, -0.25), ("x**3", 0, 0.0)])
def test_integer_valued_float_exponents_at_negative_bases(expr, at, want):
    r = row(expr, {"x": at})
    assert r.backprop == pytest.approx(want) and r.verdict == "agree"


def test_sqrt_at_zero_is_undefined_and_log_at_zero_is_an_error():
    r = row("sqrt(x)", {"x": 0})
    assert r.backprop == math.inf and r.agree is None
    result = CliRunner().invoke(cli, ["grad", "log(x)", "--at", "x=0"])
    assert result.exit_code == 2 and "not defined at this point" in result.output


@pytest.mark.parametrize("expr", ["sign(x)", "step(x)", "sign(x)*3 + x"])
def test_jumps_are_not_differentiable_never_agree(expr):
    r = row(expr, {"x": 0})
    assert r.status == "kink" and r.detail == "jump" and r.agree is None
    assert r.verdict == "not differentiable here (jump)"
    assert "agree" not in gradient_report(expr, {"x": 0}).summary


def test_exp_near_overflow_steps_back():
    r = row("exp(x)", {"x": 709})
    assert r.verdict == "agree" and r.numeric == pytest.approx(math.exp(709), rel=1e-6)
    assert row("exp(x)", {"x": 709.78}).verdict == "agree"


def test_derivative_that_overflows_is_undefined_not_a_kink():
    r = row("1/x", {"x": 1e-300})
    assert r.status == "undefined" and r.detail == "overflow"
    assert r.verdict == "undefined: value overflows"


@pytest.mark.parametrize("expr, at", [("1/x", 1e-10), ("log(x)", 1e-10), ("sin(1e10*x)", 0.0),
                                      ("relu(x - 1e-9)", 0.0), ("abs(x)", 1e-12)])
def test_steep_smooth_functions_are_not_kinks(expr, at):
    r = row(expr, {"x": at})
    assert r.status == "ok" and r.verdict == "agree"


def test_real_kinks_survive_the_smaller_steps():
    for expr, at in [("relu(x) + y", {"x": 0, "y": 1}), ("abs(x)", {"x": 0}),
                     ("max(x, y)", {"x": 1, "y": 1})]:
        fd = numeric_grad(gv.parse(expr, vs := {}), at, [vs["x"]])[vs["x"]]
        assert fd.status == "kink" and fd.detail is None, expr


def test_symbolic_value_at_a_kink_follows_the_printed_formula():
    r = row("relu(x)*y", {"x": 0, "y": 2})
    assert r.formula == "y*step(x)" and r.symbolic == 0.0  # step(0) = 0, not SymPy's 1/2


def test_summary_names_what_was_compared_and_what_was_skipped():
    report = gradient_report("relu(x)*y", {"x": 0, "y": 2})
    assert report.summary == ("backprop, finite differences and SymPy agree on df/dy; "
                              "df/dx not compared: not differentiable here (kink)")
    assert gradient_report("(x+y)*z", {"x": -2, "y": 5, "z": -4}).summary == \
        "backprop, finite differences and SymPy agree"
    text = report.text().splitlines()
    assert text[-1] == report.summary and text[-2].startswith("tolerance: ")


def test_json_has_no_nan_and_keeps_the_documented_shape():
    result = CliRunner().invoke(cli, ["grad", "sign(x)*y", "--at", "x=0,y=1", "--json"])
    out = json.loads(result.output)  # strict JSON: no NaN
    assert {"expression", "value", "gradients", "agree"} <= set(out)
    x = out["gradients"]["x"]
    assert {"backprop", "numeric", "symbolic", "formula"} <= set(x)
    assert x["numeric"] is None and x["verdict"] == "not differentiable here (jump)"
    assert "NaN" not in result.output and out["summary"].endswith("(jump)")
