"""blas._gemm, the one call generated code makes for a matrix product: every combination of
stored (transposed or not) operands, offsets and leading dimensions, in float32 and float64."""
import numpy as np
import pytest
from numba import njit

from gradviz.compiler.cpu.blas import _gemm


@njit
def _call(ta, tb, m, n, k, a, a_at, lda, b, b_at, ldb, c, c_at, ldc):
    _gemm(ta, tb, m, n, k, a, a_at, lda, b, b_at, ldb, c, c_at, ldc)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ta", [0, 1])
@pytest.mark.parametrize("tb", [0, 1])
def test_every_stored_layout_gives_the_product(dtype, ta, tb):
    rng = np.random.default_rng(ta * 2 + tb)
    m, n, k = 7, 5, 9
    a, b = rng.normal(size=(m, k)), rng.normal(size=(k, n))
    stored_a = np.ascontiguousarray(a.T if ta else a, dtype).ravel()
    stored_b = np.ascontiguousarray(b.T if tb else b, dtype).ravel()
    c = np.full(3 + m * n, -1.0, dtype)
    _call(ta, tb, m, n, k, stored_a, 0, m if ta else k, stored_b, 0, k if tb else n, c, 3, n)
    np.testing.assert_allclose(c[3:].reshape(m, n), a @ b, rtol=1e-5, atol=1e-5)
    assert (c[:3] == -1).all()     # nothing written before the offset


def test_a_block_of_rows_of_a_transposed_operand_is_read_where_it_lies():
    rng = np.random.default_rng(7)
    a, b = rng.normal(size=(8, 6)), rng.normal(size=(6, 4))
    stored_a = np.ascontiguousarray(a.T).ravel()       # (6, 8): rows 2..5 of a are columns
    c = np.zeros(8 * 4)
    _call(1, 0, 3, 4, 6, stored_a, 2, 8, b.ravel(), 0, 4, c, 2 * 4, 4)
    np.testing.assert_allclose(c.reshape(8, 4)[2:5], a[2:5] @ b, rtol=1e-12)
    assert not c.reshape(8, 4)[:2].any() and not c.reshape(8, 4)[5:].any()


def test_a_block_of_the_shared_axis_sums_part_of_the_product():
    rng = np.random.default_rng(8)
    x, dy = rng.normal(size=(10, 3)), rng.normal(size=(10, 4))   # x^T @ dy over rows 4..9
    c = np.zeros(3 * 4)
    _call(1, 0, 3, 4, 6, x.ravel(), 4 * 3, 3, dy.ravel(), 4 * 4, 4, c, 0, 4)
    np.testing.assert_allclose(c.reshape(3, 4), x[4:].T @ dy[4:], rtol=1e-12)
