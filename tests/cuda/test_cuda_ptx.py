"""Every CUDA kernel template through NVIDIA's real compiler (NVVM) to PTX for an H100 (sm_90),
without a GPU: the simulator runs kernels as Python and accepts code a real compile rejects.

Runs with the simulator off where NVVM is installed (`pip install 'gradviz[cuda12]'` or
`[cuda13]`), GPU or not; skipped otherwise. Also checks that float32 kernels do no float64
arithmetic (a bare literal would promote it), except inside libdevice's sin/cos argument reduction.
"""
import re
import types

import pytest

import gradviz as gv
from gradviz.compiler.cuda.kernels import LaunchConfig
from gradviz.compiler.cuda.backend import LAUNCHES, cuda_schedule, generate, simulator_enabled
from gradviz.ops import conv as nn

pytestmark = pytest.mark.nvvm


@pytest.fixture(scope="module")
def cuda():
    if simulator_enabled():
        pytest.skip("the simulator is on (NVVM is not used)")
    from numba import cuda

    def probe(out):
        out[0] = 1.0

    try:
        cuda.compile_ptx(probe, "void(float32[::1])", cc=(9, 0))
    except Exception as exc:  # noqa: BLE001 - NVVM or NVRTC missing or unloadable
        reason = " ".join(str(exc).split())[:120]
        pytest.skip(f"cannot compile CUDA here (pip install 'gradviz[cuda12]'): {reason}")
    return cuda


@pytest.fixture
def ptx_of(cuda, monkeypatch):
    """`ptx_of(outputs, updates, config) -> {kernel name: (source, ptx)}`."""
    if not cuda.is_available():
        # device functions are compiled for the current device's compute capability
        import numba.cuda.dispatcher as dispatcher

        monkeypatch.setattr(dispatcher, "get_current_device",
                            lambda: types.SimpleNamespace(compute_capability=(9, 0)))

    def compile_all(outputs, updates=None, config=LaunchConfig()):
        source = generate(cuda_schedule(outputs, updates), "float32", config)
        source = source[:source.index(LAUNCHES)]   # no launches: nothing runs
        found = {}

        def jit(signature=None, device=False, cache=False):
            if device:
                return cuda.jit(device=True)

            def compile_kernel(fn):
                ptx, _ = cuda.compile_ptx(fn, signature, cc=(9, 0))
                start = source.index(f"def {fn.__name__}(")
                found[fn.__name__] = (source[start:source.find("\n\n", start)], ptx)
                return fn
            return compile_kernel

        namespace = {"_jit": jit}
        exec(compile(source.replace("@cuda.jit(", "@_jit("), "<generated>", "exec"), namespace)
        return found
    return compile_all


def _float64_free(found):
    for name, (source, ptx) in found.items():
        if re.search(r"\b(sin|cos)\(", source):
            continue   # libdevice's sinf/cosf reduce large arguments in double precision
        assert ".f64" not in ptx, f"{name} computes in float64:\n{source}"


def test_elementwise_templates_and_helpers(ptx_of):
    x = gv.var("x", (5,), "float32")
    y = gv.var("y", (5,), "float32")
    unary = [gv.exp, gv.log, gv.sqrt, abs, gv.tanh, gv.sigmoid, gv.relu, gv.step, gv.sign,
             gv.softplus, lambda v: gv.leaky_relu(v, 0.1), lambda v: gv.elu(v, 0.7), lambda v: -v,
             lambda v: v ** 3.0, gv.asin, gv.acos, gv.atan, gv.erf, gv.gelu]
    binary = [lambda a, b: a + b, lambda a, b: a - b, lambda a, b: a * b, lambda a, b: a / b,
              lambda a, b: a ** b, gv.maximum, gv.minimum, gv.atan2]
    z = gv.var("z", (3,), "float32")
    outputs = [f(x) for f in unary] + [f(x, y) for f in binary] + [gv.sin(z), gv.cos(z)]
    outputs.append(gv.broadcast_to(gv.reshape(z, (3, 1)), (3, 4)) * gv.transpose(
        gv.var("m", (4, 3), "float32")))   # a strided load
    found = ptx_of(outputs)
    assert len(found) >= 3
    _float64_free(found)


def test_one_op_kernels(ptx_of):
    a, b = gv.var("a", (20, 30), "float32"), gv.var("b", (30, 40), "float32")
    x, w = gv.var("x", (2, 3, 12, 12), "float32"), gv.var("w", (4, 3, 5, 5), "float32")
    conv = nn.conv2d(x, w, 1, 2)
    g = gv.var("g", conv.shape, "float32")
    p = gv.var("p", (2, 3, 6, 6), "float32")
    outputs = [a @ b, a.T @ gv.var("c", (20, 7), "float32"),
               gv.sum(a), gv.sum(a, 0), gv.sum(a, 1), gv.amax(a, 1), gv.amax(b),
               conv, nn.conv2d_transpose(g, w, (12, 12), 1, 2),
               nn.conv2d_weight_grad(x, g, (5, 5), 1, 2),
               nn.max_pool2d(x, 2), nn.max_pool2d_grad(x, p, 2), nn.max_pool2d_gather(x, x, 2),
               nn.avg_pool2d(x, 2), nn.avg_pool2d_transpose(p, (12, 12), 2)]
    found = ptx_of(outputs)
    _float64_free(found)
    # register-blocked 64x64 tiles, 4x4 outputs a thread
    found = ptx_of([a @ b, a.T @ gv.var("c", (20, 7), "float32")],
                   config=LaunchConfig(big_tile_blocks=1))
    assert all("acc3_3 += ra3 * rb3" in s for s, _ in found.values())
    _float64_free(found)
    # small reductions split over blocks with atomics (and a fill kernel before them)
    split = LaunchConfig(min_blocks=1 << 20, split_chunk=1, serial_reduce=4)
    found = ptx_of([gv.sum(a), gv.amax(a), nn.conv2d_weight_grad(x, g, (5, 5), 1, 2)],
                   config=split)
    assert any("atomic.max" in s for s, _ in found.values())
    assert sum("atomic.add" in s for s, _ in found.values()) == 2
    _float64_free(found)


def test_structure_keyed_training_step(ptx_of):
    """A training step built with named sizes (batch, widths: core/sizes.py) takes them as int64
    kernel arguments; a mean's 1/batch is divided in float32, so no kernel computes in float64."""
    from gradviz.nn.models import build_model
    from gradviz.nn.optim import Adam
    from gradviz.nn.step import build_train_step

    net = build_model("mlp", (6,), 3, hidden="5")
    step = build_train_step(net, 4, net.input_shape, optimizer=Adam())
    updates = dict(zip((*step.params, *step.state), (*step.new_params, *step.new_state)))
    found = ptx_of(tuple(step.graph.outputs), updates)
    assert found and all(source.startswith(f"def {name}(d_batch, d_features, d_width0")
                         for name, (source, _) in found.items())
    _float64_free(found)
