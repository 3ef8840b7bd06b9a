"""The CPU compiler against the NumPy interpreter, row by row of the op spec table.

Every row is its own graph, compiled once per dtype (float64: the value and its vector-Jacobian
products; float32: the value) and compared with the interpreter: float64 to 1e-12, float32 to
2e-5 relative. Test ids are `float64-<row>`, so `pytest tests/test_compile.py -k tanh` compiles
only the rows whose name has tanh in it. Generated modules are kept between runs (see
`kernel_cache`): a rerun loads the compiled code instead of compiling it again.
"""
import numpy as np
import pytest


import gradviz as gv
from gradviz.core.autodiff import adjoints
from gradviz.compiler import templates
from gradviz.compiler.cpu import kernels
from gradviz.core.rules import primitives
from op_specs import SPECS

DTYPES = ("float64", "float32")
TOLERANCE = {"float64": dict(rtol=1e-12, atol=1e-12), "float32": dict(rtol=2e-5, atol=2e-6)}


@pytest.fixture(scope="module", autouse=True)
def kernel_cache(request, tmp_path_factory):
    """Generated modules go to pytest's cache directory (`.pytest_cache/d/gradviz-kernels`, kept
    between runs and emptied by `--cache-clear`; modules are named by their content's hash, so a
    changed lowering is compiled afresh), or with `-p no:cacheprovider` to this session's
    temporary directory; never to the user's cache."""
    cache = getattr(request.config, "cache", None)
    if cache is not None:
        path = cache.mkdir("gradviz-kernels")
    else:
        path = tmp_path_factory.getbasetemp() / "gradviz-cache"
    mp = pytest.MonkeyPatch()
    mp.setenv("GRADVIZ_CACHE", str(path))
    yield path
    mp.undo()


def _row_graph(spec, index, dtype, gradients):
    nodes = spec.nodes(dtype)
    out = spec.build(*nodes)
    outputs = [out]
    if gradients:  # vector-Jacobian products with a fixed random cotangent
        weights = np.random.default_rng(index).uniform(0.5, 1.5, size=out.shape)
        seed = gv.const(weights if out.shape else float(weights), dtype)
        adj = adjoints(out, seed)
        outputs += [adj.of[n] for n in nodes if n in adj.of]
    env = dict(zip(nodes, spec.inputs(seed=index, dtype=dtype)))
    return outputs, env


# one case per (dtype, row): a row added to the table is a new case, named after it
ROWS = [pytest.param(spec, index, dtype, id=f"{dtype}-{spec.name}")
        for dtype in DTYPES for index, spec in enumerate(SPECS)]


@pytest.mark.parametrize("spec, index, dtype", ROWS)
def test_compiled_matches_interpreter(spec, index, dtype):
    """One row, compiled on its own: float64 with its VJPs, float32 its value only (compile time
    on 2 cores is the budget here: every kernel costs a fraction of a second to compile)."""
    outputs, env = _row_graph(spec, index, dtype, gradients=dtype == "float64")
    f = gv.compile(outputs)
    assert f.compile_seconds > 0
    got = dict(zip(outputs, f(env)))
    want = gv.evaluate(outputs, env)
    for node in outputs:
        value = np.asarray(got[node])
        assert value.shape == node.shape and value.dtype == np.dtype(dtype)
        np.testing.assert_allclose(value, want[node], **TOLERANCE[dtype])


def test_every_primitive_has_a_lowering():
    lowered = set(templates.scalar_code) | set(kernels.cpu_kernels) | {
        "reshape", "broadcast_to", "transpose"}
    assert set(primitives()) - lowered == set()


def test_missing_lowering_names_the_ops(monkeypatch):
    x = gv.var("x", (3,))
    f = gv.exp(x) * gv.sin(x)
    monkeypatch.delitem(templates.scalar_code, "sin")
    with pytest.raises(gv.GradvizError, match="no CPU lowering for sin"):
        gv.compile(f)


def test_scalar_circuit_at_many_points():
    x, y, z = gv.vars("x y z")
    f = gv.sigmoid(x * y + gv.tanh(z)) / (1 + x * x)
    outputs = [f, *gv.grad(f, [x, y, z])]
    run = gv.compile(outputs, points=True)
    rng = np.random.default_rng(0)
    xs, ys = rng.uniform(-3, 3, 1000), rng.uniform(-3, 3, 1000)
    got = run(x=xs, y=ys, z=0.5)   # z broadcasts
    assert all(g.shape == (1000,) for g in got)
    for i in (0, 17, 999):
        want = gv.evaluate(outputs, {"x": xs[i], "y": ys[i], "z": 0.5})
        np.testing.assert_allclose([g[i] for g in got], [want[o] for o in outputs], rtol=1e-12)


def test_points_need_a_scalar_graph():
    with pytest.raises(gv.GradvizError, match="scalar graph"):
        gv.compile(gv.sum(gv.var("v", (3,))), points=True)


def test_updates_are_written_in_place_and_reused_buffers_are_not_exposed():
    w = gv.param("w", (4, 3))
    x = gv.var("x", (5, 4))
    loss = gv.mean(gv.tanh(x @ w) ** 2)
    g = gv.grad(loss, w)
    new_w = w - 0.5 * g
    f = gv.compile([loss, new_w, g], updates={w: new_w})
    rng = np.random.default_rng(1)
    w0, xv = rng.normal(size=(4, 3)), rng.normal(size=(5, 4))
    want = gv.evaluate([loss, new_w, g], {w: w0, x: xv})
    weights = w0.copy()
    loss_value, returned, grad_value = f({w: weights, x: xv})
    assert returned is weights                 # the parameter array now holds the new value
    np.testing.assert_allclose(weights, want[new_w], rtol=1e-12)
    np.testing.assert_allclose(loss_value, want[loss], rtol=1e-12)
    second = f({w: weights, x: xv})[2]
    assert second is not grad_value            # outputs are the caller's to keep
    assert not np.allclose(second, grad_value)


def test_a_float64_graph_compiles_as_float32():
    x = gv.var("x", (3,))
    f = gv.compile(gv.sum(gv.exp(x)), dtype="float32")
    value = f(x=[0.0, 1.0, 2.0])[0]
    assert value.dtype == np.float32
    np.testing.assert_allclose(value, np.exp([0.0, 1.0, 2.0]).sum(), rtol=1e-6)


def test_bad_feeds_are_clear_errors():
    x = gv.var("x", (3,))
    f = gv.compile(gv.sum(x * x))
    with pytest.raises(gv.GradvizError, match="no value for var 'x'"):
        f({})
    with pytest.raises(gv.ShapeError, match="shape"):
        f(x=np.ones(4))


def test_kernels_fuse_elementwise_runs_and_fold_broadcasts():
    from gradviz.compiler.cpu.backend import cpu_schedule

    x, b = gv.var("x", (8, 4)), gv.var("b", (4,))
    out = gv.relu(gv.tanh(x + b) * 2.0 - 1.0)
    kinds = [k.kind for k in cpu_schedule([out]).kernels]
    assert kinds == ["elementwise"]            # broadcast folded into the index, one loop
    h = gv.sum(gv.exp(x @ gv.var("w", (4, 4)) + b), axis=0)
    matmul, loop = cpu_schedule([h]).kernels
    assert matmul.kind == "matmul" and loop.kind == "elementwise"
    assert loop.reductions == {h}              # the sum accumulates inside the exp loop
    # a value that needs the finished sum runs in a later kernel
    kernels = cpu_schedule([gv.exp(x) / gv.sum(gv.exp(x), axis=1, keepdims=True)]).kernels
    assert [k.kind for k in kernels] == ["elementwise", "elementwise"]


def test_large_elementwise_loops_run_in_parallel_when_asked():
    from gradviz.compiler.cpu.backend import PARALLEL_MIN, compile_cpu

    rows = PARALLEL_MIN // 64
    x, b = gv.var("x", (rows, 64), "float32"), gv.var("b", (64,), "float32")
    outputs = [gv.sum(gv.tanh(x + b), axis=0), gv.relu(x * 3.0)]
    f = compile_cpu(outputs, threads=2)     # compile(threads=2) would also set process threads
    # the parallel loop is a block of the worker pool's threads (no Numba parfor)
    assert "each(part" in f.source and "nogil=True" in f.source
    assert "parallel=True" not in f.source
    rng = np.random.default_rng(0)
    env = {x: rng.normal(size=(rows, 64)), b: rng.normal(size=64)}
    want = gv.evaluate(outputs, {k: v.astype(np.float32) for k, v in env.items()})
    for node, value in zip(outputs, f(env)):
        np.testing.assert_allclose(value, want[node], rtol=2e-5, atol=1e-4)
