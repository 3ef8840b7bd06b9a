"""Every CUDA kernel template against the NumPy interpreter, at sizes the simulator runs quickly.

The op spec table drives it: every row's value and its vector-Jacobian products (a fixed random
cotangent) are compiled into one graph per row and dtype (ids `float32-<row>`, so `-k tanh` runs
only the tanh rows) and compared with the interpreter. Then the
templates' other code paths (partial matmul tiles, transposed operands, shared-memory and
split reductions with atomics, a convolution's weight gradient split over blocks), the typed
literals rule, in-place updates on the device, and the no-GPU error.
"""
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import gradviz as gv
from gradviz.core.autodiff import adjoints
from gradviz.compiler import templates
from gradviz.compiler.cuda.kernels import LaunchConfig, Tile, cuda_kernels
from gradviz.compiler.cuda.backend import compile_cuda, simulator_enabled
from gradviz.ops import conv as nn
from gradviz.core.rules import primitives
from op_specs import SPECS

TOLERANCE = {"float64": dict(rtol=1e-11, atol=1e-12), "float32": dict(rtol=3e-5, atol=3e-6)}


def _row_graph(spec, index, dtype):
    nodes = [gv.var(f"r{index}_a{i}", shape, dtype) for i, shape in enumerate(spec.shapes)]
    out = spec.build(*nodes)
    weights = np.random.default_rng(index).uniform(0.5, 1.5, size=out.shape)
    seed = gv.const(weights if out.shape else float(weights), dtype)
    adj = adjoints(out, seed)
    outputs = [out, *(adj.of[n] for n in nodes if n in adj.of)]
    env = dict(zip(nodes, spec.inputs(seed=index, dtype=dtype)))
    return outputs, env


# one case per (dtype, row): a row added to the table is a new case, named after it
ROWS = [pytest.param(spec, index, dtype, id=f"{dtype}-{spec.name}")
        for dtype in ("float32", "float64") for index, spec in enumerate(SPECS)]


@pytest.mark.parametrize("spec, index, dtype", ROWS)
def test_cuda_matches_interpreter(spec, index, dtype):
    outputs, env = _row_graph(spec, index, dtype)
    f = compile_cuda(outputs)
    got = dict(zip(outputs, f(env)))
    want = gv.evaluate(outputs, env)
    for node in outputs:
        value = np.asarray(got[node])
        assert value.shape == node.shape and value.dtype == np.dtype(dtype)
        np.testing.assert_allclose(value, want[node], **TOLERANCE[dtype])


def test_every_primitive_has_a_cuda_lowering():
    lowered = set(templates.scalar_code) | set(cuda_kernels) | {"reshape", "broadcast_to",
                                                               "transpose"}
    assert set(primitives()) - lowered == set()


def _check(outputs, env, config=None, **tol):
    f = compile_cuda(outputs, config=config)
    want = gv.evaluate(outputs, env)
    for node, value in zip(outputs, f(env)):
        np.testing.assert_allclose(np.asarray(value), want[node], **(tol or TOLERANCE["float32"]))
    return f


def _randn(rng, *shape):
    return rng.normal(size=shape).astype(np.float32)


def test_matmul_partial_tiles_and_transposed_operands():
    rng = np.random.default_rng(1)
    a, b = gv.var("a", (5, 7), "float32"), gv.var("b", (7, 6), "float32")
    c = gv.var("c", (6, 5), "float32")
    outputs = [a @ b, a.T @ c.T, b.T @ a.T]
    _check(outputs, {"a": _randn(rng, 5, 7), "b": _randn(rng, 7, 6), "c": _randn(rng, 6, 5)})


def test_matmul_register_blocked_tiles():
    """Products big enough for the big tile: each thread computes 2x2 outputs (simulator)."""
    rng = np.random.default_rng(6)
    a, b = gv.var("a", (9, 10), "float32"), gv.var("b", (10, 11), "float32")
    c = gv.var("c", (10, 9), "float32")
    f = _check([a @ b, c.T @ b, b.T @ c],
               {"a": _randn(rng, 9, 10), "b": _randn(rng, 10, 11), "c": _randn(rng, 10, 9)})
    assert "acc1_1 += ra1 * rb1" in f.source


@pytest.mark.parametrize("tile", [Tile(16, 16, 16), Tile(64, 64, 8, 4, 4)], ids=["16", "64"])
def test_matmul_with_the_gpu_tiles(tile):
    """The tiles a GPU uses (256 threads a block), on products with partial tiles."""
    rng = np.random.default_rng(2)
    a, b = gv.var("a", (65, 3), "float32"), gv.var("b", (3, 2), "float32")
    config = LaunchConfig(threads=8, warp=1, blocks=2, tile=tile, big_tile=tile)
    f = _check([a @ b], {"a": _randn(rng, 65, 3), "b": _randn(rng, 3, 2)}, config)
    assert f"cuda.shared.array(({tile.bk}, {tile.bm}), FT)" in f.source


@pytest.mark.parametrize("op", ["sum", "amax"])
def test_long_reductions_use_shared_memory_and_split_with_atomics(op):
    rng = np.random.default_rng(3)
    x = gv.var("x", (3, 40), "float32")
    y = gv.var("y", (6, 20), "float32")   # enough outputs: one block each, no atomics
    reduce = gv.sum if op == "sum" else gv.amax
    outputs = [reduce(x, 1), reduce(x, 0), reduce(gv.transpose(x), 0), reduce(y, 1)]
    f = _check(outputs, {"x": _randn(rng, 3, 40), "y": _randn(rng, 6, 20)})
    assert f"cuda.atomic.{'add' if op == 'sum' else 'max'}(" in f.source
    assert "fill_[" in f.source and "cuda.shared.array(4, FT)" in f.source


def test_convolution_weight_gradient_split_over_blocks():
    rng = np.random.default_rng(4)
    x, g = gv.var("x", (2, 1, 6, 6), "float32"), gv.var("g", (2, 2, 4, 4), "float32")
    dw = nn.conv2d_weight_grad(x, g, (3, 3))
    env = {"x": _randn(rng, 2, 1, 6, 6), "g": _randn(rng, 2, 2, 4, 4)}
    one_block_each = _check([dw], env)
    assert "cuda.atomic.add(" not in one_block_each.source
    # 18 weights, fewer than a GPU's blocks: each one's 32 terms are split over 4 blocks
    wide = LaunchConfig(threads=4, warp=1, blocks=4, tile=Tile(4, 4, 4), reduce_threads=4,
                        serial_reduce=4,
                        min_blocks=64, split_chunk=8)
    assert "cuda.atomic.add(" in _check([dw], env, wide).source


def test_generated_code_has_only_typed_literals():
    """A bare float literal would make float32 kernels compute in float64 on a real GPU (the
    simulator does not tell); every one is wrapped in F(...)."""
    outputs = []
    for i, spec in enumerate(SPECS):
        outputs.extend(_row_graph(spec, i, "float32")[0])
    source = compile_cuda(outputs).source
    kernels = source[source.index("@cuda.jit"):source.index("\ndef run(")]
    code = "\n".join(line.split("#")[0] for line in kernels.splitlines())
    code = re.sub(r"\bF\([^()]*\)", "F()", code)
    bare = re.findall(r"(?<![\w.])(\d+\.\d*(?:e[-+]?\d+)?|\d+e[-+]?\d+|inf|nan)\b", code)
    assert bare == []
    assert "float64" not in kernels


def test_updates_happen_in_place_on_the_device_and_outputs_stay_there():
    rng = np.random.default_rng(5)
    x = gv.var("x", (4, 3), "float32")
    w = gv.param("w", (3, 2), "float32")
    lr = gv.var("lr", (), "float32")
    loss = gv.sum((x @ w) ** 2.0)
    (gw,) = gv.grad(loss, [w])
    new_w = w - lr * gw
    f = compile_cuda([loss, new_w], updates={w: new_w})
    xs, w0 = _randn(rng, 4, 3), _randn(rng, 3, 2)
    loss1, dev_w = f({"x": xs, "w": w0, "lr": 0.01})
    assert isinstance(loss1, np.ndarray) and not isinstance(dev_w, np.ndarray)
    loss2, dev_w2 = f({"x": xs, "w": dev_w, "lr": 0.01})
    host = w0.astype(np.float64)
    for got in (loss1, loss2):
        value = gv.evaluate([loss, new_w], {"x": xs, "w": host, "lr": 0.01})
        np.testing.assert_allclose(got, value[loss], rtol=1e-5)
        host = value[new_w]
    # the first step's output array was updated in place by the second step
    np.testing.assert_allclose(np.asarray(dev_w), host, rtol=1e-5)
    np.testing.assert_array_equal(np.asarray(dev_w2), np.asarray(dev_w))


def test_updates_that_cannot_happen_in_place_are_copied_or_filled_after_the_kernels():
    w, v = gv.param("w", (), "float32"), gv.param("v", (3,), "float32")
    half = gv.const(0.5, "float32")
    spread = gv.broadcast_to(half, (3,))
    f = compile_cuda([gv.sum(v) * w, half, spread], updates={w: half, v: spread})
    assert "fill_[" in f.source and ".copy_to_device(" in f.source
    total, new_w, new_v = f({"w": 2.0, "v": np.ones(3, np.float32)})
    assert float(total) == 6.0
    assert np.asarray(new_w).shape == () and float(np.asarray(new_w)) == 0.5
    np.testing.assert_array_equal(np.asarray(new_v), [0.5, 0.5, 0.5])
    total, _, _ = f({"w": new_w, "v": new_v})
    assert float(total) == 0.75


@pytest.mark.skipif(not simulator_enabled(), reason="checks the error shown without a GPU")
@pytest.mark.parametrize("command", [
    ["train", "--model", "mlp", "--data", "xor", "--epochs", "1"],
    ["bench", "--model", "mlp", "--steps", "1"]], ids=["train", "bench"])
def test_without_a_gpu_device_cuda_is_one_line_and_exit_2(command):
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    probe = subprocess.run([sys.executable, "-c", "from numba import cuda; "
                            "print(cuda.is_available())"], env=env, capture_output=True, text=True)
    if probe.stdout.strip() != "False":
        pytest.skip("this machine has a GPU")
    done = subprocess.run([sys.executable, "-m", "gradviz", *command, "--device", "cuda"],
                          env=env, capture_output=True, text=True)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gradviz: error: --device cuda: no usable CUDA")


def test_bad_feeds_are_one_line_errors():
    from numba import cuda

    from gradviz.errors import GradvizError

    w = gv.var("w", (3, 2), "float32")
    f = compile_cuda([gv.sum(w * w)])
    with pytest.raises(GradvizError, match="has shape"):
        f(w=np.ones((2, 3)))
    with pytest.raises(GradvizError, match="device array of shape"):
        f(w=cuda.to_device(np.ones((2, 3), np.float32)))
    with pytest.raises(GradvizError, match="float64 device array"):
        f(w=cuda.to_device(np.ones((3, 2))))
    with pytest.raises(GradvizError, match="no value for var 'w'"):
        f()
    with pytest.raises(GradvizError, match="CPU only"):
        gv.compile([gv.sum(w)], device="cuda", points=True)
