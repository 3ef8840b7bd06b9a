"""CUDA kernel templates: the one-op kernels (matmul, reductions, convolution, pooling) and the
launch geometry, as Python source for `numba.cuda.jit`. The elementwise kernels use the shared
`templates.scalar_code` templates (see `cuda/backend.py`).

Every template writes the *body* of a kernel whose parameters are flat arrays; `emit` returns a
`KernelCode` with that body and its launch shape. Conventions the generated code keeps:

- Typed literals only (`F(0.0)`): a float64 literal would turn float32 arithmetic into float64,
  and the simulator would not notice.
- Every `cuda.shared.array` on its own source line: the simulator tells shared arrays apart by
  the line that declares them.
- Grid-stride loops (`for e in range(cuda.grid(1), total, cuda.gridsize(1))`), so the grid size
  is a tuning choice, not a correctness one. Every thread of a block reaches every
  `cuda.syncthreads()`: loops that contain one run the same trip count in all threads.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from gradviz.compiler.cpu.kernels import index, lit
from gradviz.compiler.schedule import Access
from gradviz.core.ir import Node
from gradviz.core.sizes import size_max, size_min


@dataclass(frozen=True)
class Tile:
    """A matmul block computes a `bm` x `bn` tile of the output, stepping through the inner
    dimension `bk` at a time; each of its (bm/tm) x (bn/tn) threads computes tm x tn outputs."""

    bm: int
    bn: int
    bk: int
    tm: int = 1
    tn: int = 1

    @property
    def threads(self) -> tuple[int, int]:
        return self.bn // self.tn, self.bm // self.tm   # (x, y)


@dataclass(frozen=True)
class LaunchConfig:
    """Launch geometry. `threads`: block size of 1-D kernels (`warp` its rounding); `blocks`: the
    most blocks a grid-stride launch uses; `tile`, `big_tile`: matmul tiles (the big one when
    it still gives `big_tile_blocks` blocks); `reduce_threads`: block of a
    shared-memory reduction (a power of two); reductions of at most `serial_reduce` elements run
    one thread per output; a reduction with fewer than `min_blocks` outputs is split across
    blocks (combined with atomics) when each part still has `split_chunk` elements."""

    threads: int = 256
    warp: int = 32
    blocks: int = 4096
    # 16x16 threads with one output each; for large products 64x64 tiles with 4x4 outputs a
    # thread, which read shared memory 4x less often per multiply-add
    tile: Tile = field(default_factory=lambda: Tile(16, 16, 16))
    big_tile: Tile = field(default_factory=lambda: Tile(64, 64, 8, 4, 4))
    big_tile_blocks: int = 132
    reduce_threads: int = 256
    serial_reduce: int = 32
    min_blocks: int = 264
    split_chunk: int = 4096


# The simulator runs every thread as a Python thread (about 1 ms each): few, small blocks.
SIMULATOR = LaunchConfig(threads=4, warp=1, blocks=2, tile=Tile(4, 4, 4),
                         big_tile=Tile(8, 8, 4, 2, 2), big_tile_blocks=2, reduce_threads=4,
                         serial_reduce=16, min_blocks=4, split_chunk=8)


@dataclass
class KernelCode:
    """A kernel body (lines, 4-space indents from column 0), its grid and block, and `fill`: a
    value the output is set to before the launch (split reductions accumulate with atomics)."""

    body: list[str]
    grid: tuple[int, ...]
    block: tuple[int, ...]
    fill: float | None = None


@dataclass(frozen=True)
class CudaKernel:
    """`emit(node, args, out, cfg) -> KernelCode`, `args` the (name, Access) of each operand.
    `accepts(i, access)`: whether operand `i` can be read through `access` as it is."""

    emit: Callable
    accepts: Callable = lambda i, a: a.contiguous and not a.literal


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def _pow2(n: int) -> int:
    p = 1
    while p < n:
        p *= 2
    return p


def launch_1d(total: int, cfg: LaunchConfig) -> tuple[tuple[int], tuple[int]]:
    """(grid, block) of a grid-stride loop over `total` elements (formulas of named sizes)."""
    threads = size_min(cfg.threads, _ceil(size_max(total, 1), cfg.warp) * cfg.warp)
    return (size_min(cfg.blocks, _ceil(size_max(total, 1), threads)),), (threads,)


def unravel(var: str, shape, names) -> list[str]:
    """Lines splitting flat C-order index `var` of `shape` into the loop variables `names`."""
    if len(shape) == 0:
        return []
    if len(shape) == 1:
        return [f"{names[0]} = {var}"]
    lines = [f"q = {var}"]
    for d in range(len(shape) - 1, 0, -1):
        lines.append(f"{names[d]} = q % {shape[d]}")
        lines.append(f"q = q // {shape[d]}")
    lines.append(f"{names[0]} = q")
    return lines


def grid_loop(total: int, var: str = "e") -> str:
    return f"for {var} in range(cuda.grid(1), {total}, cuda.gridsize(1)):"


def _indent(lines, pad: str = "    ") -> list[str]:
    return [pad + line for line in lines]


def _prod(values) -> int:
    n = 1
    for v in values:
        n *= v
    return n


# -- matmul -------------------------------------------------------------------------------------
def _tile_loads(array: str, a: Access, shared: str, rows: int, cols: int, row0: str, col0: str,
                limits: tuple[int, int], nt: int, transposed_store: bool) -> list[str]:
    """Lines loading a rows x cols tile of `array` (through its strides) into `shared`, every
    thread taking elements nt apart; consecutive threads read consecutive addresses when the
    operand is contiguous along either axis. Out-of-range elements load as 0."""
    fast_rows = a.strides[0] == 1 and a.strides[1] != 1
    if fast_rows:
        split = [f"r = l % {rows}", f"c = l // {rows}"]
    else:
        split = [f"r = l // {cols}", f"c = l % {cols}"]
    gr, gc = f"{row0} + r", f"{col0} + c"
    where = f"{shared}[c, r]" if transposed_store else f"{shared}[r, c]"
    return [f"for l in range(t, {rows * cols}, {nt}):",
            *_indent(split),
            f"    gr = {gr}",
            f"    gc = {gc}",
            f"    if gr < {limits[0]} and gc < {limits[1]}:",
            f"        {where} = {array}[{index(a.strides, ['gr', 'gc'])}]",
            "    else:",
            f"        {where} = F(0.0)"]


def _matmul(node: Node, args, out: str, cfg: LaunchConfig) -> KernelCode:
    (na, a), (nb, b) = args
    m, n = node.shape
    k = a.shape[1]
    big = cfg.big_tile
    blocks = _ceil(m, big.bm) * _ceil(n, big.bn)
    tile = big if blocks >= cfg.big_tile_blocks else cfg.tile
    bm, bn, bk, tm, tn = tile.bm, tile.bn, tile.bk, tile.tm, tile.tn
    nx, ny = tile.threads
    acc = {(i, j): f"acc{i}_{j}" for i in range(tm) for j in range(tn)}
    body = [
        f"sa = cuda.shared.array(({bk}, {bm}), FT)",
        f"sb = cuda.shared.array(({bk}, {bn}), FT)",
        "tx = cuda.threadIdx.x",
        "ty = cuda.threadIdx.y",
        f"t = ty * {nx} + tx",
        f"row0 = cuda.blockIdx.y * {bm}",
        f"col0 = cuda.blockIdx.x * {bn}",
        *[f"{v} = F(0.0)" for v in acc.values()],
        f"for kt in range(0, {k}, {bk}):",
        *_indent(_tile_loads(na, a, "sa", bm, bk, "row0", "kt", (m, k), nx * ny, True)),
        *_indent(_tile_loads(nb, b, "sb", bk, bn, "kt", "col0", (k, n), nx * ny, False)),
        "    cuda.syncthreads()",
        f"    for kk in range({bk}):",
        *[f"        ra{i} = sa[kk, ty * {tm} + {i}]" for i in range(tm)],
        *[f"        rb{j} = sb[kk, tx * {tn} + {j}]" for j in range(tn)],
        *[f"        {v} += ra{i} * rb{j}" for (i, j), v in acc.items()],
        "    cuda.syncthreads()",
    ]
    for (i, j), v in acc.items():
        body += [f"r = row0 + ty * {tm} + {i}", f"c = col0 + tx * {tn} + {j}",
                 f"if r < {m} and c < {n}:", f"    {out}[r * {n} + c] = {v}"]
    return KernelCode(body, (_ceil(n, bn), _ceil(m, bm)), (nx, ny))


# -- reductions ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Combine:
    expr: str      # combines {acc} and {x}
    init: str
    atomic: str    # cuda.atomic function for a split reduction


_SUM = _Combine("{acc} + {x}", "F(0.0)", "add")
_MAX = _Combine("({x} if {x} > {acc} else {acc})", "F(-np.inf)", "max")


def reduction(out: str, n_out: int, n_red: int, setup: list[str], value: list[str],
              combine: _Combine, cfg: LaunchConfig) -> KernelCode:
    """A kernel computing `out[o] = combine over r of v(o, r)` for `o < n_out`, `r < n_red`.

    `setup` lines see `o` (and run once per output), `value` lines see `o`, `r` and the setup's
    names, and leave the term in `v`. Short reductions run one thread per output; long ones one
    block per output with a shared-memory tree, split over several blocks that combine with an
    atomic when there are too few outputs to fill the GPU.
    """
    if n_red <= cfg.serial_reduce:
        body = [grid_loop(n_out, "o"), *_indent(setup), f"    acc = {combine.init}",
                f"    for r in range({n_red}):", *_indent(value, " " * 8),
                f"        acc = {combine.expr.format(acc='acc', x='v')}", f"    {out}[o] = acc"]
        grid, block = launch_1d(n_out, cfg)
        return KernelCode(body, grid, block)
    threads = min(cfg.reduce_threads, _pow2(n_red))
    split = 1
    if n_out < cfg.min_blocks:
        split = max(1, min(_ceil(cfg.min_blocks, n_out), n_red // max(cfg.split_chunk, 1)))
    chunk = _ceil(n_red, split)
    body = [f"buf = cuda.shared.array({threads}, FT)",
            "t = cuda.threadIdx.x",
            f"for unit in range(cuda.blockIdx.x, {n_out * split}, cuda.gridDim.x):",
            f"    o = unit // {split}",
            f"    first = (unit % {split}) * {chunk}",
            # not min(): Numba 0.68's built-in CUDA target cannot compile its *args overload
            f"    last = first + {chunk} if first + {chunk} < {n_red} else {n_red}",
            *_indent(setup),
            f"    acc = {combine.init}",
            f"    for r in range(first + t, last, {threads}):",
            *_indent(value, " " * 8),
            f"        acc = {combine.expr.format(acc='acc', x='v')}",
            "    buf[t] = acc",
            "    cuda.syncthreads()"]
    width = threads // 2
    while width >= 1:
        body += [f"    if t < {width}:",
                 f"        buf[t] = {combine.expr.format(acc='buf[t]', x=f'buf[t + {width}]')}",
                 "    cuda.syncthreads()"]
        width //= 2
    body.append("    if t == 0:")
    if split > 1:
        body.append(f"        cuda.atomic.{combine.atomic}({out}, o, buf[0])")
    else:
        body.append(f"        {out}[o] = buf[0]")
    # thread 0 reads buf[0] while the others may start the next unit: they write buf[t > 0]
    # only until the next syncthreads, so no extra barrier is needed
    grid = (size_min(cfg.blocks, n_out * split),)
    fill = None if split == 1 else (0.0 if combine is _SUM else float("-inf"))
    return KernelCode(body, grid, (threads,), fill)


def _reduce(combine: _Combine):
    def emit(node: Node, args, out: str, cfg: LaunchConfig) -> KernelCode:
        (name, a), = args
        axes = set(node.attrs["axes"])
        kept = [d for d in range(len(a.shape)) if d not in axes]
        red = [d for d in range(len(a.shape)) if d in axes]
        setup = unravel("o", [a.shape[d] for d in kept], [f"i{d}" for d in kept])
        setup.append(f"base = {index([a.strides[d] for d in kept], [f'i{d}' for d in kept])}")
        value = unravel("r", [a.shape[d] for d in red], [f"i{d}" for d in red])
        value.append(f"v = {name}[base + {index([a.strides[d] for d in red], [f'i{d}' for d in red])}]")
        return reduction(out, _prod(a.shape[d] for d in kept), _prod(a.shape[d] for d in red),
                         setup, value, combine, cfg)
    return emit


# -- convolution --------------------------------------------------------------------------------
def _conv_dims(x_shape, w_shape, attrs, out_hw) -> dict:
    n, c, h, w = x_shape
    o, _, kh, kw = w_shape
    (sh, sw), (ph, pw) = attrs["stride"], attrs["padding"]
    oh, ow = out_hw
    return dict(N=n, C=c, H=h, W=w, O=o, KH=kh, KW=kw, SH=sh, SW=sw, PH=ph, PW=pw, OH=oh, OW=ow)


_CONV = """acc = F(0.0)
for c in range({C}):
    for a in range({KH}):
        y = i * {SH} - {PH} + a
        if y >= 0 and y < {H}:
            for b in range({KW}):
                xx = j * {SW} - {PW} + b
                if xx >= 0 and xx < {W}:
                    acc += {x}[((n * {C} + c) * {H} + y) * {W} + xx] * {w}[((oc * {C} + c) * {KH} + a) * {KW} + b]
{out}[e] = acc"""

# the gradient wrt the input, gathered: input pixel (y, xx) met weight tap (a, b) in output
# position (i, j) when y = i*SH - PH + a, so i = (y + PH - a) / SH must be a whole number
_CONV_T = """acc = F(0.0)
for oc in range({O}):
    for a in range({KH}):
        ty = y + {PH} - a
        if ty >= 0 and ty % {SH} == 0 and ty // {SH} < {OH}:
            i = ty // {SH}
            for b in range({KW}):
                tx = xx + {PW} - b
                if tx >= 0 and tx % {SW} == 0 and tx // {SW} < {OW}:
                    acc += {g}[((n * {O} + oc) * {OH} + i) * {OW} + tx // {SW}] * {w}[((oc * {C} + c) * {KH} + a) * {KW} + b]
{out}[e] = acc"""


def _conv2d(node: Node, args, out: str, cfg: LaunchConfig) -> KernelCode:
    (nx, x), (nw, w) = args
    d = _conv_dims(x.shape, w.shape, node.attrs, node.shape[2:])
    total = _prod(node.shape)
    body = [grid_loop(total), *_indent(unravel("e", node.shape, ["n", "oc", "i", "j"])),
            *_indent(_CONV.format(x=nx, w=nw, out=out, **d).splitlines())]
    return KernelCode(body, *launch_1d(total, cfg))


def _conv2d_transpose(node: Node, args, out: str, cfg: LaunchConfig) -> KernelCode:
    (ng, g), (nw, w) = args
    d = _conv_dims(node.shape, w.shape, node.attrs, g.shape[2:])
    total = _prod(node.shape)
    body = [grid_loop(total), *_indent(unravel("e", node.shape, ["n", "c", "y", "xx"])),
            *_indent(_CONV_T.format(g=ng, w=nw, out=out, **d).splitlines())]
    return KernelCode(body, *launch_1d(total, cfg))


def _conv2d_weight_grad(node: Node, args, out: str, cfg: LaunchConfig) -> KernelCode:
    (nx, x), (ng, g) = args
    d = _conv_dims(x.shape, node.shape, node.attrs, g.shape[2:])
    setup = unravel("o", node.shape, ["oc", "c", "a", "b"])
    value = [*unravel("r", (d["N"], d["OH"], d["OW"]), ["n", "i", "j"]),
             "y = i * {SH} - {PH} + a".format(**d),
             "xx = j * {SW} - {PW} + b".format(**d),
             "v = F(0.0)",
             "if y >= 0 and y < {H} and xx >= 0 and xx < {W}:".format(**d),
             "    v = {x}[((n * {C} + c) * {H} + y) * {W} + xx] * "
             "{g}[((n * {O} + oc) * {OH} + i) * {OW} + j]".format(x=nx, g=ng, **d)]
    return reduction(out, _prod(node.shape), d["N"] * d["OH"] * d["OW"], setup, value, _SUM, cfg)


# -- pooling ------------------------------------------------------------------------------------
def _pool_dims(x_shape, pooled_shape, attrs) -> dict:
    n, c, h, w = x_shape
    (kh, kw), (sh, sw) = attrs["kernel"], attrs["stride"]
    return dict(NC=n * c, H=h, W=w, KH=kh, KW=kw, SH=sh, SW=sw, OH=pooled_shape[2],
                OW=pooled_shape[3])


# the first maximum (row-major, as NumPy's argmax) of window (i, j) of plane p: `best`, `at`
_ARGMAX = """at = p * {H} * {W} + (i * {SH}) * {W} + j * {SW}
best = {x}[at]
for ka in range({KH}):
    for kb in range({KW}):
        k = p * {H} * {W} + (i * {SH} + ka) * {W} + j * {SW} + kb
        if {x}[k] > best:
            best = {x}[k]
            at = k"""

# each window (i, j) that covers input pixel (y, xx) of plane p, with o its flat index
_WINDOWS_OVER = """for a in range({KH}):
    ty = y - a
    if ty >= 0 and ty % {SH} == 0 and ty // {SH} < {OH}:
        i = ty // {SH}
        for b in range({KW}):
            tx = xx - b
            if tx >= 0 and tx % {SW} == 0 and tx // {SW} < {OW}:
                j = tx // {SW}
                o = (p * {OH} + i) * {OW} + j"""


def _per_output(node: Node, d: dict, lines: str, cfg: LaunchConfig) -> KernelCode:
    """One thread per pooled element (plane p, window i, j)."""
    total = _prod(node.shape)
    body = [grid_loop(total), *_indent(unravel("e", (d["NC"], d["OH"], d["OW"]), ["p", "i", "j"])),
            *_indent(lines.splitlines())]
    return KernelCode(body, *launch_1d(total, cfg))


def _per_input(node: Node, d: dict, lines: str, cfg: LaunchConfig) -> KernelCode:
    """One thread per input pixel (plane p, row y, column xx)."""
    total = _prod(node.shape)
    body = [grid_loop(total), *_indent(unravel("e", (d["NC"], d["H"], d["W"]), ["p", "y", "xx"])),
            *_indent(lines.splitlines())]
    return KernelCode(body, *launch_1d(total, cfg))


def _max_pool2d(node: Node, args, out: str, cfg: LaunchConfig) -> KernelCode:
    (nx, x), = args
    d = _pool_dims(x.shape, node.shape, node.attrs)
    return _per_output(node, d, _ARGMAX.format(x=nx, **d) + f"\n{out}[e] = best", cfg)


def _max_pool2d_gather(node: Node, args, out: str, cfg: LaunchConfig) -> KernelCode:
    (nx, x), (nh, h) = args
    d = _pool_dims(x.shape, node.shape, node.attrs)
    return _per_output(node, d, _ARGMAX.format(x=nx, **d) + f"\n{out}[e] = {nh}[at]", cfg)


def _max_pool2d_grad(node: Node, args, out: str, cfg: LaunchConfig) -> KernelCode:
    # gathered rather than scattered: each input pixel sums the gradients of the windows whose
    # first maximum it is, so no atomics and no zero fill
    (nx, x), (ng, g) = args
    d = _pool_dims(x.shape, g.shape, node.attrs)
    argmax = _ARGMAX.format(x=nx, **d).splitlines()
    lines = "\n".join(["total = F(0.0)", *_WINDOWS_OVER.format(**d).splitlines(),
                       *_indent(argmax, " " * 16),
                       "                if at == e:",
                       f"                    total += {ng}[o]",
                       f"{out}[e] = total"])
    return _per_input(node, d, lines, cfg)


def _avg_pool2d(node: Node, args, out: str, cfg: LaunchConfig) -> KernelCode:
    (nx, x), = args
    d = _pool_dims(x.shape, node.shape, node.attrs)
    lines = ("acc = F(0.0)\nfor a in range({KH}):\n    for b in range({KW}):\n"
             "        acc += {x}[p * {H} * {W} + (i * {SH} + a) * {W} + j * {SW} + b]\n"
             "{out}[e] = acc / {n}").format(x=nx, out=out, n=lit(d["KH"] * d["KW"]), **d)
    return _per_output(node, d, lines, cfg)


def _avg_pool2d_transpose(node: Node, args, out: str, cfg: LaunchConfig) -> KernelCode:
    (ng, g), = args
    d = _pool_dims(node.shape, g.shape, node.attrs)
    lines = "\n".join(["total = F(0.0)", *_WINDOWS_OVER.format(**d).splitlines(),
                       f"                total += {ng}[o]",
                       f"{out}[e] = total / {lit(d['KH'] * d['KW'])}"])
    return _per_input(node, d, lines, cfg)


def _any_layout(i: int, a: Access) -> bool:
    return not a.literal


cuda_kernels: dict[str, CudaKernel] = {
    # the tiles are loaded through the operand's strides, so transposes and broadcasts are free
    "matmul": CudaKernel(_matmul, _any_layout),
    "sum": CudaKernel(_reduce(_SUM), _any_layout),
    "amax": CudaKernel(_reduce(_MAX), _any_layout),
    "conv2d": CudaKernel(_conv2d),
    "conv2d_transpose": CudaKernel(_conv2d_transpose),
    "conv2d_weight_grad": CudaKernel(_conv2d_weight_grad),
    "max_pool2d": CudaKernel(_max_pool2d),
    "max_pool2d_grad": CudaKernel(_max_pool2d_grad),
    "max_pool2d_gather": CudaKernel(_max_pool2d_gather),
    "avg_pool2d": CudaKernel(_avg_pool2d),
    "avg_pool2d_transpose": CudaKernel(_avg_pool2d_transpose),
}
