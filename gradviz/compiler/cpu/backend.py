"""The Numba CPU backend: one generated module per graph structure.

The module holds `@njit` functions of up to `CHUNK` kernels each and a plain Python `run(...)`,
which calls them in order. All arrays (leaf values, tensor constants, buffers) and all named sizes
(core/sizes.py) are arguments, so the module is the same text for every graph of the same
structure, whatever its sizes, and Numba's on-disk cache applies. Buffers are allocated once, when the graph is
compiled, and reused by every call.

Threads: BLAS owns the cores (matrix products are most of the work) and the generated loops are
serial. `compile_cpu(..., threads=n)` with n > 1 turns the outer loop of large elementwise kernels
into a `prange`; `gradviz.compile` does not use it, since two thread pools (Numba's and
OpenBLAS's) on two cores made an MLP step 3.5x slower than either alone.
"""
from __future__ import annotations

import time
from typing import Mapping

import numpy as np

from gradviz.compiler import cache, templates
from gradviz.compiler.cpu import kernels
from gradviz.compiler.schedule import Schedule, buffer_names, schedule
from gradviz.errors import GradvizError
from gradviz.core.interpret import leaf_array, lookup
from gradviz.core.ir import Node
from gradviz.core.sizes import as_code, symbols_of

# error_model="numpy": x/0 is inf or nan as in NumPy (and the interpreter), not an exception;
# the zero check it saves is also what kept loops with a division from vectorizing.
JIT = 'njit(cache=True, error_model="numpy")'
CHUNK = 16              # kernels per compiled function (see `generate`)
PARALLEL_MIN = 1 << 16   # elements; smaller loops do not repay the thread wake-up

PRELUDE = '''"""gradviz generated kernels ({what}). Do not edit: the file name is its content's hash."""
import numpy as np
from numba import njit, prange
from numpy import cos, exp, expm1, log, log1p, sin, sqrt

F = np.{dtype}
'''


def cpu_schedule(outputs, updates=None) -> Schedule:
    """The schedule of a graph with the CPU lowerings."""
    return schedule(outputs, updates, elementwise=templates.scalar_code,
                    kernels={op: k.accepts for op, k in kernels.cpu_kernels.items()})


def _describe(sched: Schedule, nodes) -> str:
    parts = []
    for n in nodes:
        label = f"%{sched.ids[n]}"
        parts.append(f"{label} {n.op}" + (f" {n.name!r}" if n.name else ""))
    return ", ".join(parts)


def generate(sched: Schedule, dtype: str, threads: int = 1, points: bool = False,
             chunk: int = 0) -> str:
    """The module source for `sched`. With `points`, every kernel takes the number of points `n`
    first and loops over that many (a scalar graph evaluated at many points).

    Kernels are written in groups of `chunk` (default `CHUNK`) per compiled function: Numba's
    compile time grows faster than linearly with the size of one function, and each function
    has a fixed cost too.
    """
    with as_code():   # sizes built as `Size`s are written as their names: see core/sizes.py
        return _generate(sched, dtype, threads, points, chunk)


def _generate(sched: Schedule, dtype: str, threads: int, points: bool, chunk: int) -> str:
    names = buffer_names(sched)
    dims = list(size_symbols(sched))
    jit = JIT
    lines = [PRELUDE.format(what="points" if points else "cpu", dtype=dtype),
             templates.helpers(dtype, jit)]
    calls = []
    for j, group in enumerate(_groups(_units(sched, names, threads, points), chunk or CHUNK)):
        params = list(dict.fromkeys([*dims, *(p for unit in group for p in unit[0])]))
        decorator = JIT[:-1] + ", parallel=True)" if group[0][2] else jit
        lines.append(f"\n@{decorator}\ndef part{j}({', '.join(params)}):")
        for unit in group:
            lines.extend("    " + line for line in unit[1])
        lines.append("")
        calls.append(f"part{j}({', '.join(params)})")
    for leaf, node in sched.late_updates:
        calls.append(f"{names[leaf]}[:] = {_value_name(sched, names, node)}")
    arguments = run_arguments(sched, names, points)
    # `run` is plain Python: a compiled driver would link every part into itself and have LLVM
    # optimize all of them a second time (a quarter of an MLP step's compile), for a saving of
    # a few microseconds of dispatch per part and step.
    lines.append(f"\n\ndef run({', '.join(arguments)}):")
    lines.extend(f"    {c}" for c in calls or ["pass"])
    return "\n".join(lines) + "\n"


def _units(sched: Schedule, names, threads: int, points: bool) -> list[tuple]:
    """(arguments, body lines, parallel) of every kernel, in order."""
    units = []
    for k in sched.kernels:
        parallel = threads > 1 and k.kind == "elementwise" and k.size >= PARALLEL_MIN
        header = [f"# kernel {k.index}: {_describe(sched, k.nodes)}"]
        if k.kind == "elementwise":
            params, body = kernels.elementwise_body(
                k, sched, names.__getitem__, size="n" if points else None, parallel=parallel)
            units.append((["n", *params] if points else params, header + body, parallel))
            continue
        node, = k.nodes
        args = [(names.get(a.base, "_"), a) for a in sched.reads(node)]
        params = [*dict.fromkeys(nm for nm, a in args if not a.literal), names[node]]
        lowering = kernels.cpu_kernels[k.kind]
        body = lowering.emit(node, args, names[node])
        if lowering.scratch is not None:
            params.append(f"s{k.index}")
            header.append(f"scratch = s{k.index}")
        units.append((params, header + body, False))
    return units


def _groups(units: list[tuple], chunk: int) -> list[list[tuple]]:
    """Consecutive units, at most `chunk` to a group; a parallel unit is a group of its own."""
    groups: list[list] = []
    for unit in units:
        if unit[2] or not groups or groups[-1][0][2] or len(groups[-1]) >= chunk:
            groups.append([unit])
        else:
            groups[-1].append(unit)
    return groups


def _value_name(sched: Schedule, names, node: Node) -> str:
    a = sched.access(node)
    if a.literal:
        return templates.lit(a.base.attrs["value"])
    return names[a.base]


def size_symbols(sched: Schedule) -> dict[str, int]:
    """The named sizes (see core/sizes.py) the graph's shapes and attributes use, sorted by name:
    arguments of the generated code, so one module serves every value of them."""
    found = symbols_of(*(n.shape for n in sched.order),
                       *(v for n in sched.order for v in n.attrs.values()))
    return dict(sorted(found.items()))


def run_arguments(sched: Schedule, names, points: bool) -> list[str]:
    args = ["n"] if points else []
    args += list(size_symbols(sched))
    args += [names[n] for n in sched.leaves]
    args += [names[n] for n in sched.constants]
    args += [names[n] for n in sched.buffers()]
    args += [name for name, _ in scratch(sched)]
    return args


def scratch(sched: Schedule) -> list[tuple[str, int]]:
    """(name, elements) of the working memory each one-op kernel asks for."""
    found = []
    for k in sched.kernels:
        lowering = kernels.cpu_kernels.get(k.kind)
        if lowering is not None and lowering.scratch is not None:
            found.append((f"s{k.index}", lowering.scratch(k.nodes[0])))
    return found


class CompiledGraph:
    """A graph compiled for the CPU: `f(feeds)` or `f(x=..., w=...)` returns the values of the
    outputs, in order (Python floats for float64 scalars, arrays otherwise).

    Feeds map leaves (nodes or names) to values. Leaves in `updates` get their new value written
    into the array passed in, when it is C-contiguous and of the compiled dtype; the outputs list
    carries that same array. Other array outputs are copies, safe to keep.
    """

    device = "cpu"

    def __init__(self, sched: Schedule, dtype: str, threads: int = 1, points: bool = False):
        self.schedule = sched
        self.dtype = np.dtype(dtype)
        self.points = points
        self.source = generate(sched, self.dtype.name, threads, points)
        self._names = buffer_names(sched)
        self._sizes = tuple(size_symbols(sched).values())
        self._leaves = sched.leaves
        self._constants = [np.ascontiguousarray(n.attrs["value"], self.dtype).reshape(-1)
                           for n in sched.constants]
        self._buffers = [] if points else [np.empty(n.size, self.dtype) for n in sched.buffers()]
        self._buffer_of = {n: b for n, b in zip(sched.buffers(), self._buffers)}
        self._buffers += [np.empty(size, self.dtype) for _, size in scratch(sched)]
        self._scalars = {leaf: np.zeros(1, self.dtype) for leaf in self._leaves if leaf.shape == ()}
        start = time.perf_counter()
        self._module = self._load_and_compile()
        self.compile_seconds = time.perf_counter() - start

    # -- building -------------------------------------------------------------------------------
    def _compile_parts(self, module) -> None:
        """Compile (or load from Numba's cache) every part for this graph's argument types: sizes
        (`d_...`, and `n` at points) are integers, everything else a flat array."""
        from numba import typeof

        array, integer = typeof(np.empty(1, self.dtype)), typeof(1)
        for name, part in vars(module).items():
            if name.startswith("part"):
                code = part.py_func.__code__
                params = code.co_varnames[:code.co_argcount]
                part.compile(tuple(integer if p == "n" or p.startswith("d_") else array
                                   for p in params))

    def _load_and_compile(self):
        module = cache.load(self.source)
        try:
            self._compile_parts(module)
        except Exception:  # noqa: BLE001 - a damaged cache entry: drop it and build afresh
            cache.purge(module)
            module = cache.load(self.source)
            self._compile_parts(module)
        self._run = module.run
        return module

    def cache_stats(self) -> dict[str, int]:
        """How many compiled functions of this graph came from Numba's disk cache (`hits`) and
        how many were compiled in this process (`misses`)."""
        from numba.core.registry import CPUDispatcher

        hits = misses = 0
        for value in vars(self._module).values():
            if isinstance(value, CPUDispatcher):
                hits += sum(value.stats.cache_hits.values())
                misses += sum(value.stats.cache_misses.values())
        return {"hits": hits, "misses": misses}

    # -- running --------------------------------------------------------------------------------
    def _flat(self, leaf: Node, raw) -> np.ndarray:
        if leaf.shape == () and leaf in self._scalars and np.ndim(raw) == 0:
            slot = self._scalars[leaf]
            try:
                slot[0] = raw
            except (TypeError, ValueError):
                raise GradvizError(f"value for {leaf.name!r} is not a number: {raw!r}") from None
            return slot
        arr = leaf_array(leaf, raw, self.dtype)
        if not arr.flags.c_contiguous:
            arr = np.ascontiguousarray(arr)
        return arr.reshape(-1)

    def __call__(self, feeds: Mapping | None = None, **named) -> list:
        if self.points:
            return self._call_points(dict(feeds or {}, **named))
        feeds = dict(feeds or {}, **named) if named else (feeds or {})
        values = {leaf: self._flat(leaf, lookup(leaf, feeds)) for leaf in self._leaves}
        self._run(*self._sizes, *values.values(), *self._constants, *self._buffers)
        return [self._output(node, values, feeds) for node in self.schedule.outputs]

    def _output(self, node: Node, values, feeds):
        sched = self.schedule
        a = sched.access(node)
        base = a.base
        if a.literal:
            flat = np.full(1, base.attrs["value"], self.dtype)
        elif base in sched.inplace:
            leaf = sched.inplace[base]
            flat = values[leaf]
            raw = lookup(leaf, feeds)
            if isinstance(raw, np.ndarray) and raw.dtype == self.dtype and \
                    np.shares_memory(raw, flat) and raw.shape == node.shape:
                return raw
            return flat.reshape(node.shape)
        elif base in self._buffer_of:
            flat = self._buffer_of[base]
        elif base.op == "const":
            flat = self._constants[sched.constants.index(base)]
        else:
            flat = values[base]
        if node.shape == ():
            return float(flat[0]) if self.dtype == np.float64 else flat.reshape(()).copy()
        return flat.reshape(node.shape).copy()

    def _call_points(self, feeds: Mapping) -> list:
        raws = [np.asarray(lookup(leaf, feeds), dtype=self.dtype) for leaf in self._leaves]
        shape = np.broadcast_shapes(*(r.shape for r in raws)) if raws else ()
        flats = [np.ascontiguousarray(np.broadcast_to(r, shape)).reshape(-1) for r in raws]
        n = int(np.prod(shape, dtype=np.int64))
        buffers = {node: np.empty(n, self.dtype) for node in self.schedule.buffers()}
        self._run(n, *self._sizes, *flats, *self._constants, *buffers.values())
        values = dict(zip(self._leaves, flats))
        out = []
        for node in self.schedule.outputs:
            a = self.schedule.access(node)
            if a.literal:
                out.append(np.full(shape, a.base.attrs["value"], self.dtype))
            else:
                out.append((buffers.get(a.base, values.get(a.base))).reshape(shape))
        return out


def compile_cpu(outputs, updates=None, dtype: str | None = None, threads: int = 1,
                points: bool = False) -> CompiledGraph:
    """Schedule, generate and compile (or load from the cache) a graph for the CPU."""
    sched = cpu_schedule(outputs, updates)
    if points:
        bad = sorted({n.op for n in sched.order if n.shape != ()})
        if bad:
            raise GradvizError("evaluating at many points needs a scalar graph; these ops have "
                               f"tensor values: {', '.join(bad)}")
        if sched.constants:
            raise GradvizError("evaluating at many points needs a scalar graph")
    dtype = pick_dtype(sched, dtype)
    return CompiledGraph(sched, dtype, threads, points)


def pick_dtype(sched: Schedule, dtype: str | None) -> str:
    """The compute dtype: `dtype` if given, else the graph's own (which must be one)."""
    if dtype is None:
        dtypes = {n.dtype for n in sched.order}
        if len(dtypes) > 1:
            raise GradvizError("the graph mixes float32 and float64; pass dtype= to compile it")
        dtype = dtypes.pop() if dtypes else "float64"
    try:
        name = np.dtype(dtype).name
    except TypeError:
        name = str(dtype)
    if name not in ("float32", "float64"):
        raise GradvizError(f"dtype must be float32 or float64, not {dtype}")
    return name
