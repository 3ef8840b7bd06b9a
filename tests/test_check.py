"""Checking hand-derived derivatives: the issue's golden cases, from Python and from the CLI."""
import json

import pytest
from click.testing import CliRunner

import gradviz as gv
from gradviz.verify.claims import INCONCLUSIVE, REFUTED, VERIFIED, check_claim
from gradviz.cli import cli

SIGMOID = "1/(1+exp(-(w*x+b)))"


def claim(expression, wrt, text, **kwargs):
    variables = {}
    f = gv.parse(expression, variables)
    return check_claim(f, variables[wrt], gv.parse(text, dict(variables)), **kwargs)


def run(*args):
    return CliRunner().invoke(cli, ["check", *args])


def test_sigmoid_claim_with_x_is_verified():
    result = claim(SIGMOID, "w", "x*sigmoid(w*x+b)*(1-sigmoid(w*x+b))")
    assert result.verdict == VERIFIED and result.counterexample is None
    assert result.derivative_text == "x*exp(-b - w*x)/(exp(-b - w*x) + 1)**2"


def test_sigmoid_claim_without_x_is_refuted_with_true_numbers():
    result = claim(SIGMOID, "w", "sigmoid(w*x+b)*(1-sigmoid(w*x+b))")
    assert result.verdict == REFUTED
    ce = result.counterexample
    p = ce.point
    s = gv.value(gv.sigmoid(gv.var("u")), u=p["w"] * p["x"] + p["b"])
    assert ce.claimed == pytest.approx(s * (1 - s), rel=1e-12)
    assert ce.actual == pytest.approx(p["x"] * s * (1 - s), rel=1e-12)
    assert ce.claimed != pytest.approx(ce.actual)


def test_squared_error_claim_is_verified():
    assert claim("(w*x+b-y)**2/2", "w", "(w*x+b-y)*x").verdict == VERIFIED


def test_the_given_point_is_tried_first():
    at = {"w": 0.5, "x": 2.0, "b": 1.0, "y": 3.0}
    result = claim("(w*x+b-y)**2/2", "w", "(w*x+b-y)", at=at)
    assert result.verdict == REFUTED and result.counterexample.point == at
    assert (result.counterexample.claimed, result.counterexample.actual) == (-1.0, -2.0)


def test_identity_on_the_domain_is_verified():
    # exp(x*log(x)) == x**x only where x > 0, which SymPy does not assume of a real x: the
    # points show that the derivative is defined only there, and the proof is made for x > 0
    assert claim("x**x", "x", "exp(x*log(x))*(log(x)+1)").verdict == VERIFIED
    assert claim("log(x + sqrt(x**2 - 1))", "x",
                 "1/(sqrt(x - 1)*sqrt(x + 1))").verdict == VERIFIED


def test_undecided_identity_is_inconclusive_and_counts_points(monkeypatch):
    from gradviz.verify import symbolic

    monkeypatch.setattr(symbolic, "is_zero", lambda expr: False)
    result = claim("x**x", "x", "exp(x*log(x))*(log(x)+1)")
    assert result.verdict == INCONCLUSIVE
    assert 10 <= result.points_agreed < result.points_tried  # x <= 0: not in the domain
    assert result.tried[0] == "small integers" and "a local search" in result.tried[-1]


def test_rounding_noise_does_not_refute(monkeypatch):
    from gradviz.verify import symbolic

    monkeypatch.setattr(symbolic, "is_zero", lambda expr: False)  # force the numeric route
    result = claim("x*y", "y", "x + (0.1 + 0.2 - 0.3)*y")  # 5.55e-17*y off in float64
    assert result.verdict == INCONCLUSIVE and result.points_agreed == result.points_tried > 80


def test_no_point_in_the_domain_is_said_so():
    result = run("sqrt(-1-x*x)", "--wrt", "x", "--claim", "x")
    assert result.exit_code == 4
    assert "inconclusive: SymPy could not prove it, and no point tried was in the domain" \
        in result.output


def test_kinks_do_not_refute():
    assert claim("relu(x)**2", "x", "2*x*step(x)").verdict == VERIFIED
    assert claim("abs(x*y)", "x", "y*sign(x*y)").verdict == VERIFIED
    wrong = claim("relu(x)**2", "x", "2*x")
    assert wrong.verdict == REFUTED and wrong.counterexample.point["x"] < 0


def test_claim_with_a_variable_the_expression_lacks_is_bad_input():
    with pytest.raises(gv.GradvizError, match="the claim uses 'q'"):
        claim("x*y", "x", "q")


def test_json_shape_and_exit_codes(monkeypatch):
    ok = run(SIGMOID, "--wrt", "w", "--claim", "x*sigmoid(w*x+b)*(1-sigmoid(w*x+b))", "--json")
    assert ok.exit_code == 0
    out = json.loads(ok.output)
    assert out["verdict"] == "verified" and out["counterexample"] is None
    assert out["derivative"] == "x*exp(-b - w*x)/(exp(-b - w*x) + 1)**2"
    bad = run(SIGMOID, "--wrt", "w", "--claim", "sigmoid(w*x+b)*(1-sigmoid(w*x+b))", "--json")
    assert bad.exit_code == 1
    out = json.loads(bad.output)
    assert out["verdict"] == "refuted"
    assert set(out["counterexample"]) == {"point", "claimed", "actual"}
    assert set(out["counterexample"]["point"]) == {"w", "x", "b"}
    import time

    from gradviz.verify import claims

    monkeypatch.setattr(claims, "_prove", lambda *args: time.sleep(30))  # SymPy stuck
    maybe = run("x**x", "--wrt", "x", "--claim", "exp(x*log(x))*(log(x)+1)", "--timeout", "0.1",
                "--json")
    assert maybe.exit_code == 4
    out = json.loads(maybe.output)
    assert out["verdict"] == "inconclusive" and out["sympy"] == "SymPy gave up after 0.1 s"
    assert out["points_agreed"] > 10 and out["tried"]


def test_text_output():
    result = run("(w*x+b-y)**2/2", "--wrt", "w", "--claim", "(w*x+b-y)", "--at",
                 "w=0.5,x=2,b=1,y=3")
    assert result.exit_code == 1
    assert "refuted: at w=0.5, x=2, b=1, y=3" in result.output
    assert "the claim gives      -1" in result.output
    assert "the derivative is    -2" in result.output
    assert "SymPy    : df/dw = x*(b + w*x - y)" in result.output


@pytest.mark.parametrize("args, message", [
    (["x*y", "--wrt", "x", "--claim", "y*"], "in the claim: syntax error"),
    (["x*y", "--wrt", "x", "--claim", "__import__('os')"], "in the claim"),
    (["x*y", "--wrt", "x", "--claim", "q"], "the claim uses 'q'"),
    (["x*y", "--wrt", "z", "--claim", "y"], "does not use it"),
    (["x*y", "--wrt", "x,y", "--claim", "y"], "exactly one variable"),
    (["x*y", "--wrt", "x", "--claim", "y", "--at", "z=1"], "does not use"),
    (["x*y", "--wrt", "x"], "Missing option '--claim'"),
])
def test_bad_input_exits_2_with_one_line(args, message):
    result = run(*args)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gradviz: error:") and message in lines[0]


def test_check_claim_text_is_the_library_behind_the_command():
    from gradviz.verify.claims import check_claim_text

    assert check_claim_text("(w*x+b-y)**2/2", "w", "(w*x+b-y)*x").verdict == "verified"
    wrong = check_claim_text("x**2", "x", "x", at={"x": 3.0})
    assert wrong.verdict == "refuted" and wrong.counterexample.point == {"x": 3.0}
    with pytest.raises(gv.GradvizError, match="in the claim"):
        check_claim_text("x**2", "x", "2*")


@pytest.mark.parametrize("expression, text, where", [
    ("max(min(x, 3), -3)", "1", lambda x: abs(x) > 3),
    ("exp(x/10)", "exp(x/10)/10 + step(x - 5)", lambda x: x > 5),
])
def test_the_adversary_finds_the_region_where_a_claim_is_wrong(expression, text, where):
    result = claim(expression, "x", text)
    assert result.verdict == REFUTED and where(result.counterexample.point["x"])
    out = run(expression, "--wrt", "x", "--claim", text)
    assert out.exit_code == 1 and out.output.splitlines()[-3].startswith("refuted: at x=")


def test_piecewise_claims_are_proved():
    assert claim("max(min(x, 3), -3)", "x", "step(3 - x)*step(x + 3)").verdict == VERIFIED


def test_magnitudes_refute_what_small_points_miss():
    # the extra 1e-12*x**4 is rounding noise next to 1 + x**3/1e6 until |x| is large
    result = claim("x + 2.5e-7*x**4", "x", "1 + 1e-6*x**3 + 1e-12*x**4")
    assert result.verdict == REFUTED and abs(result.counterexample.point["x"]) >= 100


def test_points_on_kinks_are_not_counted_as_agreeing(monkeypatch):
    from gradviz.verify import symbolic

    monkeypatch.setattr(symbolic, "is_zero", lambda expr: False)
    result = claim("relu(x)", "x", "step(x) + sign(x)*0 + 1 - abs(sign(x))")  # 1 at x = 0
    assert result.verdict == INCONCLUSIVE
    assert result.points_unconfirmed >= 1  # x = 0: the claim says 1, autodiff 0, FD a kink
    assert result.points_agreed + result.points_unconfirmed <= result.points_tried


def test_inconclusive_text_says_what_was_tried(monkeypatch):
    from gradviz.verify import symbolic

    monkeypatch.setattr(symbolic, "is_zero", lambda expr: False)
    out = run("x*y", "--wrt", "x", "--claim", "y")
    assert out.exit_code == 4
    assert "inconclusive: SymPy could not prove it, but the claim and the derivative agree" \
        in out.output
    assert "points: small integers, magnitudes from 1e-3 to 1e4" in out.output
