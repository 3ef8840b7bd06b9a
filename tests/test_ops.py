"""Every op in the spec table: forward value against an independent NumPy reference, and the
backprop gradient against float64 central differences."""
import numpy as np
import pytest

import gradviz as gv
from gradviz.verify.finite_differences import agrees, numeric_grad
from op_specs import SPECS

IDS = [s.name for s in SPECS]


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_forward_matches_reference(spec):
    nodes = spec.nodes()
    out = spec.build(*nodes)
    inputs = spec.inputs(seed=1)
    got = gv.value(out, dict(zip(nodes, inputs)))
    want = spec.reference(*inputs)
    assert np.shape(got) == np.shape(want) == out.shape
    np.testing.assert_allclose(got, want, rtol=spec.rtol, atol=1e-12)


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_forward_float32_keeps_dtype(spec):
    nodes = spec.nodes("float32")
    out = spec.build(*nodes)
    inputs = spec.inputs(seed=2, dtype=np.float32)
    got = np.asarray(gv.value(out, dict(zip(nodes, inputs))))
    assert out.dtype == "float32" and got.dtype == np.float32
    np.testing.assert_allclose(got, spec.reference(*[i.astype(np.float64) for i in inputs]),
                               rtol=2e-6, atol=2e-6)


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_gradient_matches_finite_differences(spec):
    nodes = spec.nodes()
    out = spec.build(*nodes)
    # project a tensor output to a scalar with a fixed random cotangent
    rng = np.random.default_rng(3)
    weights = rng.uniform(0.5, 1.5, size=out.shape)
    loss = gv.sum(out * gv.const(weights)) if out.shape else out
    env = dict(zip(nodes, spec.inputs(seed=4)))
    result = gv.backprop(loss, env)
    numeric = numeric_grad(loss, env, nodes)
    for node in nodes:
        analytic = result.grad(node)
        assert np.shape(analytic) == node.shape
        assert agrees(analytic, numeric[node], rtol=1e-6, atol=1e-8), (
            node.name, analytic, numeric[node])


def test_broadcasting_is_explicit():
    a, b = gv.var("a", (2, 3)), gv.var("b", (3,))
    out = a + b
    assert out.op == "add" and out.src[1].op == "broadcast_to"
    assert out.src[1].src[0] is b and out.shape == (2, 3)


def test_shape_errors_are_clear():
    with pytest.raises(gv.ShapeError, match="cannot be broadcast"):
        gv.var("a", (2, 3)) + gv.var("b", (4,))
    with pytest.raises(gv.ShapeError, match="do not line up"):
        gv.var("a", (2, 3)) @ gv.var("b", (2, 3))
    with pytest.raises(gv.ShapeError, match="cannot reshape"):
        gv.reshape(gv.var("a", (2, 3)), (4, 2))


def test_nodes_are_frozen():
    x = gv.var("x")
    with pytest.raises(AttributeError):
        x.op = "const"
    with pytest.raises(TypeError):
        bool(x)


@pytest.mark.parametrize("spec", [s for s in SPECS if s.scalar], ids=[s.name for s in SPECS if s.scalar])
def test_fast_scalar_backprop_equals_the_backward_graph(spec):
    """`backprop` on float64 scalars uses `scalar_vjp_rules`; it must give bit for bit what
    evaluating the backward graph gives."""
    from gradviz.core.autodiff import adjoints

    nodes = spec.nodes()
    out = spec.build(*nodes)
    loss = out * out + gv.sin(out)  # a non-unit upstream gradient, and fan-out
    env = {n: float(v) for n, v in zip(nodes, spec.inputs(seed=5))}
    fast = gv.backprop(loss, env)
    adj = adjoints(loss)
    values = gv.evaluate(list(adj.of.values()), env)
    for node, g in adj.of.items():
        assert fast.grads[node] == values[g], node
    assert set(fast.grads) == set(adj.of)
