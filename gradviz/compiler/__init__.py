"""The graph compiler: a graph, or a whole training step, as generated and cached Numba code.

    f = gv.compile([loss, *gv.grad(loss, [w, b])])      # device="cpu"
    loss_value, gw, gb = f(x=xs, w=w0, b=b0)

`schedule` partitions a graph into kernels, `codegen` writes their source from tables keyed by
primitive, `numba_cpu` compiles and runs it, `cache` keeps the generated modules on disk. See
docs/compiler.md.
"""
from __future__ import annotations

from typing import Iterable, Mapping

from gradviz.errors import GradvizError
from gradviz.ir import Graph, Node

DEVICES = ("cpu",)


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
            threads: int = 1):
    """Compile a graph for `device` and return a callable: `f(feeds) -> [output values]`.

    `graph_or_outputs`: a node, a list of nodes, a `Graph`, or a `TrainStep` (whose parameters
    and optimizer state are then updated in place by each call). `dtype` is the compute type
    (default: the graph's). `updates={leaf: node}` writes each node's value into the array
    given for `leaf`. `points=True` compiles a scalar graph to run at many points at once: every
    variable takes an array (they broadcast) and each output is an array of values. `threads > 1`
    runs large elementwise loops on that many threads (BLAS uses its own).
    Raises GradvizError naming the primitives that have no lowering.
    """
    if device not in DEVICES:
        raise GradvizError(f"cannot compile for device {device!r} (devices: {', '.join(DEVICES)})")
    outputs, updates = _outputs_and_updates(graph_or_outputs, updates)
    from gradviz.compiler.numba_cpu import compile_cpu

    if threads > 1:
        import numba

        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    return compile_cpu(outputs, updates, dtype=dtype, threads=threads, points=points)


__all__ = ["compile", "DEVICES"]
