"""The Numba CUDA backend: the CPU compiler's kernel partition, as CUDA kernels.

The schedule (`schedule.py`) and the elementwise templates (`templates.scalar_code`) are the CPU
backend's; what differs is the kernel templates (`cuda/kernels.py`) and where the memory lives.
One generated module per graph holds one `@cuda.jit` kernel per kernel of the schedule (compiled
eagerly, with explicit signatures, and cached on disk) and `run(...)`, a plain Python function
that launches them in order.

Memory: buffers and tensor constants are allocated on the device once, when the graph is
compiled. A leaf fed a device array is used in place; a leaf fed a host array is copied into a
device array of its own, allocated once (scalars are copied only when their value changed).
Updated leaves (a `TrainStep`'s parameters and optimizer state) are outputs *as device arrays*:
feed them back and a training run moves only its batches in and its metrics out. Every other
output is copied to the host. `np.asarray(device_array)` copies one to the host.

Without a GPU, `NUMBA_ENABLE_CUDASIM=1` (set before Numba is first imported) runs the same kernels
on Numba's CUDA simulator, one Python thread per GPU thread; the launch geometry then shrinks
(`kernels.SIMULATOR`), the kernels' text does not otherwise change.
"""
from __future__ import annotations

import time
from typing import Mapping

import numpy as np

from gradviz.compiler import cache, templates
from gradviz.compiler.cuda.kernels import (SIMULATOR, KernelCode, LaunchConfig, cuda_kernels,
                                           grid_loop, launch_1d, unravel)
from gradviz.compiler.schedule import Kernel, Schedule, buffer_names, schedule
from gradviz.errors import GradvizError, ShapeError
from gradviz.core.interpret import leaf_array, lookup
from gradviz.core.ir import Node
from gradviz.core.sizes import as_code, graph_sizes

PRELUDE = '''"""gradviz generated CUDA kernels ({what}). Do not edit: the file name is its content's hash."""
import warnings
from math import cos, exp, expm1, log, log1p, sin, sqrt

import numba
import numpy as np
from numba import cuda

F = np.{dtype}
FT = numba.{dtype}
'''

FILL = '''
@cuda.jit("void({dtype}[::1], {dtype})", cache=True)
def fill_(out, value):
    for e in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        out[e] = value
'''

NO_GPU = ("--device cuda: no usable CUDA GPU here ({why}); install gradviz[cuda12] or "
          "gradviz[cuda13] to match the driver, or set NUMBA_ENABLE_CUDASIM=1 before starting "
          "to run on Numba's CUDA simulator (slow: tiny sizes only)")


def simulator_enabled() -> bool:
    """True when Numba's CUDA simulator stands in for a GPU (`NUMBA_ENABLE_CUDASIM=1`)."""
    from numba import config

    return bool(getattr(config, "ENABLE_CUDASIM", 0))


def require_device() -> None:
    """Raise GradvizError (one line) unless a CUDA GPU, or the simulator, can run kernels."""
    try:
        from numba import cuda

        if cuda.is_available():
            return
        why = "numba.cuda found no GPU or no driver"
    except Exception as exc:  # noqa: BLE001 - any CUDA setup problem means "no GPU here"
        why = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
    raise GradvizError(NO_GPU.format(why=why))


def launch_config() -> LaunchConfig:
    """The launch geometry for the current device (the simulator's is tiny)."""
    if simulator_enabled():
        return SIMULATOR
    from numba import cuda

    sms = cuda.get_current_device().MULTIPROCESSOR_COUNT
    return LaunchConfig(min_blocks=2 * sms, blocks=32 * sms, big_tile_blocks=sms)


def cuda_schedule(outputs, updates=None) -> Schedule:
    """The schedule of a graph with the CUDA lowerings."""
    return schedule(outputs, updates, elementwise=templates.scalar_code,
                    kernels={op: k.accepts for op, k in cuda_kernels.items()}, backend="CUDA",
                    # a sum folded into a grid-stride loop would need an atomic per element
                    fuse_reductions=False)


# -- elementwise kernels ------------------------------------------------------------------------
def elementwise_kernel(k: Kernel, sched: Schedule, names: dict, cfg: LaunchConfig):
    """(parameters, KernelCode) of fused elementwise kernel `k`: one grid-stride loop; per element
    the loads, then the scalar expressions (`templates.scalar_code`), then the stores, so a value
    may be written over the array it was read from (in-place updates)."""
    members = set(k.nodes)
    params: list[str] = []
    loads: dict[tuple, tuple[str, object]] = {}
    temps: dict[Node, str] = {}
    plans = []
    for node in k.nodes:
        args = []
        for a in sched.reads(node):
            if a.literal:
                args.append(templates.lit(a.base.attrs["value"]))
            elif a.base in members and a.contiguous:
                args.append(temps[a.base])
            else:
                key = (a.base, a.strides)
                if key not in loads:
                    loads[key] = (f"l{len(loads)}", a)
                    if names[a.base] not in params:
                        params.append(names[a.base])
                args.append(loads[key][0])
        temps[node] = f"t{sched.ids[node]}"
        plans.append((node, args))
    for node in k.stores:
        if names[node] not in params:
            params.append(names[node])
    loops = [f"i{d}" for d in range(len(k.shape))]
    strided = any(not (a.contiguous or a.uniform) for _, a in loads.values())
    body = [f"{tmp} = {names[a.base]}[0]" for tmp, a in loads.values() if a.uniform]
    body.append(grid_loop(k.size, "i"))
    if strided:
        body += ["    " + line for line in unravel("i", k.shape, loops)]
    for tmp, a in loads.values():
        if not a.uniform:
            where = "i" if a.contiguous else templates.index(a.strides, loops)
            body.append(f"    {tmp} = {names[a.base]}[{where}]")
    for node, args in plans:
        value = args[0] if node in sched.copies else templates.expression(node, args)
        body.append(f"    {temps[node]} = {value}")
    for node in k.stores:
        body.append(f"    {names[node]}[i] = {temps[node]}")
    return params, KernelCode(body, *launch_1d(k.size, cfg))


def _describe(sched: Schedule, nodes) -> str:
    return ", ".join(f"%{sched.ids[n]} {n.op}" + (f" {n.name!r}" if n.name else "")
                     for n in nodes)


def _launch(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(f"{d}" for d in shape) + ",)"   # f-string: a size's formula


#: Where the launches begin in a generated module (the kernels come before).
LAUNCHES = "\n# -- launches"


def generate(sched: Schedule, dtype: str, cfg: LaunchConfig) -> str:
    """The module source for `sched`: one kernel per kernel of the schedule, and `run(...)`.
    Named sizes (core/sizes.py) are written as names: kernels take them as their first
    arguments and the launch geometry is computed from them, once per set of values, so one
    module serves every size of the same structure (while the geometry's choices, such as the
    matmul tile or a split reduction, stay the same)."""
    with as_code():
        return _generate(sched, dtype, cfg)


def _generate(sched: Schedule, dtype: str, cfg: LaunchConfig) -> str:
    names = buffer_names(sched)
    dims = list(graph_sizes(sched.order))
    lines = [PRELUDE.format(what="simulator" if cfg is SIMULATOR else "cuda", dtype=dtype),
             templates.helpers(dtype, "cuda.jit(device=True)")]
    calls: list[str] = []
    launches: list[str] = []   # configured once per set of sizes: launching is then a plain call

    def fill_call(array: str, size: int, value: float) -> str:
        grid, block = launch_1d(size, cfg)
        launches.append(f"fill_[{_launch(grid)}, {_launch(block)}]")
        return f"launch[{len(launches) - 1}]({array}, {templates.lit(value)})"

    for k in sched.kernels:
        if k.kind == "elementwise":
            params, code = elementwise_kernel(k, sched, names, cfg)
        else:
            node, = k.nodes
            args = [(names.get(a.base, "_"), a) for a in sched.reads(node)]
            params = [*dict.fromkeys(nm for nm, a in args if not a.literal), names[node]]
            code = cuda_kernels[k.kind].emit(node, args, names[node], cfg)
        if code.fill is not None:
            calls.append(fill_call(names[k.nodes[0]], k.size, code.fill))
        params = [*dims, *params]
        signature = ", ".join("int64" if p in dims else f"{dtype}[::1]" for p in params)
        lines.append(f"\n# kernel {k.index}: {_describe(sched, k.nodes)}")
        lines.append(f'@cuda.jit("void({signature})", cache=True)')
        lines.append(f"def k{k.index}({', '.join(params)}):")
        lines.extend("    " + line for line in code.body)
        launches.append(f"k{k.index}[{_launch(code.grid)}, {_launch(code.block)}]")
        calls.append(f"launch[{len(launches) - 1}]({', '.join(params)})")
    for leaf, node in sched.late_updates:
        a = sched.access(node)
        if a.literal:
            calls.append(fill_call(names[leaf], max(leaf.size, 1), a.base.attrs["value"]))
        else:  # a device-to-device copy (the scheduler gives updates contiguous values)
            calls.append(f"{names[leaf]}.copy_to_device({names[a.base]})")
    if any(launch.startswith("fill_") for launch in launches):
        lines.append(FILL.format(dtype=dtype))
    sizes = ", ".join(dims)
    lines.append(LAUNCHES)
    lines.append(f"def _configure({sizes}):")
    # Numba warns about grids under 128 blocks when a launch is configured; a step's small
    # kernels have small grids on purpose
    lines.append("    with warnings.catch_warnings():\n        warnings.simplefilter(\"ignore\")")
    lines.append("        return (" + "".join(f"\n            {x}," for x in launches) + ")")
    lines.append("\n\n_configured = {}")
    arguments = [*dims, *(names[n] for n in (*sched.leaves, *sched.constants, *sched.buffers()))]
    lines.append(f"\n\ndef run({', '.join(arguments)}):")
    lines.append(f"    key = ({sizes}{',' if dims else ''})")
    lines.append("    launch = _configured.get(key)")
    lines.append("    if launch is None:")
    lines.append("        launch = _configured[key] = _configure(*key)")
    lines.extend(f"    {c}" for c in calls or ["pass"])
    return "\n".join(lines) + "\n"


# -- the compiled graph -------------------------------------------------------------------------
def _on_device(value) -> bool:
    return not isinstance(value, np.ndarray) and (
        hasattr(value, "copy_to_host") or hasattr(value, "__cuda_array_interface__"))


class CudaCompiledGraph:
    """A graph compiled for a CUDA GPU (or the simulator): `f(feeds)` or `f(x=..., w=...)`
    returns the values of the outputs, in order.

    Feeds map leaves (nodes or names) to host arrays, numbers or device arrays. Outputs are host
    values (Python floats for float64 scalars, arrays otherwise), except the new values of
    updated leaves: those are the device arrays the leaves live in (the array fed, when it was a
    device array), updated in place by every call. Feed them back to keep them on the device.
    """

    device = "cuda"

    def __init__(self, sched: Schedule, dtype: str, cfg: LaunchConfig | None = None):
        from numba import cuda

        self._cuda = cuda
        self.schedule = sched
        self.dtype = np.dtype(dtype)
        self.config = cfg or launch_config()
        self.source = generate(sched, self.dtype.name, self.config)
        self._sizes = tuple(graph_sizes(sched.order).values())
        self._leaves = sched.leaves
        self._constants = [cuda.to_device(np.ascontiguousarray(n.attrs["value"], self.dtype)
                                          .reshape(-1)) for n in sched.constants]
        self._buffer_of = {n: cuda.device_array(n.size, self.dtype) for n in sched.buffers()}
        self._slots: dict[Node, object] = {}      # device copies of host-fed leaves
        self._last_scalar: dict[Node, float] = {}
        self._updated = {new: leaf for leaf, new in sched.updates.items()}
        start = time.perf_counter()
        self._module = cache.load(self.source)    # compiles every kernel (explicit signatures)
        self.compile_seconds = time.perf_counter() - start
        self._run = self._module.run

    def _device_value(self, leaf: Node, raw):
        """The flat device array holding `raw` for `leaf`."""
        if _on_device(raw):
            arr = raw if hasattr(raw, "copy_to_host") else self._cuda.as_cuda_array(raw)
            if np.dtype(arr.dtype) != self.dtype:
                raise ShapeError(f"{leaf.name!r} is a {arr.dtype} device array; this graph was "
                                 f"compiled for {self.dtype}")
            if tuple(arr.shape) != leaf.shape and not (leaf.shape == () and arr.size == 1):
                raise ShapeError(f"{leaf.name!r} has shape {leaf.shape} but got a device array "
                                 f"of shape {tuple(arr.shape)}")
            if arr.ndim != 1 or arr.shape[0] != max(leaf.size, 1):
                if not arr.is_c_contiguous():
                    raise ShapeError(f"device array for {leaf.name!r} is not C-contiguous")
                arr = arr.reshape(max(leaf.size, 1))
            return arr
        host = leaf_array(leaf, raw, self.dtype)
        slot = self._slots.get(leaf)
        if slot is None:
            slot = self._slots[leaf] = self._cuda.device_array(max(leaf.size, 1), self.dtype)
        if leaf.shape == ():
            value = float(host)
            if self._last_scalar.get(leaf) == value and leaf not in self.schedule.updates:
                return slot   # scalars such as the learning rate rarely change
            self._last_scalar[leaf] = value
        slot.copy_to_device(np.ascontiguousarray(host).reshape(-1))
        return slot

    def __call__(self, feeds: Mapping | None = None, **named) -> list:
        feeds = dict(feeds or {}, **named) if named else (feeds or {})
        values = {leaf: self._device_value(leaf, lookup(leaf, feeds))
                  for leaf in self._leaves}
        self._run(*self._sizes, *values.values(), *self._constants,
                  *self._buffer_of.values())
        return [self._output(node, values) for node in self.schedule.outputs]

    def _output(self, node: Node, values: dict):
        sched = self.schedule
        if node in self._updated:
            leaf = self._updated[node]
            arr = values[leaf]
            return arr.reshape(node.shape)
        a = sched.access(node)
        base = a.base
        if a.literal:
            flat = np.full(1, base.attrs["value"], self.dtype)
        else:
            if base in sched.inplace:
                dev = values[sched.inplace[base]]
            elif base in self._buffer_of:
                dev = self._buffer_of[base]
            elif base.op == "const":
                dev = self._constants[sched.constants.index(base)]
            else:
                dev = values[base]
            flat = dev.copy_to_host()
        if node.shape == ():
            return float(flat[0]) if self.dtype == np.float64 else flat[:1].reshape(())
        return flat.reshape(node.shape)


def compile_cuda(outputs, updates=None, dtype: str | None = None,
                 config: LaunchConfig | None = None) -> CudaCompiledGraph:
    """Schedule, generate and compile (or load from the cache) a graph for the GPU. Raises
    GradvizError when there is no GPU (and no simulator), or for ops with no CUDA lowering."""
    require_device()
    sched = cuda_schedule(outputs, updates)
    if dtype is None:
        dtypes = {n.dtype for n in sched.order}
        if len(dtypes) > 1:
            raise GradvizError("the graph mixes float32 and float64; pass dtype= to compile it")
        dtype = dtypes.pop() if dtypes else "float32"
    if np.dtype(dtype).name not in ("float32", "float64"):
        raise GradvizError(f"dtype must be float32 or float64, not {dtype}")
    return CudaCompiledGraph(sched, np.dtype(dtype).name, config)


__all__ = ["CudaCompiledGraph", "compile_cuda", "cuda_schedule", "generate", "launch_config",
           "require_device", "simulator_enabled"]
