"""CPU kernels for a schedule, from tables keyed by primitive.

- `cpu_kernels[op]`: a one-op kernel (matmul, reductions, convolution, pooling) as a
  `CpuKernel(accepts, emit)`; `accepts(i, access)` says which operand layouts it can index.
- `elementwise_body`: a fused run of elementwise ops, from `templates.scalar_code`.

Parallel module (threads > 1): a kernel with a `parallel` emitter and enough `work` is written
with its outer loop as `prange(...)` over `nt` chunks (`nt`, the number of chunks, is an argument
of the generated code and the configured thread count); the backend turns that loop into block
`me` of `workers` and the worker pool runs the blocks (workers.py). Each chunk is a fixed slice
of the work, so the result depends on `nt` only, never on how many threads ran it: rows of a
matrix product (one single-threaded BLAS call per chunk), samples of a convolution (each chunk
with its own scratch), planes of a pool, blocks of a fused loop (a folded reduction over the
outer axis: each chunk into its own scratch, then `elementwise_join`). Nothing outside that
loop may write memory, since every block runs it: what must follow all chunks (summing the
chunks' partial sums) is the kernel's `join`.

Generated code passes every array as an argument (buffers are flat, allocated once by the
caller), writes typed literals as `F(...)` (a float64 literal would promote float32 math), and
returns nothing: results are in the buffers.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from gradviz.compiler.schedule import Access, Kernel, Schedule
from gradviz.compiler.templates import expression, index, lit, load
from gradviz.core.ir import Node
from gradviz.core.sizes import Size


# -- one-op kernels -----------------------------------------------------------------------------
@dataclass(frozen=True)
class CpuKernel:
    """`emit(node, args, out) -> body lines`, with `args` the (name, Access) of each operand and
    `out` the output buffer's name (all flat arrays). `accepts(i, access)` says whether operand `i` can be read
    through `access` as it is (else it is first copied into a contiguous buffer)."""

    emit: Callable
    accepts: Callable = lambda i, a: a.contiguous and not a.literal
    scratch: Callable | None = None   # node -> elements of working memory (passed as `scratch`)
    # the chunked form for the parallel module: emit(node, args, out) -> lines over `nt` chunks,
    # `work(node)` (compared with the backend's threshold), scratch per chunk
    # (`chunk_scratch(node, accesses)`, 0 for none), and the lines run once after every chunk is
    # done (`join(node, args, out)`, maybe none)
    parallel: Callable | None = None
    work: Callable | None = None
    chunk_scratch: Callable | None = None
    join: Callable | None = None


SHARED_SPLIT_RATIO = 4   # see `splits_shared_axis`


def _stored(name: str, a: Access, first: str = "0") -> tuple:
    """Operand `a` of a product as blas._gemm reads it: (array, offset of row `first` of the
    operand, leading dimension, transposed). A transposed operand is stored as its transpose,
    in which that row is column `first`, starting at element `first`; a contiguous one is
    stored row after row."""
    rows, cols = a.shape
    if a.transposed and not a.contiguous:
        return name, first, rows, 1
    return name, "0" if first == "0" else f"{first} * {cols}", cols, 0


def gemm(m, n, k, a: tuple, b: tuple, c: str, c_at="0", ldc=None) -> str:
    """The call that writes the m x n product of stored operands `a` and `b` (`_stored`
    tuples) into `c` from element `c_at`, rows `ldc` apart (default n): see blas.py."""
    (na, ao, lda, ta), (nb, bo, ldb, tb) = a, b
    return (f"_gemm({ta}, {tb}, {m}, {n}, {k}, {na}, {ao}, {lda}, {nb}, {bo}, {ldb}, {c}, "
            f"{c_at}, {n if ldc is None else ldc})")


def _matmul(node: Node, args, out: str) -> list[str]:
    (na, a), (nb, b) = args
    m, n = node.shape
    return [gemm(m, n, a.shape[1], _stored(na, a), _stored(nb, b), out)]


def _chunk_count(extent, rest) -> str:
    """`nc`: at most `nt` chunks of a product's split axis (`extent` long), each keeping more
    than GEMM_SPLIT_MIN multiply-adds (`rest`: the multiply-adds per unit of that axis)."""
    return f"nc = min(nt, max(1, {extent} // (GEMM_SPLIT_MIN // ({rest}) + 1)))"


def _matmul_parallel(node: Node, args, out: str) -> list[str]:
    """Rows of the product in `nc` chunks, one single-threaded BLAS call each (a block of rows
    of a transposed operand is an offset and a leading dimension, not a copy). `nc` depends on
    `nt` and the sizes, never on how many threads run the blocks, so the bits do not either.
    Against the serial call: every element is the same dot product, but whether BLAS adds it up
    in the same order for a block of rows as for all of them depends on its kernels for the CPU
    and the sizes (OpenBLAS's Haswell kernels round some elements differently at every size
    tried; its SkylakeX kernels at a few)."""
    (na, a), (nb, b) = args
    m, n = node.shape
    k = a.shape[1]
    # Trap: one thread (a busy machine, ThreadGuard) must run the same chunks, not the uncut
    # call: on a Haswell kernel that changed the bits with the number of threads running.
    return [_chunk_count(m, f"{n} * {k}"),
            "for t in prange(nc):",
            f"    lo = t * {m} // nc",
            f"    hi = (t + 1) * {m} // nc",
            "    if hi > lo:",
            "        " + gemm("hi - lo", n, k, _stored(na, a, "lo"), _stored(nb, b), out,
                              f"lo * {n}")]


def _may_split_shared_axis(a: Access, b: Access) -> bool:
    """Whether a product's operands are a weight gradient's, X^T @ dY: X stored transposed and
    dY contiguous, so that blocks of the shared axis are blocks of rows of both."""
    return a.transposed and not a.contiguous and b.contiguous


def splits_shared_axis(node: Node, a: Access, b: Access) -> bool:
    """Whether the parallel product splits its shared axis (a weight gradient, X^T @ dY, whose
    stored X and dY are cut into blocks of contiguous rows) instead of the product's rows. Only
    where that axis (the batch) is long against the product's columns: the join adds `nt`
    partial products (M x N each) on one thread. Measured, the MLP at batch 1024 on two
    threads: 1.72-1.83x over the serial module split along the batch, 1.63-1.68x by rows (and
    on one thread 0.99-1.01x against 0.94-0.95x); at batch 128 with its products split, on one
    thread, 0.88x with the batch split and 1.00x by rows. The generated code makes the same
    test at run time (`_shared_axis_test`), so that the text is the same at every size."""
    return _may_split_shared_axis(a, b) and a.shape[1] >= SHARED_SPLIT_RATIO * node.shape[1]


def _shared_axis_test(node: Node, a: Access) -> str:
    """`splits_shared_axis` as generated code, for a product whose operands may split it."""
    return f"if {a.shape[1]} >= {SHARED_SPLIT_RATIO} * {node.shape[1]}:"


def _matmul_k_parallel(node: Node, args, out: str) -> list[str]:
    """The shared axis in `nt` chunks: chunk t multiplies rows lo:hi of both stored operands
    into its own partial product (the join adds them). Each chunk keeps more than
    GEMM_SPLIT_MIN multiply-adds; the sum over the shared axis is regrouped by chunk (float
    rounding), whichever thread runs a chunk."""
    (na, a), (nb, b) = args
    m, n = node.shape
    k = a.shape[1]
    # rows lo:hi of the stored X (k x m) and of dY (k x n)
    return [_chunk_count(k, f"{m} * {n}"),
            "for t in prange(nc):",
            f"    lo = t * {k} // nc",
            f"    hi = (t + 1) * {k} // nc",
            "    " + gemm(m, n, "hi - lo", (na, f"lo * {m}", m, 1), _stored(nb, b, "lo"),
                          "scratch", f"t * {m} * {n}")]


def _matmul_any_parallel(node: Node, args, out: str) -> list[str]:
    (_, a), (_, b) = args
    if not _may_split_shared_axis(a, b):
        return _matmul_parallel(node, args, out)
    # both forms, chosen at run time: a last, shorter batch runs the full batch's code
    return [_shared_axis_test(node, a),
            *("    " + line for line in _matmul_k_parallel(node, args, out)),
            "else:",
            *("    " + line for line in _matmul_parallel(node, args, out))]


def _matmul_join(node: Node, args, out: str) -> list[str]:
    (_, a), (_, b) = args
    if not _may_split_shared_axis(a, b):
        return []
    m, n = node.shape
    k = a.shape[1]
    return [_shared_axis_test(node, a),
            "    " + _chunk_count(k, f"{m} * {n}"),
            f"    {out}[:] = 0",
            "    for t in range(nc):",
            f"        {out} += scratch[t * {m} * {n}:(t + 1) * {m} * {n}]"]


def _matmul_chunk_scratch(node: Node, accesses) -> int:
    a, b = accesses
    m, n = node.shape
    return m * n if _may_split_shared_axis(a, b) else 0


def _matmul_work(node: Node) -> int:
    (m, n), k = node.shape, node.src[0].shape[1]
    return m * n * k


def _reduce(combine: str, init: str):
    """Loops for a reduction over `axes`: the input's axes in order, the trailing run of reduced
    axes folded into a local accumulator."""
    def emit(node: Node, args, out: str) -> list[str]:
        (name, a), = args
        axes = set(node.attrs["axes"])
        shape = a.shape
        ndim = len(shape)
        suffix = ndim
        while suffix > 0 and suffix - 1 in axes:
            suffix -= 1
        kept = [d for d in range(ndim) if d not in axes]
        out_strides = dict(zip(kept, _strides([shape[d] for d in kept])))
        loops = [f"i{d}" for d in range(ndim)]
        out_index = index([out_strides.get(d, 0) for d in range(suffix)], loops[:suffix])
        lines: list[str] = []
        accumulate_in_out = any(d in axes for d in range(suffix))
        if accumulate_in_out:
            lines.append(f"{out}[:] = {init}")
        pad = ""
        for d in range(suffix):
            lines.append(f"{pad}for i{d} in range({shape[d]}):")
            pad += "    "
        x = load(name, a, loops)
        if suffix == ndim:  # no trailing reduced axes: combine straight into the output
            lines.append(f"{pad}{out}[{out_index}] = {combine.format(acc=f'{out}[{out_index}]', x=x)}")
            return lines
        lines.append(f"{pad}acc = {init}")
        inner = pad
        for d in range(suffix, ndim):
            lines.append(f"{inner}for i{d} in range({shape[d]}):")
            inner += "    "
        lines.append(f"{inner}acc = {combine.format(acc='acc', x=x)}")
        final = combine.format(acc=f"{out}[{out_index}]", x="acc") if accumulate_in_out else "acc"
        lines.append(f"{pad}{out}[{out_index}] = {final}")
        return lines
    return emit


def collapse(shape, stride_lists):
    """Merge neighbouring axes that every stride list walks as one (and drop length-1 axes), so
    loops are fewer and longer: (64, 6, 28, 28) with a per-channel bias becomes (64, 6, 784)."""
    dims = [d for d in range(len(shape)) if shape[d] != 1]
    out_shape = [shape[d] for d in dims[:1]]
    out = [[s[d] for d in dims[:1]] for s in stride_lists]
    for prev, d in zip(dims, dims[1:]):
        if all(s[prev] == s[d] * shape[d] for s in stride_lists):
            out_shape[-1] *= shape[d]
            for merged, s in zip(out, stride_lists):
                merged[-1] = s[d]
        else:
            out_shape.append(shape[d])
            for merged, s in zip(out, stride_lists):
                merged.append(s[d])
    return out_shape, out


def _strides(shape) -> list[int]:
    strides, step = [], 1
    for d in reversed(shape):
        strides.append(step)
        step *= d
    return list(reversed(strides))


def _conv_dims(x_shape, w_shape, attrs, out_hw):
    n, c, h, w = x_shape
    o, _, kh, kw = w_shape
    (sh, sw), (ph, pw) = attrs["stride"], attrs["padding"]
    oh, ow = out_hw
    return dict(N=n, C=c, H=h, W=w, O=o, KH=kh, KW=kw, SH=sh, SW=sw, PH=ph, PW=pw, OH=oh, OW=ow,
                P=oh * ow, K=c * kh * kw)


def _bound(d: dict, keys) -> tuple[list[str], dict]:
    """Image sizes computed once, at the kernel's top. An image's height and width are named
    sizes (`d_h`, `d_w`: core/sizes.py), so a layer's sizes are formulas of them such as
    `(((d_h - 2) // 2) + 1)`: each entry of `keys` that is such a formula becomes a local
    `g_<key>`, and the dict returned has entries that stand for those locals. Numbers and bare
    names stay as they are (a graph of constant sizes gets the code it always had)."""
    lines, out = [], dict(d)
    for key in keys:
        v = out[key]
        if isinstance(v, Size) and v.expr not in v.symbols:
            local = f"g_{key.lower()}"
            lines.append(f"{local} = {v.expr}")
            out[key] = Size(int(v), local, v.symbols)
    return lines, out


def _conv_geometry(d: dict) -> tuple[list[str], dict]:
    """`_bound` for a convolution: input and output sizes, then P = OH * OW."""
    lines, d = _bound(d, ("H", "W", "OH", "OW"))
    d["P"] = d["OH"] * d["OW"]
    more, d = _bound(d, ("P",))
    return lines + more, d


def _per_chunk(op: str, d: dict):
    """Scratch elements per chunk of a parallel convolution: its columns (K x P), the GEMM's
    output (O x K) and, for the weight gradient, the chunk's accumulator (O x K)."""
    extra = d["O"] * d["K"] if op == "conv2d_weight_grad" else 0
    return d["K"] * d["P"] + d["O"] * d["K"] + extra


# The loops over a window's taps (c, a, b) and the row of `cols` each fills (P long) begin every
# im2col and col2im form below.
_TAPS = """for c in range({C}):
    for a in range({KH}):
        for b in range({KW}):
            row = ((c * {KH} + a) * {KW} + b) * {P}
"""

# im2col of sample `s` of x into `cols` (K rows, P columns); taps outside the image read 0.
# (Hoisting the bounds test out of the j loop, with computed [jlo, jhi) ranges, measured 3x
# slower: with constant trip counts LLVM unswitches and vectorizes this form itself.)
# Trap: every index is unsigned (np.uint64; each is >= 0 by construction). In a parallel
# kernel the sample is `lo_s + r_s`, whose sign LLVM cannot tell, so Numba's wraparound of
# negative indices stayed in every access: LeNet-5's C3 input gradient (col2im) took 14% longer
# in the parallel form than in the serial one, its pools up to 15%; unsigned, neither is slower
# (and the serial forms are no slower either).
_IM2COL = _TAPS + """            for i in range({OH}):
                y = i * {SH} - {PH} + a
                for j in range({OW}):
                    xx = j * {SW} - {PW} + b
                    if 0 <= y < {H} and 0 <= xx < {W}:
                        cols[np.uint64(row + i * {OW} + j)] = \
                            x[np.uint64(((s * {C} + c) * {H} + y) * {W} + xx)]
                    else:
                        cols[np.uint64(row + i * {OW} + j)] = 0"""

# With image sizes that are runtime values (named sizes, see `_bound`) the form above ran 10x
# slower (LeNet-5's C3 columns: 1.7 ms against 0.17 ms): trip counts unknown, and indices whose
# sign LLVM cannot tell, so Numba's wraparound of negative indices stays in every access. The
# runtime form computes each row's range of in-image taps [jlo, jhi) once and indexes with
# unsigned integers (no wraparound; every index is >= 0 by construction): 0.35 ms.
# `_TAPS_RUNTIME`, `_TAPS` with that range, begins both runtime forms.
_TAPS_RUNTIME = _TAPS + """            jlo = min(max(0, -((b - {PW}) // {SW})), {OW})
            jhi = max(jlo, min({OW}, ({W} - 1 + {PW} - b) // {SW} + 1))
"""
_IM2COL_RUNTIME = _TAPS_RUNTIME + """            for i in range({OH}):
                y = i * {SH} - {PH} + a
                dst = row + i * {OW}
                if 0 <= y < {H}:
                    src = ((s * {C} + c) * {H} + y) * {W} - {PW} + b
                    for j in range(jlo):
                        cols[np.uint64(dst + j)] = 0
                    for j in range(jlo, jhi):
                        cols[np.uint64(dst + j)] = x[np.uint64(src + j * {SW})]
                    for j in range(jhi, {OW}):
                        cols[np.uint64(dst + j)] = 0
                else:
                    for j in range({OW}):
                        cols[np.uint64(dst + j)] = 0"""

# Without padding every tap of a window lies in the image (OH = (H - KH) // SH + 1), so the
# runtime forms need no ranges and no tests: plain copies (additions) of rows.
_IM2COL_VALID = _TAPS + """            for i in range({OH}):
                dst = row + i * {OW}
                src = ((s * {C} + c) * {H} + i * {SH} + a) * {W} + b
                for j in range({OW}):
                    cols[np.uint64(dst + j)] = x[np.uint64(src + j * {SW})]"""

# col2im: add the columns of sample `s` back onto the image they were read from.
_COL2IM = _TAPS + """            for i in range({OH}):
                y = i * {SH} - {PH} + a
                if 0 <= y < {H}:
                    for j in range({OW}):
                        xx = j * {SW} - {PW} + b
                        if 0 <= xx < {W}:
                            dx[np.uint64(((s * {C} + c) * {H} + y) * {W} + xx)] += \
                                cols[np.uint64(row + i * {OW} + j)]"""

# the runtime form (see `_IM2COL_RUNTIME`): the same additions, in the same order
_COL2IM_RUNTIME = _TAPS_RUNTIME + """            for i in range({OH}):
                y = i * {SH} - {PH} + a
                if 0 <= y < {H}:
                    dst = ((s * {C} + c) * {H} + y) * {W} - {PW} + b
                    src = row + i * {OW}
                    for j in range(jlo, jhi):
                        dx[np.uint64(dst + j * {SW})] += cols[np.uint64(src + j)]"""

# the form without padding (see `_IM2COL_VALID`)
_COL2IM_VALID = _TAPS + """            for i in range({OH}):
                dst = ((s * {C} + c) * {H} + i * {SH} + a) * {W} + b
                src = row + i * {OW}
                for j in range({OW}):
                    dx[np.uint64(dst + j * {SW})] += cols[np.uint64(src + j)]"""


# The weight gradient's rows: one row of K taps per output position, (P, K), so the innermost
# loops run over the kernel window (constant trip counts even where image sizes are runtime
# values) and the GEMM takes both operands as stored, dY (O, P) @ rows (P, K). LeNet-5 batch 64,
# constant image sizes: C3's weight gradient 0.78 -> 0.47 ms a step against the (K, P) columns of
# `_IM2COL` with a transposed GEMM operand; C1's the same. (The forward convolution keeps the
# (K, P) columns: rows made C1's GEMM, with its transposed operand, slower than the columns cost.)
_IM2ROW = """for i in range({OH}):
    ylo = i * {SH} - {PH}
    for j in range({OW}):
        xlo = j * {SW} - {PW}
        dst = (i * {OW} + j) * {K}
        if 0 <= ylo and ylo + {KH} <= {H} and 0 <= xlo and xlo + {KW} <= {W}:
            for c in range({C}):
                for a in range({KH}):
                    src = ((s * {C} + c) * {H} + ylo + a) * {W} + xlo
                    row = dst + (c * {KH} + a) * {KW}
                    for b in range({KW}):
                        cols[np.uint64(row + b)] = x[np.uint64(src + b)]
        else:
            for c in range({C}):
                for a in range({KH}):
                    y = ylo + a
                    for b in range({KW}):
                        xx = xlo + b
                        k = dst + (c * {KH} + a) * {KW} + b
                        if 0 <= y < {H} and 0 <= xx < {W}:
                            cols[np.uint64(k)] = x[np.uint64(((s * {C} + c) * {H} + y) * {W} + xx)]
                        else:
                            cols[np.uint64(k)] = 0"""


def _weight_grad_rows(d: dict, g: str) -> tuple[str, str]:
    """The weight gradient's rows (`_IM2ROW`) of sample `s` and its GEMM into `part`."""
    return (_IM2ROW.format(**d),
            gemm(d["O"], d["K"], d["P"], (g, f"s * {d['O']} * {d['P']}", d["P"], 0),
                 ("cols", "0", d["K"], 0), "part"))


def _runtime(d: dict) -> bool:
    """Whether some image size of `d` is a runtime value (a named size or a formula of them)."""
    return any(isinstance(d[k], Size) for k in ("H", "W", "OH", "OW"))


def _valid(d: dict) -> bool:
    return d["PH"] == 0 and d["PW"] == 0


def _im2col(d: dict) -> str:
    form = (_IM2COL_VALID if _valid(d) else _IM2COL_RUNTIME) if _runtime(d) else _IM2COL
    return form.format(**d)


def _col2im(d: dict) -> str:
    form = (_COL2IM_VALID if _valid(d) else _COL2IM_RUNTIME) if _runtime(d) else _COL2IM
    return form.format(**d)


def _indent(block: str, pad: str) -> list[str]:
    return [pad + line for line in block.splitlines()]


def _conv_product(d: dict, w: str, out: str) -> str:
    """Sample `s` of a convolution: (O, K) weights @ (K, P) columns into its (O, OH*OW) output."""
    return gemm(d["O"], d["P"], d["K"], (w, "0", d["K"], 0), ("cols", "0", d["P"], 0), out,
                f"s * {d['O']} * {d['P']}")


def _conv_transpose_product(d: dict, w: str, g: str) -> str:
    """Sample `s` of a convolution's input gradient: W^T (K, O) @ its (O, P) gradient into
    the (K, P) columns (W stored as (O, K): the transposed operand as it lies)."""
    return gemm(d["K"], d["P"], d["O"], (w, "0", d["K"], 1),
                (g, f"s * {d['O']} * {d['P']}", d["P"], 0), "cols")


def _conv2d(node: Node, args, out: str) -> list[str]:
    (nx, x), (nw, w) = args
    geometry, d = _conv_geometry(_conv_dims(x.shape, w.shape, node.attrs, node.shape[2:]))
    # one GEMM per sample: (O, K) @ (K, P) lands in the output's (O, OH*OW) layout directly
    return [f"x = {nx}", *geometry, "cols = scratch[:{K} * {P}]".format(**d),
            "for s in range({N}):".format(**d),
            *_indent(_im2col(d), "    "),
            "    " + _conv_product(d, nw, out)]


def _conv2d_transpose(node: Node, args, out: str) -> list[str]:
    (ng, g), (nw, w) = args
    geometry, d = _conv_geometry(_conv_dims(node.shape, w.shape, node.attrs, g.shape[2:]))
    return [f"dx = {out}", *geometry, "dx[:] = 0", "cols = scratch[:{K} * {P}]".format(**d),
            "for s in range({N}):".format(**d),
            "    " + _conv_transpose_product(d, nw, ng),
            *_indent(_col2im(d), "    ")]


def _conv2d_weight_grad(node: Node, args, out: str) -> list[str]:
    (nx, x), (ng, g) = args
    geometry, d = _conv_geometry(_conv_dims(x.shape, node.shape, node.attrs, g.shape[2:]))
    columns, product = _weight_grad_rows(d, ng)
    return [f"x = {nx}", *geometry, "cols = scratch[:{K} * {P}]".format(**d),
            "part = scratch[{K} * {P}:{K} * {P} + {O} * {K}]".format(**d),
            f"{out}[:] = 0",
            "for s in range({N}):".format(**d),
            *_indent(columns, "    "),
            f"    {product}",
            f"    {out} += part"]


def _conv2d_parallel(node: Node, args, out: str) -> list[str]:
    """Samples in `nt` chunks, each with its own columns: the serial kernel's GEMMs, in parallel."""
    (nx, x), (nw, w) = args
    geometry, d = _conv_geometry(_conv_dims(x.shape, w.shape, node.attrs, node.shape[2:]))
    per = _per_chunk(node.op, d)
    return [f"x = {nx}", *geometry,
            "for t in prange(nt):",
            f"    cols = scratch[t * {per}:t * {per} + {d['K'] * d['P']}]",
            *("    " + line for line in span("s", f"t * {d['N']} // nt", f"(t + 1) * {d['N']} // nt")),
            *_indent(_im2col(d), "        "),
            "        " + _conv_product(d, nw, out)]


def _conv2d_transpose_parallel(node: Node, args, out: str) -> list[str]:
    (ng, g), (nw, w) = args
    geometry, d = _conv_geometry(_conv_dims(node.shape, w.shape, node.attrs, g.shape[2:]))
    per = _per_chunk(node.op, d)
    image = d["C"] * d["H"] * d["W"]
    return [f"dx = {out}", *geometry,
            "for t in prange(nt):",
            f"    cols = scratch[t * {per}:t * {per} + {d['K'] * d['P']}]",
            *("    " + line for line in span("s", f"t * {d['N']} // nt", f"(t + 1) * {d['N']} // nt")),
            f"        dx[s * {image}:(s + 1) * {image}] = 0",
            "        " + _conv_transpose_product(d, nw, ng),
            *_indent(_col2im(d), "        ")]


def _conv2d_weight_grad_parallel(node: Node, args, out: str) -> list[str]:
    """Each chunk sums its samples' GEMMs into its own accumulator; the join then adds the
    accumulators in chunk order. With nt = 1 that is the serial kernel's order of additions;
    with more chunks the sum over samples is regrouped (float rounding differs, ~1e-6 relative)."""
    (nx, x), (ng, g) = args
    geometry, d = _conv_geometry(_conv_dims(x.shape, node.shape, node.attrs, g.shape[2:]))
    per = _per_chunk(node.op, d)
    kp, ok = d["K"] * d["P"], d["O"] * d["K"]
    columns, product = _weight_grad_rows(d, ng)
    return [f"x = {nx}", *geometry,
            "for t in prange(nt):",
            f"    cols = scratch[t * {per}:t * {per} + {kp}]",
            f"    part = scratch[t * {per} + {kp}:t * {per} + {kp + ok}]",
            f"    acc = scratch[t * {per} + {kp + ok}:(t + 1) * {per}]",
            "    acc[:] = 0",
            *("    " + line for line in span("s", f"t * {d['N']} // nt", f"(t + 1) * {d['N']} // nt")),
            *_indent(columns, "        "),
            f"        {product}",
            "        acc += part"]


def _conv2d_weight_grad_join(node: Node, args, out: str) -> list[str]:
    (nx, x), (ng, g) = args
    geometry, d = _conv_geometry(_conv_dims(x.shape, node.shape, node.attrs, g.shape[2:]))
    per = _per_chunk(node.op, d)
    start = d["K"] * d["P"] + d["O"] * d["K"]
    return [*geometry, f"{out}[:] = 0",
            "for t in range(nt):",
            f"    {out} += scratch[t * {per} + {start}:(t + 1) * {per}]"]


def _conv_work(node: Node) -> int:
    d = _conv_node_dims(node)
    return d["N"] * d["O"] * d["K"] * d["P"]


def _conv_chunk_scratch(node: Node, *_) -> int:
    return _per_chunk(node.op, _conv_node_dims(node))


def _conv_node_dims(node: Node) -> dict:
    if node.op == "conv2d":
        x, w = node.src
        return _conv_dims(x.shape, w.shape, node.attrs, node.shape[2:])
    if node.op == "conv2d_transpose":
        g, w = node.src
        return _conv_dims(node.shape, w.shape, node.attrs, g.shape[2:])
    x, g = node.src
    return _conv_dims(x.shape, node.shape, node.attrs, g.shape[2:])


def _conv_scratch(node: Node) -> int:
    if node.op == "conv2d":
        x, w = node.src
        d = _conv_dims(x.shape, w.shape, node.attrs, node.shape[2:])
    elif node.op == "conv2d_transpose":
        g, w = node.src
        d = _conv_dims(node.shape, w.shape, node.attrs, g.shape[2:])
    else:
        x, g = node.src
        d = _conv_dims(x.shape, node.shape, node.attrs, g.shape[2:])
    return d["K"] * d["P"] + d["O"] * d["K"]


_IMAGE = ("H", "W", "OH", "OW")   # a pool's sizes that may be formulas (see `_bound`)


def _pool_dims(x_shape, pooled_shape, attrs):
    """A pool's sizes. (The pools index with unsigned integers, as the convolutions do: see
    `_IM2COL`.)"""
    n, c, h, w = x_shape
    (kh, kw), (sh, sw) = attrs["kernel"], attrs["stride"]
    d = dict(NC=n * c, H=h, W=w, KH=kh, KW=kw, SH=sh, SW=sw, OH=pooled_shape[2],
             OW=pooled_shape[3])
    return d


# the first maximum of window (i, j) of plane p, in row-major order (as NumPy's argmax)
_ARGMAX = """best = x[np.uint64(base + (i * {SH}) * {W} + j * {SW})]
at = base + (i * {SH}) * {W} + j * {SW}
for a in range({KH}):
    for b in range({KW}):
        k = base + (i * {SH} + a) * {W} + j * {SW} + b
        if x[np.uint64(k)] > best:
            best = x[np.uint64(k)]
            at = k"""


def _pool_loops(d, body: str, rng: str = "range", zero: str | None = None) -> list[str]:
    """Loops over planes and pooled positions; `zero`: an output of the input's shape, whose
    plane is cleared before the plane's windows add into it."""
    clear = [f"    {zero}[base:base + {d['H'] * d['W']}] = 0"] if zero else []
    return [f"for p in {rng}({{NC}}):".format(**d), "    base = p * {H} * {W}".format(**d),
            *clear,
            "    for i in range({OH}):".format(**d), "        for j in range({OW}):".format(**d),
            "            o = np.uint64((p * {OH} + i) * {OW} + j)".format(**d),
            *_indent(body.format(**d), "            ")]


# Pools loop over planes (sample x channel); each plane reads and writes only its own part of
# the input and output, so the parallel form (`rng="prange"`) computes the same bits.
def _max_pool2d(node: Node, args, out: str, rng: str = "range") -> list[str]:
    (nx, x), = args
    geometry, d = _bound(_pool_dims(x.shape, node.shape, node.attrs), _IMAGE)
    return [f"x = {nx}", *geometry, *_pool_loops(d, _ARGMAX + f"\n{out}[o] = best", rng)]


def _max_pool2d_grad(node: Node, args, out: str, rng: str = "range") -> list[str]:
    (nx, x), (ng, g) = args
    geometry, d = _bound(_pool_dims(x.shape, g.shape, node.attrs), _IMAGE)
    return [f"x = {nx}", *geometry,
            *_pool_loops(d, _ARGMAX + f"\n{out}[np.uint64(at)] += {ng}[o]", rng, zero=out)]


def _max_pool2d_gather(node: Node, args, out: str, rng: str = "range") -> list[str]:
    (nx, x), (nh, h) = args
    geometry, d = _bound(_pool_dims(x.shape, node.shape, node.attrs), _IMAGE)
    return [f"x = {nx}", *geometry,
            *_pool_loops(d, _ARGMAX + f"\n{out}[o] = {nh}[np.uint64(at)]", rng)]


def _avg_pool2d(node: Node, args, out: str, rng: str = "range") -> list[str]:
    (nx, x), = args
    geometry, d = _bound(_pool_dims(x.shape, node.shape, node.attrs), _IMAGE)
    body = ("acc = 0.0\nfor a in range({KH}):\n    for b in range({KW}):\n"
            "        acc += x[np.uint64(base + (i * {SH} + a) * {W} + j * {SW} + b)]\n"
            f"{out}[o] = acc / {d['KH'] * d['KW']}")
    return [f"x = {nx}", *geometry, *_pool_loops(d, body, rng)]


def _avg_pool2d_transpose(node: Node, args, out: str, rng: str = "range") -> list[str]:
    (ng, g), = args
    geometry, d = _bound(_pool_dims(node.shape, g.shape, node.attrs), _IMAGE)
    body = (f"share = {ng}[o] / F({d['KH'] * d['KW']})\n"
            "for a in range({KH}):\n    for b in range({KW}):\n"
            f"        {out}[np.uint64(base + (i * {{SH}} + a) * {{W}} + j * {{SW}} + b)] += share")
    return [*geometry, *_pool_loops(d, body, rng, zero=out)]


def _pool_parallel(emit: Callable) -> Callable:
    return lambda node, args, out: emit(node, args, out, "prange")


def _pool_work(node: Node) -> int:
    """Window reads: the pooled side's elements times the window."""
    kh, kw = node.attrs["kernel"]
    small = min((node.shape, node.src[-1].shape), key=lambda s: _prod(s))
    return _prod(small) * kh * kw


def _prod(shape) -> int:
    total = 1
    for d in shape:
        total *= d
    return total


def _pool(emit: Callable) -> CpuKernel:
    return CpuKernel(emit, parallel=_pool_parallel(emit), work=_pool_work)


cpu_kernels: dict[str, CpuKernel] = {
    "matmul": CpuKernel(_matmul, lambda i, a: (a.contiguous or a.transposed) and not a.literal,
                        parallel=_matmul_any_parallel, work=_matmul_work,
                        chunk_scratch=_matmul_chunk_scratch, join=_matmul_join),
    # float64 accumulator for the trailing axes: float32 sums of many terms lose digits
    "sum": CpuKernel(_reduce("{acc} + {x}", "0.0"), lambda i, a: True),
    "amax": CpuKernel(_reduce("({x} if {x} > {acc} else {acc})", "-np.inf"), lambda i, a: True),
    "conv2d": CpuKernel(_conv2d, scratch=_conv_scratch, parallel=_conv2d_parallel,
                        work=_conv_work, chunk_scratch=_conv_chunk_scratch),
    "conv2d_transpose": CpuKernel(_conv2d_transpose, scratch=_conv_scratch,
                                  parallel=_conv2d_transpose_parallel, work=_conv_work,
                                  chunk_scratch=_conv_chunk_scratch),
    "conv2d_weight_grad": CpuKernel(_conv2d_weight_grad, scratch=_conv_scratch,
                                    parallel=_conv2d_weight_grad_parallel, work=_conv_work,
                                    chunk_scratch=_conv_chunk_scratch,
                                    join=_conv2d_weight_grad_join),
    "max_pool2d": _pool(_max_pool2d),
    "max_pool2d_grad": _pool(_max_pool2d_grad),
    "max_pool2d_gather": _pool(_max_pool2d_gather),
    "avg_pool2d": _pool(_avg_pool2d),
    "avg_pool2d_transpose": _pool(_avg_pool2d_transpose),
}


# -- elementwise kernels ------------------------------------------------------------------------
@dataclass
class _Operands:
    """Where each value of a fused kernel comes from. `loads` names the local (`l0`, `l1`, ...)
    read from each distinct (array, strides) pair; `temps` the local (`t<id>`) each computed node
    is kept in; `exprs` the nodes to compute with their operand expressions, in order;
    `reductions` the reduced nodes with the expression they accumulate; `params` the kernel's
    array parameters (loaded arrays, then stored ones)."""

    params: list[str]
    loads: dict[tuple, str]
    accesses: dict[tuple, Access]
    temps: dict[Node, str]
    exprs: list[tuple[Node, list[str]]]
    reductions: list[tuple[Node, str]]
    strided: bool   # some load or reduction needs the loop nest's indices, not one flat index


def _operands(k: Kernel, sched: Schedule, name_of: Callable[[Node], str]) -> _Operands:
    """Each operand of each node of `k` as an expression: a literal, a temporary computed earlier
    in the loop (a member read contiguously), or a load from an array."""
    members = set(k.nodes)
    params: list[str] = []
    loads: dict[tuple, str] = {}
    temps: dict[Node, str] = {}
    strided = False

    def param(name: str) -> None:
        if name not in params:
            params.append(name)

    exprs = []
    reductions = []   # (node, operand expression), accumulated after the expressions
    for node in k.nodes:
        args = []
        for a in sched.reads(node):
            if a.literal:
                args.append(lit(a.base.attrs["value"]))
            elif a.base in members and a.contiguous:
                args.append(temps[a.base])
            else:
                key = (a.base, a.strides)
                if key not in loads:
                    loads[key] = f"l{len(loads)}"
                    param(name_of(a.base))
                    strided = strided or not (a.contiguous or a.uniform)
                args.append(loads[key])
        if node in k.reductions:
            reductions.append((node, args[0]))
            strided = strided or len(node.attrs["axes"]) < len(k.shape)
            continue
        temps[node] = f"t{sched.ids[node]}"
        exprs.append((node, args))
    for node in k.stores:
        param(name_of(node))
    accesses = {key: a for node in k.nodes for a in sched.reads(node)
                for key in [(a.base, a.strides)] if key in loads}
    return _Operands(params, loads, accesses, temps, exprs, reductions, strided)


@dataclass
class _Loop:
    """The loop over a kernel's points: `pad` indents its body, `loops` are the loop variables of
    a nest (None for one flat loop over `i`), `strides` index each strided load in the nest,
    `out_strides` each partial reduction's output, and `inner` lists the partial reductions that
    sum over the innermost loop into a local (`r<id>`)."""

    pad: str
    loops: list[str] | None
    strides: dict
    out_strides: dict
    inner: list


def span(var: str, start: str, stop: str) -> list[str]:
    """`for var in range(start, stop):` written so that LLVM still vectorizes the loops inside.
    Trap: with a start whose sign LLVM cannot tell, every index computed from `var` might be
    negative, and Numba's wraparound of negative indices then kept a fused tanh loop from
    vectorizing (6x slower); a loop from 0 plus a start known to be >= 0 does not."""
    return [f"lo_{var} = max(0, {start})", f"for r_{var} in range({stop} - lo_{var}):",
            f"    {var} = lo_{var} + r_{var}"]


def _outer(var: str, rng: str, extent, pad: str = "") -> list[str]:
    """The outermost loop: over all of `extent`, or (`rng="chunk"`) over chunk t of nt."""
    if rng == "chunk":
        return [pad + line for line in
                span(var, f"t * ({extent}) // nt", f"(t + 1) * ({extent}) // nt")]
    return [f"{pad}for {var} in {rng}({extent}):"]


def _loop_header(k: Kernel, sched: Schedule, ops: _Operands, partial, rng: str,
                 size: str | None, body: list[str], by_row: dict | None = None) -> _Loop:
    """Append the loop header(s) to `body`: a nest over the kernel's shape with its axes
    collapsed where every access allows (strided loads or partial reductions), else one loop.
    `by_row` (reduction node -> output name): reductions that keep the outer axis, whose
    outputs for one outer index are set to the initial value at its start (instead of all at
    once before the loop, which every block of a parallel kernel would do)."""
    if not (ops.strided and size is None):
        body.extend(_outer("i", rng, size or k.size))
        return _Loop("    ", None, {}, {}, [])
    keys = [key for key in ops.loads if not ops.accesses[key].uniform]
    lists = [_strides(k.shape)] + [list(key[1]) for key in keys]
    lists += [_reduced_strides(k.shape, node.attrs["axes"]) for node, _ in partial]
    shape, merged = collapse(k.shape, lists)
    strides = dict(zip(keys, merged[1:]))
    out_strides = {node: st for (node, _), st in zip(partial, merged[1 + len(keys):])}
    loops = [f"i{d}" for d in range(len(shape))]
    # a reduction over the innermost loop sums in a local, stored once per outer iteration:
    # adding into memory on every element is a chain through one address (measured 10x)
    inner = [(node, x) for node, x in partial if shape and out_strides[node][-1] == 0]
    pad = ""
    for d, extent in enumerate(shape):
        if d == len(shape) - 1:
            body.extend(f"{pad}r{sched.ids[node]} = {_REDUCE_INIT[node.op]}" for node, _ in inner)
        body.extend(_outer(f"i{d}", rng, extent, pad) if d == 0 else
                    [f"{pad}for i{d} in range({extent}):"])
        pad += "    "
        for node, name in (by_row or {}).items() if d == 0 else ():
            row = out_strides[node][0]   # (the outputs of one outer index: a contiguous run)
            where = "i0" if row == 1 and not _named(row) else f"i0 * ({row}):(i0 + 1) * ({row})"
            body.append(f"{pad}{name}[{where}] = {_REDUCE_INIT[node.op]}")
    body.append(f"{pad}i = {_unsigned(merged[0], index(merged[0], loops))}")
    return _Loop(pad, loops, strides, out_strides, inner)


def _named(size) -> bool:
    """Whether `size` is written as a formula of named sizes (a runtime value), not a number."""
    return isinstance(size, Size) and bool(size.symbols)


def _unsigned(strides, expression: str) -> str:
    """An index computed with named sizes, as an unsigned integer. Trap: Numba wraps negative
    indices, and with a stride LLVM cannot prove positive every access keeps that check, which
    kept the loop from vectorizing (bias + tanh over (64, 6, d_h * d_w): 0.87 ms against 0.32 ms
    with constant sizes, 0.32 ms unsigned). Constant strides keep their code."""
    if any(_named(s) for s in strides):
        return f"np.uint64({expression})"
    return expression


def _loads(ops: _Operands, loop: _Loop, name_of, points: bool) -> list[str]:
    """The loop body's reads: one per (array, strides) pair, at the flat index `i` when the read
    is contiguous, else at its strided index in the nest (uniform reads are hoisted)."""
    lines = []
    for key, tmp in ops.loads.items():
        a = ops.accesses[key]
        if a.uniform and not points:
            continue
        where = "i" if a.contiguous or loop.loops is None else \
            _unsigned(loop.strides[key], index(loop.strides[key], loop.loops))
        lines.append(f"{loop.pad}{tmp} = {name_of(key[0])}[{where}]")
    return lines


def _accumulate(k: Kernel, sched: Schedule, partial, totals, loop: _Loop, name_of) -> list[str]:
    """The reduction steps in the loop body: partial reductions into their output (or into their
    local, flushed after the innermost loop), totals into their accumulator."""
    lines = []
    pad = loop.pad
    for node, x in partial:
        if (node, x) in loop.inner:
            acc = f"r{sched.ids[node]}"
            lines.append(f"{pad}{acc} = {_REDUCE_STEP[node.op].format(acc=acc, x=x)}")
        else:
            at = _unsigned(loop.out_strides[node], index(loop.out_strides[node], loop.loops))
            target = f"{name_of(node)}[{at}]"
            lines.append(f"{pad}{target} = {_REDUCE_STEP[node.op].format(acc=target, x=x)}")
    for node, x in totals:
        acc = f"acc{sched.ids[node]}"
        lines.append(f"{pad}{acc} = {_REDUCE_STEP[node.op].format(acc=acc, x=x)}")
    outer = pad[4:]
    for node, _ in loop.inner:
        target = f"{name_of(node)}[{index(loop.out_strides[node][:-1], loop.loops[:-1])}]"
        step = _REDUCE_STEP[node.op].format(acc=target, x=f"r{sched.ids[node]}")
        lines.append(f"{outer}{target} = {step}")
    return lines


def elementwise_body(k: Kernel, sched: Schedule, name_of: Callable[[Node], str],
                     size: str | None = None, parallel: bool = False) -> tuple[list[str], list[str]]:
    """Parameters and body lines of fused elementwise kernel `k`: loads first, then the
    expressions, then the stores, so a value may be written over the array it was read from.
    With `size` (an expression), the loop runs over that many points (vectorized scalar graphs).

    `parallel`: the outer loop as `prange` (see the module docstring). A kernel that folds
    reductions then runs `nt` chunks of its outer loop instead, each reducing into its own part
    of `scratch` (`reduction_scratch(k)` elements per chunk); `elementwise_join` combines them."""
    ops = _operands(k, sched, name_of)
    points = size is not None
    chunked = parallel and reduces_across_rows(k) and not points
    by_row = parallel and bool(ops.reductions) and not chunked   # see `reduces_across_rows`
    partial = [(node, x) for node, x in ops.reductions if len(node.attrs["axes"]) < len(k.shape)]
    totals = [(node, x) for node, x in ops.reductions if len(node.attrs["axes"]) == len(k.shape)]
    if chunked:   # each chunk reduces into q<id>, its own slice of the scratch
        local = {node: f"q{sched.ids[node]}" for node, _ in ops.reductions}
        inner_name = lambda node: local.get(node) or name_of(node)   # noqa: E731
    else:
        inner_name = name_of

    body: list[str] = []
    for key, tmp in ops.loads.items():  # hoisted: one value for every element
        if ops.accesses[key].uniform and not points:
            body.append(f"{tmp} = {name_of(key[0])}[0]")
    for node, _ in [] if by_row else partial:
        body.append(f"{inner_name(node)}[:] = {_REDUCE_INIT[node.op]}")
    for node, _ in totals:
        body.append(f"acc{sched.ids[node]} = {_REDUCE_INIT[node.op]}")
    rng = "chunk" if chunked else "prange" if parallel else "range"
    loop = _loop_header(k, sched, ops, partial, rng, size, body,
                        {node: name_of(node) for node, _ in partial} if by_row else {})
    body.extend(_loads(ops, loop, name_of, points))
    for node, args in ops.exprs:
        value = args[0] if node in sched.copies else expression(node, args)
        body.append(f"{loop.pad}{ops.temps[node]} = {value}")
    for node in k.stores:
        if node not in k.reductions:
            body.append(f"{loop.pad}{name_of(node)}[i] = {ops.temps[node]}")
    body.extend(_accumulate(k, sched, partial, totals, loop, inner_name))
    for node, _ in totals:
        body.append(f"{inner_name(node)}[0] = acc{sched.ids[node]}")
    if not chunked:
        return ops.params, body
    per, offset, views = reduction_scratch(k), 0, []
    for node, _ in ops.reductions:
        views.append(f"    q{sched.ids[node]} = scratch[t * ({per}) + ({offset}):"
                     f"t * ({per}) + ({offset + node.size})]")
        offset += node.size
    return ops.params, ["for t in prange(nt):", *views, *("    " + line for line in body)]


def reduces_across_rows(k: Kernel) -> bool:
    """Whether some reduction of fused kernel `k` sums over its outer axis (or over all of it),
    so that the parallel form's chunks reduce into scratch and a join combines them. Otherwise
    (a row's sum or maximum, as in softmax) each block reduces its own rows straight into the
    output, in the serial order."""
    return any(0 in node.attrs["axes"] or len(node.attrs["axes"]) == len(k.shape)
               for node in k.reductions)


def reduction_scratch(k: Kernel) -> int:
    """Elements one chunk of a parallel elementwise kernel reduces into: its reductions' sizes."""
    return sum(node.size for node in k.reductions)


def elementwise_join(k: Kernel, sched: Schedule, name_of: Callable[[Node], str]) -> list[str]:
    """After every chunk of a parallel reducing kernel: each reduction's output from the chunks'
    partial results, combined in chunk order. A reduction over inner axes only (a row's sum or
    maximum) is then exactly the serial result, since one chunk holds all of a row; a sum over
    the outer axis is regrouped by chunk (float rounding differs)."""
    per, offset, lines = reduction_scratch(k), 0, []
    for node in (n for n in k.nodes if n in k.reductions):
        out = name_of(node)
        step = _REDUCE_STEP[node.op].format(acc=f"{out}[j]",
                                            x=f"scratch[t * ({per}) + ({offset}) + j]")
        lines += [f"{out}[:] = {_REDUCE_INIT[node.op]}",
                  "for t in range(nt):",
                  f"    for j in range({node.size}):",
                  f"        {out}[j] = {step}"]
        offset += node.size
    return lines


_REDUCE_INIT = {"sum": "0.0", "amax": "-np.inf"}
_REDUCE_STEP = {"sum": "{acc} + {x}", "amax": "({x} if {x} > {acc} else {acc})"}


def _reduced_strides(shape, axes) -> list[int]:
    """Strides into a reduction's output for each axis of its input (0 on reduced axes)."""
    kept = [d for d in range(len(shape)) if d not in axes]
    out = dict(zip(kept, _strides([shape[d] for d in kept])))
    return [out.get(d, 0) for d in range(len(shape))]
