"""The vector intrinsics and views of nbbp._simd do what their NumPy spelling does."""

import numpy as np
import pytest
from conftest import DTYPES
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic
from numpy.testing import assert_array_equal

from nbbp._jit import jit
from nbbp._simd import (
    add,
    block_rows,
    borrowed,
    down,
    fma,
    lanes,
    load,
    matrix,
    outer,
    pack_strips,
    pack_transposed_strips,
    row,
    scale,
    square_add,
    store,
    store_block,
    strip_width,
    total,
    transpose_tile,
    zeros,
    zeros_block,
)


@jit()
def _view(flat, start, n_rows, n_cols):
    return matrix(flat, start, n_rows, n_cols)


@jit()
def _write_through_view(flat, start, n_rows, n_cols, value):
    V = matrix(flat, start, n_rows, n_cols)
    V[n_rows - 1, n_cols - 1] = value


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("start, n_rows, n_cols", [(0, 3, 4), (5, 2, 7), (19, 1, 1), (20, 0, 3)])
def test_matrix_is_the_reshaped_slice(dtype, start, n_rows, n_cols):
    flat = np.arange(20, dtype=dtype)
    V = _view(flat, start, n_rows, n_cols)
    assert V.dtype == dtype
    assert V.flags.c_contiguous
    assert_array_equal(V, flat[start:start + n_rows * n_cols].reshape(n_rows, n_cols))
    if n_rows:
        _write_through_view(flat, start, n_rows, n_cols, dtype(-1))
        assert flat[start + n_rows * n_cols - 1] == -1  # a view, not a copy


@pytest.mark.parametrize("start, n_rows, n_cols", [(0, 5, 5), (18, 1, 3), (-1, 1, 1), (0, -1, 2)])
def test_matrix_out_of_bounds_raises(start, n_rows, n_cols):
    flat = np.arange(20.0)
    with pytest.raises(IndexError, match="out of bounds"):
        _view(flat, start, n_rows, n_cols)


@intrinsic
def _counted(typingctx, a):
    """Whether Numba counts references to the array ``a`` (its meminfo is not NULL)."""
    def codegen(context, builder, signature, args):
        ary = context.make_array(a)(context, builder, args[0])
        return builder.icmp_unsigned("!=", ary.meminfo, cgutils.get_null_value(ary.meminfo.type))

    return types.boolean(a), codegen


@jit()
def _borrow(flat, value):
    b = borrowed(flat)
    V = matrix(b, 1, 2, 3)  # elements 1 .. 6
    V[1, 2] = value  # element 6, through the borrowed array's view
    pair = borrowed((flat, V))  # a tuple of arrays, borrowed whole
    return (_counted(flat), _counted(b), _counted(V), _counted(b[2:5]),
            _counted(pair[0]) or _counted(pair[1]), b.shape[0], b[6], borrowed(None) is None,
            borrowed(3))


def test_borrowed_is_the_same_array_with_no_reference_counted():
    flat = np.arange(10.0)
    (counted_flat, counted_b, counted_view, counted_slice, counted_pair, n, got, none,
     three) = _borrow(flat, -1.0)
    assert counted_flat  # the argument itself is counted; the borrowed array and its views not
    assert (counted_b, counted_view, counted_slice, counted_pair) == (False, False, False, False)
    assert (n, got, flat[6]) == (10, -1, -1)  # the same data, written through
    assert (none, three) == (True, 3)  # anything but an array passes through


@jit()
def _axpy_rows(x, a, y, out):
    """out[k, j:j+lanes] = scale(y[k, j:j+lanes], 2) + x_k a[k, j:j+lanes] for every vector."""
    width = lanes(out)
    for k in range(out.shape[0]):
        for j in range(0, out.shape[1], width):
            store(out, k, j, fma(scale(load(y, k, j), 2), x[k], load(a, k, j)))


@jit()
def _zeros_into(out):
    for k in range(out.shape[0]):
        for j in range(0, out.shape[1], lanes(out)):
            store(out, k, j, zeros(out))


@jit()
def _sums_of_squares(a, b, out):
    """out[k] = sum_j (a_kj^2 + b_kj^2 + a_kj + b_kj) over row k, vector by vector."""
    for k in range(a.shape[0]):
        acc = zeros(a)
        for j in range(0, a.shape[1], lanes(a)):
            u, v = load(a, k, j), load(b, k, j)
            acc = add(square_add(square_add(acc, u), v), add(u, v))
        out[k] = total(acc)


@pytest.mark.parametrize("dtype", DTYPES)
def test_square_add_add_and_total_equal_numpy(rng, dtype):
    n_cols = 3 * lanes(np.empty(0, dtype))
    a, b = (rng.normal(size=(4, n_cols)).astype(dtype) for _ in range(2))
    out = np.full(4, np.nan, dtype)
    _sums_of_squares(a, b, out)
    expected = (a.astype(np.float64) ** 2 + b ** 2 + a + b).sum(axis=1)
    np.testing.assert_allclose(out, expected, rtol=16 * np.finfo(dtype).eps)


@pytest.mark.parametrize("dtype", DTYPES)
def test_vector_arithmetic_equals_numpy(rng, dtype):
    n_cols = 4 * lanes(np.empty(0, dtype))
    a, y = (rng.normal(size=(3, n_cols)).astype(dtype) for _ in range(2))
    x = rng.normal(size=3).astype(dtype)
    out = np.full((3, n_cols), np.nan, dtype)
    _axpy_rows(x, a, y, out)
    np.testing.assert_allclose(out, 2 * y + x[:, None] * a, rtol=4 * np.finfo(dtype).eps)
    _zeros_into(out)
    assert_array_equal(out, 0)


def _expected_strips(src, width):
    """NumPy's spelling of pack_strips over every row and strip: src's columns padded with zeros
    to whole strips, each strip's rows stacked."""
    n_rows, n_cols = src.shape
    n_strips = -(-n_cols // width)
    padded = np.zeros((n_rows, n_strips * width), src.dtype)
    padded[:, :n_cols] = src
    return padded.reshape(n_rows, n_strips, width).transpose(1, 0, 2).reshape(-1, width)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n_rows, n_cols", [(7, 32), (5, 37), (3, 5), (1, 16), (4, 64)])
def test_pack_strips_stacks_each_strip_padded_with_zeros(rng, dtype, n_rows, n_cols):
    width = 2 * lanes(np.empty(0, dtype))
    src = rng.normal(size=(n_rows, n_cols)).astype(dtype)
    n_strips = -(-n_cols // width)
    S = np.full((n_strips * n_rows, width), np.nan, dtype)
    for p0 in range(0, n_rows, 2):  # in blocks of rows, as the kernels' tasks
        pack_strips(src, p0, min(p0 + 2, n_rows), 0, n_strips, S)
    assert_array_equal(S, _expected_strips(src, width))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("s0, s1", [(1, 3), (2, 3), (0, 1), (3, 3)])
def test_pack_strips_writes_only_its_rows_and_strips(rng, dtype, s0, s1):
    width = 2 * lanes(np.empty(0, dtype))
    n_rows, n_cols = 6, 2 * width + 3  # 3 strips, the last ragged
    src = rng.normal(size=(n_rows, n_cols)).astype(dtype)
    S = np.full((3 * n_rows, width), np.nan, dtype)
    pack_strips(src, 2, 5, s0, s1, S)
    expected = np.full_like(S, np.nan)
    whole = _expected_strips(src, width)
    for s in range(s0, s1):
        rows = slice(s * n_rows + 2, s * n_rows + 5)
        expected[rows] = whole[rows]
    assert_array_equal(S, expected)


@jit()
def _transpose_tile(src, r0, c0, n_rows, dst, d0, e0):
    transpose_tile(src, r0, c0, n_rows, dst, d0, e0)


@jit()
def _down_column(X, k0, p, out):
    """out[r] = the Column down(X, k0, p)'s scalar r, through a block: outer with a row of ones."""
    ones = np.ones((1, strip_width(X)), X.dtype)
    acc = zeros_block(X)
    acc += outer(down(X, k0, p), row(ones, 0, 0))
    block = np.empty((out.shape[0], ones.shape[1]), X.dtype)
    store_block(block, 0, 0, acc, out.shape[0])
    for r in range(out.shape[0]):
        out[r] = block[r, 0]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("short", [0, 1, 3])
def test_transpose_tile_moves_each_element_to_its_mirror(dtype, short):
    # rows of the tile past n_rows (the last rows of src, when short) read as zeros
    n = lanes(np.empty(0, dtype))
    short = min(short, n - 1)  # the tile reads 1 row or more (2 float64 lanes under SSE)
    src = np.arange(1, 1 + (2 * n - short) * 2 * n, dtype=dtype).reshape(2 * n - short, 2 * n)
    dst = np.full((2 * n + 1, 3 * n), np.nan, dtype)
    _transpose_tile(src, n, n, n - short, dst, 1, 2)
    tile = np.zeros((n, n), dtype)
    tile[:n - short] = src[n:, n:2 * n]
    expected = np.full_like(dst, np.nan)
    expected[1:1 + n, 2:2 + n] = tile.T
    assert_array_equal(dst, expected)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n_rows, n_cols",
                         [(32, 64), (10, 32), (70, 37), (33, 17), (1, 1), (64, 5)])
def test_pack_transposed_strips_stacks_each_strip_of_rows_transposed(rng, dtype, n_rows, n_cols):
    # whole tiles, a row too short for one (37, 17, 5), strips of rows past a whole tile (10, 70,
    # 33, 1)
    width = 2 * lanes(np.empty(0, dtype))
    src = rng.normal(size=(n_rows, n_cols)).astype(dtype)
    n_strips = -(-n_rows // width)
    S = np.full((n_strips * n_cols, width), np.nan, dtype)
    pack_transposed_strips(src, 0, n_strips, S)
    assert_array_equal(S, _expected_strips(np.ascontiguousarray(src.T), width))


@pytest.mark.parametrize("dtype", DTYPES)
def test_pack_transposed_strips_writes_only_its_strips(rng, dtype):
    width = 2 * lanes(np.empty(0, dtype))
    src = rng.normal(size=(3 * width - 3, 19)).astype(dtype)  # 3 strips, the last ragged
    S = np.full((3 * 19, width), np.nan, dtype)
    pack_transposed_strips(src, 1, 3, S)
    expected = _expected_strips(np.ascontiguousarray(src.T), width)
    expected[:19] = np.nan
    assert_array_equal(S, expected)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k0", [0, 3, 8])
def test_down_reads_a_column_and_repeats_the_last_row(dtype, k0):
    rows = block_rows()
    X = np.arange(10 * 3, dtype=dtype).reshape(10, 3)
    out = np.full(rows, np.nan, dtype)
    _down_column(X, k0, 1, out)
    assert_array_equal(out, X[np.minimum(np.arange(k0, k0 + rows), 9), 1])
