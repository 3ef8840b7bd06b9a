"""The Numba CPU backend: one generated module per graph structure.

The module holds `@njit` functions of up to `CHUNK` kernels each and a plain Python `run(...)`,
which calls them in order. All arrays (leaf values, tensor constants, buffers) and all named sizes
(core/sizes.py) are arguments, so the module is the same text for every graph of the same
structure, whatever its sizes, and Numba's on-disk cache applies. Buffers are allocated once, when the graph is
compiled, and reused by every call.

Threads: one owner of the cores, the worker pool (workers.py). With `threads=n > 1` the module is
the parallel one: large elementwise kernels, matrix products, convolutions and pools do block
`me` of `workers` of their outer loop over `nt` fixed chunks (kernels.py), each chunk calling
BLAS with one thread, so that BLAS's own threads never compete with the pool (two pools on two
cores made an MLP step 3.5x slower). A part that holds such a kernel is a function
`part(me, workers, started, ...)` that every block runs, its kernels separated by barriers
(`_parallel_part`); `run` hands it to the pool. `nt` = n is an argument of the generated code;
how many threads run the blocks is chosen per call by `ThreadGuard` (the faster of n and 1,
measured, so a busy machine does not make the step slower than one thread), and never changes
the result. With `threads=1` the module is the serial one.
"""
from __future__ import annotations

import functools
import re
import statistics
import time
from typing import Mapping

import numpy as np

from gradviz.compiler import cache, templates
from gradviz.compiler.cpu import blas, compile_pool, kernels, workers
from gradviz.compiler.schedule import Schedule, buffer_names, schedule
from gradviz.errors import GradvizError
from gradviz.core.interpret import leaf_array, lookup
from gradviz.core.ir import Node
from gradviz.core.sizes import as_code, graph_sizes

# error_model="numpy": x/0 is inf or nan as in NumPy (and the interpreter), not an exception;
# the zero check it saves is also what kept loops with a division from vectorizing.
JIT = 'njit(cache=True, error_model="numpy")'
# a parallel kernel runs on several threads at once: it must not hold the GIL
PARALLEL_JIT = 'njit(cache=True, error_model="numpy", nogil=True)'
CHUNK = 16              # kernels per compiled function (see `generate`)
PARALLEL_MIN = 1 << 18   # elements; smaller loops do not repay handing a block to a thread
PARALLEL_WORK = 1 << 18  # one-op kernels: multiply-adds (GEMM, convolution) or window reads
GEMM_SPLIT_MIN = 1 << 20  # multiply-adds per chunk of a split matrix product (kernels.py)
GEMM_PARALLEL_WORK = 1 << 25   # multiply-adds of a matrix product worth splitting
GEMM_ROWS_PER_THREAD = 256     # and rows of its product per thread
# The thresholds above are for a kernel that must repay handing a part to the threads (`each`,
# tens of microseconds). Once a module has such a kernel, loops, convolutions and pools down to
# 1/IN_PART of them are split too: in a part that is handed over anyway, one more split kernel
# costs a barrier (a few microseconds). (Not products: on one thread, a busy machine's case, a
# product cut in chunks packs its other operand once per chunk; the MLP at batch 128 with its
# products cut ran 1.40-1.51x faster on two threads but 0.88-0.95x on one: docs/benchmarks.md.)
IN_PART = 8

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
             chunk: int = 0, parallel_min: int | None = None,
             plan: frozenset[int] | None = None) -> str:
    """The module source for `sched`. With `points`, every kernel takes the number of points `n`
    first and loops over that many (a scalar graph evaluated at many points).

    Kernels are written in groups of `chunk` (default `CHUNK`) per compiled function: Numba's
    compile time grows faster than linearly with the size of one function, and each function
    has a fixed cost too.

    `threads > 1` writes the parallel module (see the module docstring); `parallel_min` scales
    the size thresholds (`PARALLEL_MIN` elements, `PARALLEL_WORK` for one-op kernels) down, for
    tests. A graph with no kernel large enough gets the serial module's very text. `plan`: the
    kernels to split, as another graph of the same structure chose them (`CompiledGraph.plan`)
    instead of by this graph's sizes, so that the two give the same text.
    """
    with as_code():   # sizes built as `Size`s are written as their names: see core/sizes.py
        return _generate(sched, dtype, threads, points, chunk, parallel_min, plan)


def _parallel_units(sched: Schedule, threads: int, points: bool,
                    parallel_min: int | None = None,
                    plan: frozenset[int] | None = None) -> dict[int, bool]:
    """Kernel index -> written in parallel form (only in the parallel module, and only kernels
    whose work repays waking the threads: see `IN_PART`; or those of `plan`, where every one
    of them can be split)."""
    if plan is not None and threads > 1 and not points:
        if plan <= {k.index for k in sched.kernels if _splittable(k)}:
            return {k.index: k.index in plan for k in sched.kernels}
    scale = 1.0 if parallel_min is None else parallel_min / PARALLEL_MIN
    found = _split(sched, threads, points, scale, scale)
    return _split(sched, threads, points, scale / IN_PART, scale) if any(found.values()) \
        else found


def _splittable(k) -> bool:
    """Whether kernel `k` has a parallel form (a fused loop always has)."""
    return k.kind == "elementwise" or kernels.cpu_kernels[k.kind].parallel is not None


def _split(sched: Schedule, threads: int, points: bool, scale: float,
           gemm_scale: float) -> dict[int, bool]:
    """`_parallel_units` at thresholds scaled by `scale` (matrix products: `gemm_scale`)."""
    found = {}
    for k in sched.kernels:
        if threads <= 1 or points:
            found[k.index] = False
        elif k.kind == "elementwise":   # (a folded reduction: per-chunk partial results)
            found[k.index] = k.size >= PARALLEL_MIN * scale
        elif not _splittable(k):   # (such as a reduction of its own: it has no `work`)
            found[k.index] = False
        else:
            lowering = kernels.cpu_kernels[k.kind]
            node = k.nodes[0]
            if k.kind == "matmul":
                # a product of few rows split in two gained nothing (each chunk packs all of
                # the other operand) and lost the hand-over to the other thread
                a, b = sched.reads(node)
                rows = (node.src[0].shape[1] if kernels.splits_shared_axis(node, a, b)
                        else node.shape[0])     # (of the axis split)
                enough = (lowering.work(node) >= GEMM_PARALLEL_WORK * gemm_scale
                          and rows >= GEMM_ROWS_PER_THREAD * threads * gemm_scale)
            else:
                enough = lowering.work(node) >= PARALLEL_WORK * scale
            found[k.index] = enough
    return found


def _generate(sched: Schedule, dtype: str, threads: int, points: bool, chunk: int,
              parallel_min: int | None, plan: frozenset[int] | None) -> str:
    names = buffer_names(sched)
    dims = list(graph_sizes(sched.order))
    jit = JIT
    lines = [PRELUDE.format(what="points" if points else "cpu", dtype=dtype),
             templates.helpers(dtype, jit)]
    calls = []
    parallel = _parallel_units(sched, threads, points, parallel_min, plan)
    if any(parallel.values()):
        split = GEMM_SPLIT_MIN if parallel_min is None else \
            max(1, GEMM_SPLIT_MIN * parallel_min // PARALLEL_MIN)
        lines.insert(1, f"GEMM_SPLIT_MIN = {split}\n")
        lines.insert(1, _linked_import(workers, "_after_block, _barrier", "link_barrier"))
    for j, group in enumerate(_groups(_units(sched, names, parallel, points), chunk or CHUNK)):
        params = list(dict.fromkeys([*dims, *(p for unit in group for p in unit[0])]))
        if any(unit[2] for unit in group):
            lines.append(f"\n@{PARALLEL_JIT}\n"
                         f"def part{j}(me, workers, started, {', '.join(params)}):")
            lines.append("    started[me] = 1   # (the caller waits for this: workers.py)")
            calls.append(f"each(part{j}, {', '.join(params)})")
            lines.extend(_parallel_part(group))
        else:
            lines.append(f"\n@{jit}\ndef part{j}({', '.join(params)}):")
            calls.append(f"part{j}({', '.join(params)})")
            for unit in group:
                lines.extend("    " + line for line in unit[1])
        lines.append("")
    if any("_gemm(" in line for line in lines):
        lines.insert(1, _linked_import(blas, "_gemm", "link_gemm"))
    for leaf, node in sched.late_updates:
        calls.append(f"{names[leaf]}[:] = {_value_name(sched, names, node)}")
    arguments = run_arguments(sched, names, points, parallel)
    # `run` is plain Python: a compiled driver would link every part into itself and have LLVM
    # optimize all of them a second time (a quarter of an MLP step's compile), for a saving of
    # a few microseconds of dispatch per part and step.
    lines.append(f"\n\ndef run({', '.join(arguments)}):")
    lines.extend(f"    {c}" for c in calls or ["pass"])
    return "\n".join(lines) + "\n"


def _linked_import(module, names: str, link: str) -> str:
    """The generated module's import of `names` from `module` (workers.py, blas.py), which
    call external symbols, and the call of `link` that defines those symbols. The comment
    names the file's hash: Numba's cache of the generated module would not notice a change."""
    file = module.__name__.rsplit(".", 1)[1]
    return (f"from {module.__name__} import {names}, {link}  # ({file}.py {module.SOURCE_HASH})"
            f"\n\n{link}()   # (before any part is compiled or loaded)\n")


def _units(sched: Schedule, names, parallel_of: dict[int, bool], points: bool) -> list[tuple]:
    """(arguments, body lines, parallel) of every kernel, in order."""
    units = []
    for k in sched.kernels:
        parallel = parallel_of[k.index]
        header = [f"# kernel {k.index}: {_describe(sched, k.nodes)}"]
        if k.kind == "elementwise":
            params, body = kernels.elementwise_body(
                k, sched, names.__getitem__, size="n" if points else None, parallel=parallel)
            body = _blocks(body) if parallel else body
            if parallel and kernels.reduces_across_rows(k):   # into the scratch, then a join
                header.append(f"scratch = s{k.index}")
                params = [*params, "nt", f"s{k.index}"]
                units.append((params, header + body, True))
                units.append((params, [f"# kernel {k.index}, its chunks combined",
                                       *header[1:], *kernels.elementwise_join(
                                           k, sched, names.__getitem__)], False))
                continue
            units.append((["n", *params] if points else params, header + body, parallel))
            continue
        node, = k.nodes
        args = [(names.get(a.base, "_"), a) for a in sched.reads(node)]
        params = [*dict.fromkeys(nm for nm, a in args if not a.literal), names[node]]
        lowering = kernels.cpu_kernels[k.kind]
        if parallel:
            body = _blocks(lowering.parallel(node, args, names[node]))
            params.append("nt")
        else:
            body = lowering.emit(node, args, names[node])
        if _scratch_elements(sched, k, parallel, 1) is not None:
            params.append(f"s{k.index}")
            header.append(f"scratch = s{k.index}")
        units.append((params, header + body, parallel))
        join = lowering.join(node, args, names[node]) if parallel and lowering.join else []
        if join:
            units.append((params, [f"# kernel {k.index}, its chunks summed", *header[1:],
                                   *join], False))
    return units


def _scratch_elements(sched: Schedule, k, parallel: bool, threads: int) -> int | None:
    """Elements of working memory kernel `k` asks for (None: none): in its parallel form, its
    scratch per chunk for `threads` chunks (a fused loop that reduces across rows: its chunks'
    partial results)."""
    if k.kind == "elementwise":
        return kernels.reduction_scratch(k) * threads \
            if parallel and kernels.reduces_across_rows(k) else None
    lowering = kernels.cpu_kernels[k.kind]
    node = k.nodes[0]
    if not parallel:
        return None if lowering.scratch is None else lowering.scratch(node)
    per = lowering.chunk_scratch(node, sched.reads(node)) if lowering.chunk_scratch else 0
    return per * threads if per else None


_PRANGE = re.compile(r"^(\s*)for (\w+) in prange\((.*)\):$")


def _blocks(lines: list[str]) -> list[str]:
    """A parallel kernel's lines with its `prange(count)` loop cut to block `me` of `workers`:
    contiguous blocks (a chunk or element never straddles two), whichever thread runs them."""
    out = []
    for line in lines:
        m = _PRANGE.match(line)
        if m:
            pad, var, count = m.groups()
            out.extend(pad + part for part in kernels.span(
                var, f"me * ({count}) // workers", f"(me + 1) * ({count}) // workers"))
        else:
            out.append(line)
    return out


def _groups(units: list[tuple], chunk: int) -> list[list[tuple]]:
    """Consecutive units, at most `chunk` to a group (one compiled function)."""
    return [units[i:i + chunk] for i in range(0, len(units), chunk)]


def _parallel_part(group: list[tuple]) -> list[str]:
    """The body of a part that has a parallel unit: every block runs the part; a parallel unit
    does its block's share, a serial one runs on block 0 only, and between two units every
    block waits for all (`_barrier`: a unit may read what any block of the one before wrote).
    A barrier costs a few microseconds where handing a part to the threads (`each`) cost tens."""
    lines = []
    for step, unit in enumerate(group):
        if step:
            lines.append(f"    _barrier(started, me, workers, {step})")
        if unit[2]:
            lines.extend("    " + line for line in unit[1])
        else:
            lines.append("    if me == 0:")
            lines.extend("        " + line for line in unit[1])
    lines.append("    _after_block(started, me)")
    return lines


def _value_name(sched: Schedule, names, node: Node) -> str:
    a = sched.access(node)
    if a.literal:
        return templates.lit(a.base.attrs["value"])
    return names[a.base]


def run_arguments(sched: Schedule, names, points: bool,
                  parallel_of: dict[int, bool] | None = None) -> list[str]:
    args = ["n"] if points else []
    args += ["each", "nt"] if parallel_of and any(parallel_of.values()) else []
    args += list(graph_sizes(sched.order))
    args += [names[n] for n in sched.leaves]
    args += [names[n] for n in sched.constants]
    args += [names[n] for n in sched.buffers()]
    args += [name for name, _ in scratch(sched, parallel_of)]
    return args


def scratch(sched: Schedule, parallel_of: dict[int, bool] | None = None,
            threads: int = 1) -> list[tuple[str, int]]:
    """(name, elements) of the working memory each one-op kernel asks for (a parallel kernel:
    its scratch per chunk, for `threads` chunks), and each parallel kernel that folds a
    reduction (its chunks' partial results)."""
    found = []
    for k in sched.kernels:
        size = _scratch_elements(sched, k, bool(parallel_of and parallel_of[k.index]), threads)
        if size is not None:
            found.append((f"s{k.index}", size))
    return found


class CompiledGraph:
    """A graph compiled for the CPU: `f(feeds)` or `f(x=..., w=...)` returns the values of the
    outputs, in order (Python floats for float64 scalars, arrays otherwise).

    Feeds map leaves (nodes or names) to values. Leaves in `updates` get their new value written
    into the array passed in, when it is C-contiguous and of the compiled dtype; the outputs list
    carries that same array. Other array outputs are copies, safe to keep.
    """

    device = "cpu"

    def __init__(self, sched: Schedule, dtype: str, threads: int = 1, points: bool = False,
                 parallel_min: int | None = None, guard: bool = True,
                 plan: frozenset[int] | None = None):
        self.schedule = sched
        self.dtype = np.dtype(dtype)
        self.points = points
        self.threads = threads
        parallel_of = _parallel_units(sched, threads, points, parallel_min, plan)
        self.parallel = any(parallel_of.values())
        # the kernels split into chunks: `compile(..., like=self)` splits the same ones (and
        # `generate` takes them from here instead of choosing them a second time)
        self.plan = frozenset(i for i, split in parallel_of.items() if split)
        self.source = generate(sched, self.dtype.name, threads, points,
                               parallel_min=parallel_min, plan=self.plan)
        self._chunks = threads   # `nt` of the generated code
        self.guard = ThreadGuard(threads) if self.parallel and guard else None
        self._names = buffer_names(sched)
        self._sizes = tuple(graph_sizes(sched.order).values())
        self._leaves = sched.leaves
        self._constants = [np.ascontiguousarray(n.attrs["value"], self.dtype).reshape(-1)
                           for n in sched.constants]
        self._buffers = [] if points else [np.empty(n.size, self.dtype) for n in sched.buffers()]
        self._buffer_of = {n: b for n, b in zip(sched.buffers(), self._buffers)}
        self._buffers += [np.empty(size, self.dtype)
                          for _, size in scratch(sched, parallel_of, threads)]
        self._scalars = {leaf: np.zeros(1, self.dtype) for leaf in self._leaves if leaf.shape == ()}
        self._outputs = [] if points else [self._output_plan(n) for n in sched.outputs]
        start = time.perf_counter()
        self._module = self._load_and_compile()
        self.compile_seconds = time.perf_counter() - start
        if self.parallel:   # start the threads now, not in the first (timed) step
            workers.pool().warm(threads)

    # -- building -------------------------------------------------------------------------------
    def _compile_parts(self, module) -> None:
        """Compile (or load from Numba's cache) every part for this graph's argument types: sizes
        (`d_...`, and `n` at points) are integers, everything else a flat array."""
        from numba import typeof

        array, integer = typeof(np.empty(1, self.dtype)), typeof(1)
        flags = typeof(np.zeros(1, np.int64))
        jobs = []
        for name, part in vars(module).items():
            if name.startswith("part"):
                code = part.py_func.__code__
                params = code.co_varnames[:code.co_argcount]
                jobs.append((part, tuple(integer if p in ("n", "nt", "me", "workers")
                                         or p.startswith("d_")
                                         else flags if p == "started" else array
                                         for p in params)))
        # a module Numba has compiled before is loaded from its cache here; otherwise its parts
        # are compiled by as many processes as this graph may use threads (compile_pool.py)
        processes = 1 if cache.is_compiled(self.source) else self.threads
        self.compile_processes = compile_pool.compile_all(jobs, processes)

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
        args = (*self._sizes, *values.values(), *self._constants, *self._buffers)
        if not self.parallel:
            self._run(*args)
        elif self.guard is not None:
            self.guard.call(self._run_on, args)
        else:
            self._run_on(self.threads, args)
        return [self._output(plan, values, feeds) for plan in self._outputs]

    def _run_on(self, threads: int, args: tuple) -> None:
        """The parallel module's `run` with its blocks on `threads` threads."""
        # (the pool is looked up per call: a forked child gets a pool of its own, workers.py)
        self._run(functools.partial(workers.pool().each, threads), self._chunks, *args)

    def _output_plan(self, node: Node) -> tuple:
        """Where output `node`'s value is found after a call (worked out once, not per call):
        (kind, what, shape as plain ints)."""
        sched = self.schedule
        a = sched.access(node)
        base = a.base
        shape = tuple(int(d) for d in node.shape)
        if a.literal:
            return "array", np.full(1, base.attrs["value"], self.dtype), shape
        if base in sched.inplace:
            return "updated", sched.inplace[base], shape
        if base in self._buffer_of:
            return "array", self._buffer_of[base], shape
        if base.op == "const":
            return "array", self._constants[sched.constants.index(base)], shape
        return "leaf", base, shape

    def _output(self, plan: tuple, values, feeds):
        kind, what, shape = plan
        if kind == "updated":
            flat = values[what]
            raw = lookup(what, feeds)
            # the caller's own array, updated in place (`_flat` made no copy of it; a scalar
            # went through its slot, `_scalars`)
            if shape != () and isinstance(raw, np.ndarray) and raw.dtype == self.dtype and \
                    raw.shape == shape and raw.flags.c_contiguous:
                return raw
            return flat.reshape(shape)
        flat = what if kind == "array" else values[what]
        if shape == ():
            return float(flat[0]) if self.dtype == np.float64 else flat.reshape(()).copy()
        return flat.reshape(shape).copy()

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


class ThreadGuard:
    """Runs a parallel step with the faster of `threads` and one thread, by measurement: the
    first calls try the two settings, `PROBE` timed calls each after one warm-up call each, and
    the medians decide the calls until the next probe. Probes repeat after `EVERY` seconds, the
    wait doubling (up to `LONGEST`) while the answer stays the same, and a probe stops at the
    first call at `threads` that takes twice the one-thread median (a busy machine: another
    process on the other cores made such calls 8x slower). The chunks of the work are fixed by
    `threads` (see kernels.py), so which setting runs never changes a result."""

    PROBE = 3       # timed calls at each setting per probe (after one warm-up call)
    EVERY = 2.0     # seconds to the second probe
    LONGEST = 60.0  # seconds between probes at most

    def __init__(self, threads: int):
        self.most = max(1, threads)
        self.active = self.most
        self.choices = [self.most, 1] if self.most > 1 else [1]
        self.history: list[tuple[int, float, float]] = []   # (picked, seconds at most, at 1)
        self._times: dict[int, list[float]] = {c: [] for c in self.choices}
        self._calls = 0
        self._wait = self.EVERY
        self._next = 0.0
        self._probing = len(self.choices) > 1

    def call(self, fn, *args) -> None:
        """`fn(threads, *args)` with the number of threads this call gets."""
        if not self._probing:
            fn(self.active, *args)
            if len(self.choices) > 1 and time.perf_counter() >= self._next:
                self._probing, self._calls = True, 0
                self._times = {c: [] for c in self.choices}
            return
        # one-thread calls first: their median is what a slow call at `most` is held against
        phase = self._calls
        n = 1 if phase <= self.PROBE else self.most
        start = time.perf_counter()
        fn(n, *args)
        elapsed = time.perf_counter() - start
        self._calls += 1
        warm_up = phase in (0, self.PROBE + 1)   # the first call at each setting: not counted
        if not warm_up:
            self._times[n].append(elapsed)
        ones = self._times[1]
        if n == self.most and not warm_up and len(ones) >= self.PROBE and \
                elapsed > 2 * statistics.median(ones):
            self._decide(1, elapsed, statistics.median(ones))
        elif all(len(t) >= self.PROBE for t in self._times.values()):
            medians = {c: statistics.median(t) for c, t in self._times.items()}
            self._decide(min(self.choices, key=lambda c: (medians[c], -c)),
                         medians[self.most], medians[1])

    def _decide(self, picked: int, at_most: float, at_one: float) -> None:
        same = bool(self.history) and self.history[-1][0] == picked
        self._wait = min(self._wait * 2, self.LONGEST) if same else self.EVERY
        self.active = picked
        self.history.append((picked, at_most, at_one))
        self._probing = False
        self._next = time.perf_counter() + self._wait


def compile_cpu(outputs, updates=None, dtype: str | None = None, threads: int = 1,
                points: bool = False, parallel_min: int | None = None,
                guard: bool = True, plan: frozenset[int] | None = None) -> CompiledGraph:
    """Schedule, generate and compile (or load from the cache) a graph for the CPU. `threads`:
    see the module docstring; `parallel_min` lowers the parallel thresholds (tests); `guard`
    False runs every call with `threads` active threads (no probing); `plan`: see
    `generate`."""
    sched = cpu_schedule(outputs, updates)
    if points:
        bad = sorted({n.op for n in sched.order if n.shape != ()})
        if bad:
            raise GradvizError("evaluating at many points needs a scalar graph; these ops have "
                               f"tensor values: {', '.join(bad)}")
        if sched.constants:
            raise GradvizError("evaluating at many points needs a scalar graph")
    dtype = pick_dtype(sched, dtype)
    return CompiledGraph(sched, dtype, threads, points, parallel_min, guard, plan)


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
