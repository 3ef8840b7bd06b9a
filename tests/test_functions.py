"""The expression language's composite functions (tan, sinh, cosh, log10, log2, silu/swish,
clip): values against NumPy, gradients three ways, the command line's leading minus sign and
the hints for x^2 and 2x."""
import numpy as np
import pytest
from click.testing import CliRunner

import gradviz as gv
from gradviz.cli import cli
from gradviz.errors import ParseError
from gradviz.verify.report import gradient_report

CASES = [
    ("tan(x)", np.tan, 0.7), ("sinh(x)", np.sinh, -1.3), ("cosh(x)", np.cosh, 0.4),
    ("log10(x)", np.log10, 3.0), ("log2(x)", np.log2, 5.0),
    ("silu(x)", lambda a: a / (1 + np.exp(-a)), -0.8),
    ("swish(x)", lambda a: a / (1 + np.exp(-a)), 1.1),
    ("clip(x, -3, 3)", lambda a: np.clip(a, -3, 3), 2.5),
    ("clip(x, -3, 3)", lambda a: np.clip(a, -3, 3), 4.0),
]


@pytest.mark.parametrize("text, reference, at", CASES)
def test_composites_match_numpy_and_their_gradients_agree(text, reference, at):
    assert gv.value(gv.parse(text), x=at) == pytest.approx(reference(at), rel=1e-12)
    report = gradient_report(text, {"x": at})
    assert report.rows[0].verdict == "agree", report.text()


def test_clip_has_kinks_at_its_bounds():
    assert gradient_report("clip(x, -3, 3)", {"x": 3}).rows[0].status == "kink"
    with pytest.raises(gv.GradvizError, match="lo <= hi"):
        gv.parse("clip(x, 3, -3)")


def run(*args):
    return CliRunner().invoke(cli, list(args))


@pytest.mark.parametrize("command", [["grad", "-x**2", "--at", "x=1"],
                                     ["check", "-x**2", "--wrt", "x", "--claim", "-2*x"],
                                     ["explain", "-x**2", "--wrt", "x", "--at", "x=1"]])
def test_an_expression_may_start_with_a_minus_sign(command):
    result = run(*command)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("text, message, column", [
    ("x^2", "use ** for powers", 2), ("(x+1) ^ 2", "use ** for powers", 7),
    ("2x + 1", "write 2*x", 2), ("x + 2.5y", "write 2.5*y", 8)])
def test_hints_for_common_slips(text, message, column):
    with pytest.raises(ParseError) as info:
        gv.parse(text)
    assert message in str(info.value) and info.value.column == column


def test_exponents_are_not_juxtaposition():
    assert gv.value(gv.parse("1e5*x + 2.5E-3"), x=1.0) == 100000.0025
