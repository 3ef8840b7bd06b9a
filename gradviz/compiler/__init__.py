"""The graph compiler: a graph, or a whole training step, as generated and cached Numba code.

    f = gv.compile([loss, *gv.grad(loss, [w, b])])      # device="cpu"
    loss_value, gw, gb = f(x=xs, w=w0, b=b0)

`schedule` partitions a graph into kernels; `templates` (elementwise code shared by both backends)
and `cpu/kernels` or `cuda/kernels` write their source from tables keyed by primitive;
`cpu/backend` or `cuda/backend` compiles and runs it; `cache` keeps the generated modules on disk.
See docs/compiler.md.
"""
from __future__ import annotations

import os
from typing import Mapping

from gradviz.errors import GradvizError
from gradviz.core.ir import Graph, Node

DEVICES = ("cpu", "cuda")


def _outputs_and_updates(target, updates):
    updates = dict(updates or {})
    if hasattr(target, "new_params") and hasattr(target, "graph"):  # a TrainStep
        pairs = zip((*target.params, *target.state), (*target.new_params, *target.new_state))
        updates = {**dict(pairs), **updates}
        return tuple(target.graph.outputs), updates
    if isinstance(target, Graph):
        return target.outputs, updates
    if isinstance(target, Node):
        return (target,), updates
    outputs = tuple(target)
    if not outputs or not all(isinstance(o, Node) for o in outputs):
        raise GradvizError("compile takes a node, a list of nodes, a Graph or a TrainStep")
    return outputs, updates


def compile(graph_or_outputs, device: str = "cpu", dtype: str | None = None, *,  # noqa: A001
            updates: Mapping[Node, Node] | None = None, points: bool = False,
            threads: int | None = None, like=None):
    """Compile a graph for `device` and return a callable: `f(feeds) -> [output values]`.

    `graph_or_outputs`: a node, a list of nodes, a `Graph`, or a `TrainStep` (whose parameters
    and optimizer state are then updated in place by each call). `dtype` is the compute type
    (default: the graph's). `updates={leaf: node}` writes each node's value into the array
    given for `leaf`. `points=True` compiles a scalar graph to run at many points at once: every
    variable takes an array (they broadcast) and each output is an array of values.
    `threads` (CPU): how many cores the step may use; None: `default_threads()`, every core
    the process may use (its CPU affinity, at most NUMBA_NUM_THREADS). With more than one, the large loops, matrix products, convolutions and
    pools are cut into `threads` fixed chunks that gradviz's worker threads run, each chunk
    calling BLAS with one thread: one owner of the cores (see docs/compiler.md). Each call then
    runs with the faster of `threads` and one thread, measured now and then, so a busy machine
    costs no more than one thread would; results depend on `threads` only. The BLAS the
    compiled code calls (SciPy's) is set to one thread for the process. Which kernels are cut
    depends on their sizes; `like` (a graph of the same structure compiled before at other
    sizes, such as a training step's full batch for its last, smaller one) cuts the same ones,
    so that the code is the same and Numba compiles nothing new.
    Raises GradvizError naming primitives with no lowering.
    """
    if device not in DEVICES:
        raise GradvizError(f"cannot compile for device {device!r} (devices: {', '.join(DEVICES)})")
    outputs, updates = _outputs_and_updates(graph_or_outputs, updates)
    if device == "cuda":  # see gradviz/compiler/cuda/backend.py and docs/gpu.md
        if points:
            raise GradvizError("points=True compiles for the CPU only")
        from gradviz.compiler.cuda.backend import compile_cuda

        return compile_cuda(outputs, updates, dtype=dtype)
    from gradviz.compiler.cpu.backend import compile_cpu

    threads = default_threads() if threads is None else threads
    set_threads(threads)
    return compile_cpu(outputs, updates, dtype=dtype, points=points, threads=threads,
                       plan=getattr(like, "plan", None))


# the most threads a step may use: twice the machine's CPUs, at least 64 (the worker pool's
# counters are fixed-size arrays that running workers keep reading)
MOST_THREADS = max(64, 2 * (os.cpu_count() or 1))


def default_threads() -> int:
    """Every core this process may use (its CPU affinity), at most NUMBA_NUM_THREADS when that
    is set (the usual way to limit a Numba program's threads, so it is honoured here too)."""
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    limit = os.environ.get("NUMBA_NUM_THREADS", "").strip()
    if limit.isdigit() and int(limit) > 0:
        n = min(n, int(limit))
    return max(1, n or 1)


def set_threads(threads: int) -> None:
    """Prepare the process for compiled steps of `threads` threads: the BLAS compiled code calls
    (SciPy's, loaded first so that the limit reaches it) runs one thread per call, since the
    cores belong to the worker pool, which splits the matrix products itself (two pools on two
    cores made an MLP step 3.5x slower). NumPy's own BLAS is left alone."""
    if threads < 1:
        raise GradvizError(f"threads must be at least 1, got {threads}")
    if threads > MOST_THREADS:
        raise GradvizError(f"threads must be at most {MOST_THREADS} on this machine, "
                           f"got {threads}")
    import scipy.linalg.cython_blas as blas  # noqa: F401
    from threadpoolctl import ThreadpoolController

    scipy_dir = os.path.dirname(os.path.dirname(os.path.abspath(blas.__file__)))
    for lib in ThreadpoolController().select(user_api="blas").lib_controllers:
        if os.path.abspath(lib.filepath).startswith(scipy_dir):   # scipy.libs/ or scipy/...
            lib.set_num_threads(1)


def source(graph_or_outputs, dtype: str | None = None, *, points: bool = False,
           threads: int | None = None, like=None) -> str:
    """The Python source `compile` would generate for the CPU (nothing is compiled)."""
    from gradviz.compiler.cpu.backend import cpu_schedule, generate, pick_dtype

    outputs, updates = _outputs_and_updates(graph_or_outputs, None)
    sched = cpu_schedule(outputs, updates)
    threads = default_threads() if threads is None else threads
    return generate(sched, pick_dtype(sched, dtype), threads, points=points,
                    plan=getattr(like, "plan", None))


__all__ = ["DEVICES", "compile", "default_threads", "set_threads", "source"]
