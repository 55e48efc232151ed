"""Gradient kernel equals the reference: dE/dw_ij = mean_k delta_ki a_kj,
dE/db_i = mean_k delta_ki."""

import numpy as np
import pytest
from conftest import (
    DTYPES,
    FORWARD_SHAPES,
    LAYER_SHAPES,
    PACKED_DELTA_SHAPES,
    PACKED_SHAPES,
    assert_sums_equivalent,
    sum_error_bound,
)
from numpy.testing import assert_allclose, assert_array_equal

from nbbp import reference
from nbbp._simd import PACK_MIN_ROWS, STRIP_GROUP, block_rows, lanes, strip_max, strip_width
from nbbp.gradients import scratch_size, weight_gradients


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("l2", [0.0, 0.3])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("has_bias", [True, False])
@pytest.mark.parametrize("n_samples, n_in, n_out", LAYER_SHAPES + PACKED_SHAPES)
def test_weight_gradients_equal_reference(rng, parallel, n_samples, n_in, n_out, has_bias, masked,
                                          l2, dtype):
    delta = rng.normal(size=(n_samples, n_out)).astype(dtype)
    A_prev = rng.normal(size=(n_samples, n_in)).astype(dtype)
    mask = (rng.integers(0, 2, size=(n_out, n_in)).astype(dtype) if masked
            else np.zeros((0, 0), dtype))
    W = rng.normal(size=(n_out, n_in)).astype(dtype)
    if masked:
        W[mask == 0] = 0
    dW = np.full((n_out, n_in), np.nan, dtype)
    db = np.full(n_out, np.nan, dtype)
    scratch = np.full(scratch_size(n_samples, n_in, n_out), np.nan, dtype)
    sum_sq = weight_gradients(delta, A_prev, W, dtype(l2), mask, masked, dW, db, has_bias,
                              parallel, scratch)
    dW_ref, db_ref = reference.gradients(delta, A_prev, mask if masked else None, W, l2)
    # (1/n) times a sum of n terms delta_ki a_kj, plus l2 w_ij
    abs_sum = (np.abs(delta.astype(np.float64)).T @ np.abs(A_prev.astype(np.float64)) / n_samples
               + l2 * np.abs(W.astype(np.float64)))
    assert_sums_equivalent(dW, dW_ref, abs_sum, n_samples + 1, dtype)
    # the sum of squares, for ||dE/dW||, each row once (a block's rows past n_out are not
    # counted): each dW_ij^2 moves by at most 2 |dW_ij| times its bound, and the sum of
    # n_out n_in squares has its own
    g = np.abs(dW_ref.astype(np.float64))
    square_bound = np.sum(2 * g * sum_error_bound(abs_sum, n_samples + 1, dtype) + g * g * 1e-6
                          * (dtype == np.float32))
    assert_sums_equivalent(sum_sq, np.sum(g ** 2), np.sum(g ** 2) + square_bound,
                           dW.size + 1, dtype)
    if masked:
        assert_array_equal(dW[mask == 0], 0)
    if has_bias:
        assert_sums_equivalent(db, db_ref, np.abs(delta.astype(np.float64)).sum(axis=0)
                               / n_samples, n_samples, dtype)
    else:
        assert np.isnan(db).all()  # untouched when the layer has no bias


def test_the_shapes_tested_take_every_packed_path():
    # The equivalence tests above pass scratch buffers of exactly scratch_size: these shapes make
    # the kernel read A_prev in place (below 64 neurons) and pack its strips (64 up), each with
    # a last strip past n_in padded, and pack delta into panels of block_rows columns with a
    # last panel that repeats its last column; the delta rule packs strips of W from 64 samples
    # up. Strips are strip_width wide: 2 vectors of the host profile, per dtype.
    shapes = LAYER_SHAPES + PACKED_SHAPES
    rows = block_rows()
    widths = [strip_width(np.empty(0, dtype)) for dtype in DTYPES]
    for w in widths:
        assert any(n_out < PACK_MIN_ROWS and n_in >= w for _, n_in, n_out in shapes)
        assert any(n_out < PACK_MIN_ROWS and n_in > w and n_in % w for _, n_in, n_out in shapes)
        assert any(n_out >= PACK_MIN_ROWS and n_in % w for _, n_in, n_out in shapes)
        assert any(n >= PACK_MIN_ROWS and n_in % w for n, n_in, _ in PACKED_SHAPES)
    assert any(n_out % rows and n_out > rows for _, _, n_out in shapes)
    assert any(n % rows and n > rows for n, _, _ in PACKED_DELTA_SHAPES)
    # strips in groups (in the dtype with the narrower strips), the last group short, its last
    # strip ragged
    w = min(widths)
    grouped = 16 * STRIP_GROUP
    assert any(n_out >= PACK_MIN_ROWS and n_in > w * grouped and n_in % w and
               -(-n_in // w) % STRIP_GROUP for _, n_in, n_out in PACKED_SHAPES)
    assert any(n >= PACK_MIN_ROWS and n_in > w * grouped and n_in % w and
               -(-n_in // w) % STRIP_GROUP for n, n_in, _ in PACKED_DELTA_SHAPES)


def test_the_shapes_tested_take_both_kinds_of_last_strip():
    # A last strip that one vector holds is computed one vector wide (zeros_narrow), one of more
    # columns two vectors wide: each kernel's equivalence tests must meet both, in each dtype,
    # under the host's profile. The strip runs over n_out in the forward, n_hidden in the delta
    # rule, n_in in the gradients.
    forward = [n_out for _, _, n_out in LAYER_SHAPES + FORWARD_SHAPES]
    deltas = [n_hidden for _, n_hidden, _ in LAYER_SHAPES + PACKED_DELTA_SHAPES]
    gradients = [n_in for _, n_in, _ in LAYER_SHAPES + PACKED_SHAPES]
    for dtype in DTYPES:
        width, vector = strip_width(np.empty(0, dtype)), lanes(np.empty(0, dtype))
        for widths in (forward, deltas, gradients):
            assert any(0 < n % width <= vector for n in widths)
            assert any(n % width > vector for n in widths)


def _padded(n):
    return strip_max() * -(-n // strip_max())


@pytest.mark.parametrize("n_samples, n_in, n_out", [(63, 100, 63), (10, 100, 4), (3, 5, 1),
                                                    (64, 100, 512), (600, 100, 511),
                                                    (2, 1000, 40)])
def test_scratch_size_is_the_largest_packing(n_samples, n_in, n_out):
    rows, width = block_rows(), strip_max()
    # per sample, strips of A_prev (n_in rounded up to whole strips) and delta in panels of
    # block_rows columns; one strip of dW per neuron; a sum of squares per float64 strip
    gradients = (n_samples * (_padded(n_in) + rows * -(-n_out // rows)) + n_out * width
                 + -(-n_in // (width // 2)))
    # the delta rule's packed W_next (n_out x n_in rounded up) and one strip of delta per sample
    delta_rule = n_out * _padded(n_in) + n_samples * width
    # the forward's strips of W transposed (n_in x n_out rounded up) and a block of one strip of Z
    forward = n_in * _padded(n_out) + rows * width
    assert scratch_size(n_samples, n_in, n_out) == max(gradients, delta_rule, forward)


def test_weight_gradients_with_too_small_a_scratch_buffer_raises():
    # 3 inputs: one strip in either dtype, so the last sum of squares ends the buffer in float32
    # as in float64, under every profile
    delta, A_prev = np.ones((3, 2), np.float32), np.ones((3, 3), np.float32)
    W, dW, db = np.zeros((2, 3), np.float32), np.zeros((2, 3), np.float32), np.zeros(2, np.float32)
    rows, width = block_rows(), strip_max()
    need = 3 * (_padded(3) + rows * -(-2 // rows)) + 2 * width + -(-3 // (width // 2))
    assert need <= scratch_size(3, 3, 2)  # the gradients' own share of the layer's scratch
    with pytest.raises(IndexError, match="out of bounds"):
        weight_gradients(delta, A_prev, W, np.float32(0), W, False, dW, db, True, False,
                         np.empty(need - 1, np.float32))


def test_weight_gradients_by_hand():
    # Two samples: dW = (d1 a1^T + d2 a2^T) / 2 = ([[1*2, 1*3]] + [[-3*1, -3*0]]) / 2
    delta = np.array([[1.0], [-3.0]])
    A_prev = np.array([[2.0, 3.0], [1.0, 0.0]])
    dW = np.empty((1, 2))
    db = np.empty(1)
    W = np.array([[10.0, -2.0]])
    weight_gradients(delta, A_prev, W, 0.0, np.zeros((0, 0)), False, dW, db, True, False,
                     np.empty(scratch_size(2, 2, 1)))
    assert_array_equal(dW, [[-0.5, 1.5]])
    assert_array_equal(db, [-1.0])
    # with l2 = 0.1 the penalty's gradient lambda w adds [1.0, -0.2]; the bias is not penalised
    weight_gradients(delta, A_prev, W, 0.1, np.zeros((0, 0)), False, dW, db, True, False,
                     np.empty(scratch_size(2, 2, 1)))
    assert_allclose(dW, [[0.5, 1.3]], rtol=1e-15)
    assert_array_equal(db, [-1.0])
