"""The safe parser: what it builds, and everything hostile or malformed it refuses."""
import math

import pytest

import gradviz as gv
from gradviz.errors import ParseError
from gradviz.core.parser import MAX_NESTING, parse


def val(text, **at):
    return gv.value(parse(text), at)


def test_arithmetic_and_precedence():
    assert val("1 + 2 * 3 ** 2") == 19
    assert val("-x ** 2", x=3) == -9
    assert val("(x + y) * z", x=-2, y=5, z=-4) == -12
    assert val("2 ** 3 ** 2") == 512
    assert val("x / y / 2", x=8, y=2) == 2
    assert val("+x - -y", x=1, y=2) == 3


def test_functions():
    assert val("exp(log(x))", x=2.5) == pytest.approx(2.5)
    assert val("max(x, y, 3)", x=1, y=2) == 3
    assert val("min(x, y)", x=1, y=2) == 1
    assert val("leaky_relu(x, 0.1)", x=-2) == pytest.approx(-0.2)
    assert val("leaky_relu(x)", x=-2) == pytest.approx(-0.2)
    assert val("elu(x, 2)", x=-1) == pytest.approx(2 * (math.exp(-1) - 1))
    assert val("sigmoid(3.2)") == pytest.approx(0.9608, abs=1e-4)
    assert val("2*pi") == pytest.approx(2 * math.pi)


def test_same_name_is_the_same_variable():
    variables = {}
    f = parse("x * x + y", variables)
    assert sorted(variables) == ["x", "y"]
    assert f.src[0].src[0] is f.src[0].src[1] is variables["x"]
    claim = parse("2 * x", variables)
    assert claim.src[1] is variables["x"]


@pytest.mark.parametrize("text, message, column", [
    ("__import__('os').system('id')", "attribute access ('.system')", 18),
    ("__import__('os')", "unknown function '__import__'", 1),
    ("x.__class__", "attribute access", 1),
    ("open('/etc/passwd')", "unknown function 'open'", 1),
    ("eval('1')", "unknown function 'eval'", 1),
    ("x[0]", "indexing", 1),
    ("lambda: 1", "lambda", 1),
    ("'abc'", "str literal", 1),
    ("x if y else z", "'if' expression", 1),
    ("x < y", "comparison", 1),
    ("x // y", "operator '//'", 3),  # the operator's own column
    ("x % y", "operator '%'", 3),
    ("x @ y", "operator '@'", 3),
    ("~x", "operator '~'", 1),
    ("not x", "operator 'not'", 1),
    ("[x, y]", "a list", 1),
    ("(x, y)", "a tuple", 1),
    ("True + x", "bool literal", 1),
    ("1j * x", "complex literal", 1),
    ("exp(x, y)", "takes 1 argument", 1),
    ("max(x)", "at least two", 1),
    ("exp(x=1)", "keyword", 7),
    ("leaky_relu(x, y)", "must be a number", 15),
    ("exp + 1", "is a function", 1),
    ("__x + 1", "not allowed", 1),
    ("x +", "ends too early", 4),
    ("x y", "syntax error", 3),
    ("", "empty", None),
    ("x\n+1", "one line", 2),
    ("x ** 100000", "exponent 100000 is too large", 6),
    ("1e999 * x", "too large", 1),
    ("9" * 5000, "number literal is too long", None),
])
def test_rejects_with_a_clear_message_and_position(text, message, column):
    with pytest.raises(ParseError) as info:
        parse(text)
    assert message in str(info.value)
    if column is not None:
        assert info.value.column == column


def test_nothing_is_executed(tmp_path, monkeypatch):
    marker = tmp_path / "ran"
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ParseError):
        parse(f"__import__('os').system('touch {marker}')")
    assert not marker.exists()


def test_generous_limits():
    long_chain = " + ".join(f"x{i % 50}" for i in range(2500))  # > 10,000 characters
    assert len(long_chain) > 10_000
    assert val(long_chain, **{f"x{i}": 1.0 for i in range(50)}) == 2500
    nested = "(" * 100 + "x" + ")" * 100
    assert val(nested, x=4) == 4
    deep_calls = "exp(" * 100 + "x" + ")" * 100
    assert parse(deep_calls).op == "exp"


def test_absurd_input_is_refused():
    with pytest.raises(ParseError, match="nested too deeply"):
        parse("(" * (MAX_NESTING + 1) + "x" + ")" * (MAX_NESTING + 1))
    with pytest.raises(ParseError, match="too long"):
        parse("x+" * 60_000 + "x")
    with pytest.raises(ParseError, match="nested too deeply"):
        parse("-" * 20_000 + "x")
