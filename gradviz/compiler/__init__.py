"""The graph compiler: a graph, or a whole training step, as generated and cached Numba code.

    f = gv.compile([loss, *gv.grad(loss, [w, b])])      # device="cpu"
    loss_value, gw, gb = f(x=xs, w=w0, b=b0)

`schedule` partitions a graph into kernels; `templates` (elementwise code shared by both backends)
and `cpu/kernels` or `cuda/kernels` write their source from tables keyed by primitive;
`cpu/backend` or `cuda/backend` compiles and runs it; `cache` keeps the generated modules on disk.
See docs/compiler.md.
"""
from __future__ import annotations

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
            threads: int | None = None):
    """Compile a graph for `device` and return a callable: `f(feeds) -> [output values]`.

    `graph_or_outputs`: a node, a list of nodes, a `Graph`, or a `TrainStep` (whose parameters
    and optimizer state are then updated in place by each call). `dtype` is the compute type
    (default: the graph's). `updates={leaf: node}` writes each node's value into the array
    given for `leaf`. `points=True` compiles a scalar graph to run at many points at once: every
    variable takes an array (they broadcast) and each output is an array of values.
    `threads`: None leaves thread settings alone; a number sets, for the whole process, how many
    threads BLAS uses (the matrix products). The generated loops stay serial: BLAS owns the
    cores (with Numba's thread pool active too, an MLP step ran 3.5x slower on 2 cores).
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

    if threads is not None:
        set_threads(threads)
    return compile_cpu(outputs, updates, dtype=dtype, points=points)


def set_threads(threads: int) -> None:
    """Use `threads` threads in BLAS (every library loaded, SciPy's included: compiled code
    calls it). Numba's own thread pool is left unstarted: once started, its threads compete
    with BLAS's on a small machine."""
    import scipy.linalg.cython_blas  # noqa: F401  (load the BLAS compiled code calls, to limit it)
    from threadpoolctl import threadpool_limits

    if threads < 1:
        raise GradvizError(f"threads must be at least 1, got {threads}")
    threadpool_limits(limits=threads, user_api="blas")


def source(graph_or_outputs, dtype: str | None = None, *, points: bool = False) -> str:
    """The Python source `compile` would generate for the CPU (nothing is compiled)."""
    from gradviz.compiler.cpu.backend import cpu_schedule, generate, pick_dtype

    outputs, updates = _outputs_and_updates(graph_or_outputs, None)
    sched = cpu_schedule(outputs, updates)
    return generate(sched, pick_dtype(sched, dtype), points=points)


__all__ = ["DEVICES", "compile", "set_threads", "source"]
