"""x**y at x = 0 and its gradient helpers `xlogy`, `dpow` on CUDA (the simulator, or a GPU):
the same values as the interpreter, conventions included (tests/test_pow_edges.py); and their
float32 kernels through NVIDIA's NVVM, free of float64 arithmetic."""
import numpy as np
import pytest

import gradviz as gv
from gradviz.compiler.cuda.backend import compile_cuda, simulator_enabled
from test_cuda_ptx import _float64_free, cuda, ptx_of  # noqa: F401  (fixtures)
from test_pow_edges import EDGES, _edge_graph


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_cuda_keeps_the_conventions(dtype):
    # the simulator runs kernels as Python, whose math.log(0) and 0.0 ** -0.5 raise: there, only
    # the points where every value is finite (on a GPU, log(0) is -inf as in NumPy)
    edges = [e for e in EDGES if e[0][0] == 0.0 and e[0][1] >= 1.0] if simulator_enabled() \
        else EDGES
    outputs, env = _edge_graph(dtype, edges, zero_zero=not simulator_enabled())
    got = compile_cuda(outputs)(env)
    want = gv.evaluate(outputs, env)
    for node, value in zip(outputs, got):
        value = np.asarray(value)
        assert value.dtype == np.dtype(dtype)
        np.testing.assert_allclose(value, want[node], rtol=1e-6)
    dx, dy = np.asarray(got[1]), np.asarray(got[2])
    np.testing.assert_array_equal(dx[:len(edges)], np.array([w[1][0] for w in edges], dtype))
    np.testing.assert_allclose(dy[:len(edges)], np.array([w[1][1] for w in edges], dtype),
                               rtol=1e-6)


@pytest.mark.nvvm
def test_helper_kernels_are_float32(ptx_of):
    x, y = gv.var("x", (5,), "float32"), gv.var("y", (5,), "float32")
    f = x ** y
    adj = gv.core.autodiff.adjoints(f, gv.const(np.ones(5), "float32"))
    found = ptx_of([gv.xlogy(x, y), gv.dpow(x, y), adj.of[x], adj.of[y]])
    assert found
    _float64_free(found)
