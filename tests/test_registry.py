"""The op registry, checked in both directions: every primitive is in every table it must be in,
and every table key (and parser name, and export) names something that exists.

Each op registers everything about itself where it is defined (`rules.primitive`,
`rules.builder`); the translation modules read those tables. These checks are functions returning
what is missing or stale, so the last tests can show that each one catches a real omission.
"""
import types

import pytest

import gradviz
from gradviz import ops
from gradviz.compiler import templates
from gradviz.compiler.cpu.kernels import cpu_kernels
from gradviz.compiler.cuda.kernels import cuda_kernels
from gradviz.compiler.schedule import VIEW_OPS
from gradviz.core import parser, rules
from gradviz.core.custom_ops import define_op, remove_op
from gradviz.render.styles import FAMILIES, node_style
from gradviz.verify import symbolic
from op_specs import SPECS

LEAVES = {"var", "param", "const"}


def builtin_primitives() -> set[str]:
    return set(rules.primitives())


# -- every primitive is in every table it must be in -------------------------------------------
def missing() -> dict[str, set[str]]:
    """Per requirement, the primitives that do not meet it."""
    prims = builtin_primitives()
    lowered_cpu = set(templates.scalar_code) | set(cpu_kernels) | VIEW_OPS
    lowered_cuda = set(templates.scalar_code) | set(cuda_kernels) | VIEW_OPS
    return {
        "impl": prims - set(rules.impl_rules),
        "vjp or zero gradient": prims - set(rules.vjp_rules) - rules.zero_gradient,
        "sympy or tensor_only": prims - set(rules.sympy_rules) - rules.tensor_only,
        "CPU lowering (code or kernel)": prims - lowered_cpu,
        "CUDA lowering (code or kernel)": prims - lowered_cuda,
        "style": prims - set(rules.styles),
        "node_style": prims - set(node_style),
        "spec row": prims - {s.primitive for s in SPECS},
    }


def test_every_primitive_is_in_every_table():
    assert {table: ops_ for table, ops_ in missing().items() if ops_} == {}


# -- every table key is a registered primitive (no stale keys) ----------------------------------
def stale() -> dict[str, set[str]]:
    """Per table, the keys that are not registered primitives."""
    prims = builtin_primitives()
    tables = {
        "rules.impl_rules": rules.impl_rules, "rules.scalar_rules": rules.scalar_rules,
        "rules.vjp_rules": rules.vjp_rules, "rules.scalar_vjp_rules": rules.scalar_vjp_rules,
        "rules.kinks": rules.kinks, "rules.zero_gradient": rules.zero_gradient,
        "rules.sympy_rules": rules.sympy_rules, "rules.tensor_only": rules.tensor_only,
        "rules.scalar_code": rules.scalar_code, "rules.styles": rules.styles,
        "symbolic.sympy_rules": symbolic.sympy_rules, "symbolic.TENSOR_ONLY": symbolic.TENSOR_ONLY,
        "templates.scalar_code": templates.scalar_code, "cpu_kernels": cpu_kernels,
        "cuda_kernels": cuda_kernels, "VIEW_OPS": VIEW_OPS,
        "node_style": set(node_style) - LEAVES,
        "spec rows": {s.primitive for s in SPECS},
    }
    return {name: set(table) - prims for name, table in tables.items()}


def test_every_table_key_is_a_primitive():
    assert {table: keys for table, keys in stale().items() if keys} == {}


def test_translations_agree_with_each_other():
    assert not rules.tensor_only & set(rules.sympy_rules)       # one or the other, never both
    assert not VIEW_OPS & set(rules.scalar_code)
    assert {s.family for s in node_style.values()} <= set(FAMILIES)
    assert templates.scalar_code is rules.scalar_code   # the compilers read the registry itself


# -- builders: the parser, the exports ----------------------------------------------------------
def unresolved_names() -> dict[str, set[str]]:
    builders = set(map(id, rules.builders.values()))
    return {
        # a parser name whose function is no registered builder (or user op)
        "parser": {name for name, fn in parser.FUNCTIONS.items()
                   if id(fn.build) not in builders and fn.summary != "user-defined op"},
        # a builder that `gradviz` or `gradviz.ops` does not export as itself
        "gradviz": {name for name, fn in rules.builders.items()
                    if name not in gradviz.__all__ or getattr(gradviz, name) is not fn},
        "gradviz.ops": {name for name, fn in rules.builders.items()
                        if fn.__name__ not in ops.__all__ or getattr(ops, fn.__name__) is not fn},
    }


def test_every_parser_name_and_export_resolves_to_a_builder():
    assert {where: names for where, names in unresolved_names().items() if names} == {}
    assert parser.FUNCTIONS is rules.functions


def test_every_name_in_all_resolves():
    for name in gradviz.__all__:
        value = getattr(gradviz, name)
        assert value is not None and not isinstance(value, types.ModuleType), name
    for name in ops.__all__:
        assert callable(getattr(ops, name)), name
    assert set(dir(gradviz)) == set(gradviz.__all__)


OPERATORS = {"add": "x + y", "sub": "x - y", "mul": "x * y", "div": "x / y", "pow": "x ** y",
             "neg": "-x"}


def unparseable() -> set[str]:
    """Elementwise primitives (those with scalar code) that no expression string can build: no
    operator and no function of the expression language makes them."""
    built = {gradviz.parse(text).op for text in OPERATORS.values()}
    for name, fn in parser.FUNCTIONS.items():
        args = ", ".join(["x", "y"] if fn.arity is None else ["x"] * fn.arity)
        built.add(gradviz.parse(f"{name}({args})").op)
    return set(rules.scalar_code) - built


def test_every_elementwise_primitive_can_be_parsed():
    # softplus was a registered primitive with a SymPy rule that the parser did not know
    assert unparseable() == set()


def test_a_builder_without_its_parse_name_is_reported(monkeypatch):
    monkeypatch.delitem(parser.FUNCTIONS, "softplus")
    assert unparseable() == {"softplus"}


@pytest.mark.parametrize("name", sorted(parser.FUNCTIONS))
def test_every_parser_name_parses(name):
    fn = parser.FUNCTIONS[name]
    args = ", ".join(["x", "y"] if fn.arity is None else ["x"] * fn.arity)
    out = gradviz.parse(f"{name}({args})")
    assert out.op in rules.shape_rules


# -- the checks catch real omissions --------------------------------------------------------------
@pytest.fixture
def bare_op():
    """A primitive registered with its meaning only: no translation, no builder, no spec row."""
    name = rules.primitive("bare_test_op", shape=lambda x: (x.shape, x.dtype),
                           impl=lambda n, x: x, vjp=lambda n, g: (g,))
    yield name
    rules.unregister(name)


def test_a_primitive_without_translations_is_reported_by_every_check(bare_op):
    report = missing()
    for requirement in ("sympy or tensor_only", "CPU lowering (code or kernel)",
                        "CUDA lowering (code or kernel)",
                        "style", "node_style", "spec row"):
        assert bare_op in report[requirement], requirement
    assert "impl" not in {r for r, ops_ in report.items() if bare_op in ops_}


def test_a_stale_key_is_reported(monkeypatch):
    # what symbolic.TENSOR_ONLY used to hold: softmax and log_softmax are composites
    monkeypatch.setattr(rules, "tensor_only", rules.tensor_only | {"softmax"})
    monkeypatch.setitem(rules.scalar_code, "log_softmax", "{0}")
    monkeypatch.setitem(node_style, "flatten", node_style["reshape"])
    report = stale()
    assert report["rules.tensor_only"] == {"softmax"}
    assert report["rules.scalar_code"] == report["templates.scalar_code"] == {"log_softmax"}
    assert report["node_style"] == {"flatten"}


def test_a_missing_export_or_parser_name_is_reported(monkeypatch):
    monkeypatch.setitem(parser.FUNCTIONS, "cosh", rules.Function(lambda x: x, summary="cosh"))
    monkeypatch.delitem(rules.builders, "tanh")
    monkeypatch.setitem(rules.builders, "tanh", lambda x: x)  # not what gv.tanh / ops.tanh are
    report = unresolved_names()
    assert "cosh" in report["parser"]
    assert report["gradviz"] == report["gradviz.ops"] == {"tanh"}


def test_user_ops_join_and_leave_every_table():
    before = {name: set(t) for name, t in [("sympy", rules.sympy_rules),
                                           ("parser", parser.FUNCTIONS),
                                           ("shape", rules.shape_rules)]}
    define_op("cube_registry_test", forward=lambda x: x ** 3, vjp=lambda g, out, x: g * 3 * x * x,
              sympy=lambda x: x ** 3)
    try:
        assert "cube_registry_test" in rules.sympy_rules
        assert "cube_registry_test" in parser.FUNCTIONS
        assert str(symbolic.to_sympy(gradviz.parse("cube_registry_test(x)"))) == "x**3"
    finally:
        remove_op("cube_registry_test")
    after = {name: set(t) for name, t in [("sympy", rules.sympy_rules),
                                          ("parser", parser.FUNCTIONS),
                                          ("shape", rules.shape_rules)]}
    assert after == before
