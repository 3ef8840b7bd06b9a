"""Matrix products in generated code: one direct call to SciPy's BLAS `sgemm`/`dgemm`.

`_gemm(ta, tb, m, n, k, a, a_at, lda, b, b_at, ldb, c, c_at, ldc)` writes the row-major m x n
product of A (m x k) and B (k x n) into `c` from element `c_at`, rows `ldc` apart. Each operand
is read from a flat array at an element offset with its rows `ld` apart, as stored: `ta` (`tb`)
nonzero says the array holds A's (B's) transpose, a k x m (n x k) row-major matrix. So a block
of rows of a product, or of a transposed operand, is an offset and a leading dimension, never a
copy.

Trap: `np.dot` inside njit copies a strided operand (a block of rows of X^T in a weight gradient
X^T @ dY cut by rows), and it is heavy to compile: the 8 `np.dot` calls of an MLP step's module
were about 1.2 s of its 2.7 s of compile on one core.
A call to an external function is a few instructions; the generated module links the symbol
(`link_gemm`, as `workers.link_barrier`) when it is imported.
"""
from __future__ import annotations

import functools
import hashlib
from pathlib import Path

from llvmlite import binding as llvm, ir
from numba.core import cgutils, types
from numba.extending import get_cython_function_address, intrinsic

# `_gemm` is compiled into the generated parts; Numba's cache of a generated module does not notice
# when it changes, so the module's text names this file's hash (backend.py, as for workers.py)
SOURCE_HASH = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]
SYMBOLS = {"float32": ("sgemm", "gradviz_sgemm"), "float64": ("dgemm", "gradviz_dgemm")}


@functools.cache
def link_gemm() -> None:
    """Make SciPy's BLAS `sgemm` and `dgemm` callable from compiled code by the names in
    `SYMBOLS` (the BLAS that `set_threads` keeps at one thread)."""
    for routine, symbol in SYMBOLS.values():
        llvm.add_symbol(symbol, get_cython_function_address("scipy.linalg.cython_blas", routine))


@intrinsic
def _gemm(typingctx, ta, tb, m, n, k, a, a_at, lda, b, b_at, ldb, c, c_at, ldc):
    """See the module docstring. In Fortran's column-major terms the row-major product C = A B
    is C^T = B^T A^T, so B comes first and each stored operand is used as it lies."""
    arrays = (a, b, c)
    if not all(isinstance(x, types.Array) for x in arrays) or \
            len({x.dtype for x in arrays}) != 1 or str(c.dtype) not in SYMBOLS:
        return None
    integers = (ta, tb, m, n, k, a_at, lda, b_at, ldb, c_at, ldc)
    if not all(isinstance(x, types.Integer) for x in integers):
        return None
    link_gemm()
    symbol = SYMBOLS[str(c.dtype)][1]

    def codegen(context, builder, signature, args):
        (ta_, tb_, m_, n_, k_, a_, a_at_, lda_, b_, b_at_, ldb_, c_, c_at_, ldc_) = args
        kinds = signature.args
        i8, i32, i64 = ir.IntType(8), ir.IntType(32), ir.IntType(64)
        real = context.get_value_type(c.dtype)

        def wide(value, kind):
            return context.cast(builder, value, kind, types.int64)

        def slot(value, kind):   # Fortran takes every argument by reference
            at = cgutils.alloca_once(builder, kind)
            builder.store(value, at)
            return at

        def count(value, kind, least=0):
            value = wide(value, kind)
            low = ir.Constant(i64, least)
            value = builder.select(builder.icmp_signed("<", value, low), low, value)
            return slot(builder.trunc(value, i32), i32)

        def trans(flag, kind):
            nonzero = builder.icmp_signed("!=", wide(flag, kind), ir.Constant(i64, 0))
            letter = builder.select(nonzero, ir.Constant(i8, ord("T")), ir.Constant(i8, ord("N")))
            return slot(letter, i8)

        def start(array, kind, at, at_kind):
            data = context.make_array(kind)(context, builder, array).data
            return builder.gep(data, [wide(at, at_kind)])

        pointer = real.as_pointer()
        function = cgutils.get_or_insert_function(
            builder.module,
            ir.FunctionType(ir.VoidType(), [i8.as_pointer(), i8.as_pointer(), i32.as_pointer(),
                                            i32.as_pointer(), i32.as_pointer(), pointer, pointer,
                                            i32.as_pointer(), pointer, i32.as_pointer(), pointer,
                                            pointer, i32.as_pointer()]),
            symbol)
        builder.call(function, [
            trans(tb_, kinds[1]), trans(ta_, kinds[0]),
            count(n_, kinds[3]), count(m_, kinds[2]), count(k_, kinds[4]),
            slot(ir.Constant(real, 1.0), real),
            start(b_, kinds[8], b_at_, kinds[9]), count(ldb_, kinds[10], 1),
            start(a_, kinds[5], a_at_, kinds[6]), count(lda_, kinds[7], 1),
            slot(ir.Constant(real, 0.0), real),
            start(c_, kinds[11], c_at_, kinds[12]), count(ldc_, kinds[13], 1)])
        return context.get_dummy_value()
    return types.void(ta, tb, m, n, k, a, a_at, lda, b, b_at, ldb, c, c_at, ldc), codegen
