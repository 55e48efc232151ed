"""The forward kernel equals the reference: z_i = sum_j w_ij a_j + b_i, a_i = f(z_i)."""

import numba
import numpy as np
import pytest
from conftest import DTYPES, FORWARD_SHAPES, LAYER_SHAPES, OUTPUTS, assert_sums_equivalent
from numpy.testing import assert_allclose

from nbbp import reference
from nbbp._simd import STRIP_GROUP, strip_width, strips_per_group
from nbbp.activations import ACTIVATIONS
from nbbp.forward import forward_layer, scratch_size


def forward(A_prev, W, b, has_bias, code, Z, A, parallel):
    """forward_layer with a scratch buffer of its size, filled with NaN: a kernel that read
    scratch it had not written would show it."""
    scratch = np.full(scratch_size(A_prev.shape[0], W.shape[1], W.shape[0]), np.nan, Z.dtype)
    forward_layer(A_prev, W, b, has_bias, code, Z, A, parallel, scratch)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("has_bias", [True, False])
@pytest.mark.parametrize("name", OUTPUTS)
@pytest.mark.parametrize("n_samples, n_in, n_out", LAYER_SHAPES + FORWARD_SHAPES)
def test_forward_layer_equals_reference(rng, parallel, n_samples, n_in, n_out, name, has_bias,
                                        dtype):
    A_prev = rng.normal(size=(n_samples, n_in)).astype(dtype)
    # z of unit scale for exp, which overflows float32 from z = 88.7
    scale = 1 / np.sqrt(n_in) if name == "exp" else 1.0
    W = (scale * rng.normal(size=(n_out, n_in))).astype(dtype)
    b = rng.normal(size=n_out).astype(dtype) if has_bias else np.zeros(0, dtype)
    Z = np.empty((n_samples, n_out), dtype)
    A = np.empty_like(Z)
    forward(A_prev, W, b, has_bias, ACTIVATIONS[name], Z, A, parallel)
    zs, a_list = reference.forward([W], [b if has_bias else None], A_prev, [name])
    assert_forward_equivalent(Z, A, zs[0], a_list[1], A_prev, W, b if has_bias else None, dtype,
                              name)


def assert_forward_equivalent(Z, A, Z_ref, A_ref, A_prev, W, b, dtype, name=None):
    """z_ki within the error bound of a sum of n_in + 1 terms w_ij a_kj and b_i; a_ki = f(z_ki)
    within twice the largest bound of its row (every activation here but exp, softmax included,
    moves by at most twice the largest change of its row's z; exp(z + e) - exp(z) is about
    exp(z) e, so its bound is scaled by a_ki itself, and by e^2 for the rest of its series)."""
    abs_sum = np.abs(A_prev.astype(np.float64)) @ np.abs(W.astype(np.float64)).T
    if b is not None:
        abs_sum += np.abs(b)
    n_terms = A_prev.shape[1] + 1
    assert_sums_equivalent(Z, Z_ref, abs_sum, n_terms, dtype)
    row_max = np.max(abs_sum, axis=1, keepdims=True) if abs_sum.size else abs_sum
    bound = 2 * np.broadcast_to(row_max, abs_sum.shape)
    if name == "exp":
        bound = bound * np.exp(2.0) * np.maximum(np.abs(A_ref.astype(np.float64)), 1.0)
    assert_sums_equivalent(A, A_ref, bound, n_terms, dtype)


def test_forward_layer_by_hand():
    # z = [1*1 + 2*(-1) + 0.5, 3*1 + 4*(-1) - 1] = [-0.5, -2]; tanh applied after.
    A_prev = np.array([[1.0, -1.0]])
    W = np.array([[1.0, 2.0], [3.0, 4.0]])
    b = np.array([0.5, -1.0])
    Z = np.empty((1, 2))
    A = np.empty((1, 2))
    forward(A_prev, W, b, True, ACTIVATIONS["tanh"], Z, A, False)
    assert_allclose(Z, [[-0.5, -2.0]], rtol=0, atol=0)
    assert_allclose(A, np.tanh([[-0.5, -2.0]]), rtol=1e-15)


def test_forward_shapes_cover_ragged_strips_tiles_and_groups():
    for dtype in DTYPES:
        width = strip_width(np.empty(0, dtype))
        step = width // 2  # lanes
        assert any(n_out % width and n_in % step for _, n_in, n_out in FORWARD_SHAPES)
        assert any(-(-n_out // width) % STRIP_GROUP and strips_per_group(-(-n_out // width)) > 1
                   for _, _, n_out in FORWARD_SHAPES)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n_samples, n_in, n_out",
                         [(32, 784, 128), (29, 517, 101), (25, 1030, 2090)])
def test_forward_layer_on_the_thread_pool_equals_reference_and_ignores_threads(rng, n_samples,
                                                                               n_in, n_out, dtype):
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs 2 threads")
    A_prev = rng.normal(size=(n_samples, n_in)).astype(dtype)
    W = rng.normal(size=(n_out, n_in)).astype(dtype)
    b = rng.normal(size=n_out).astype(dtype)
    zs, a_list = reference.forward([W], [b], A_prev, ["relu"])
    results = []
    saved = numba.get_num_threads()
    try:
        for threads in (1, 2):
            numba.set_num_threads(threads)
            Z = np.empty((n_samples, n_out), dtype)
            A = np.empty_like(Z)
            forward(A_prev, W, b, True, ACTIVATIONS["relu"], Z, A, True)
            assert_forward_equivalent(Z, A, zs[0], a_list[1], A_prev, W, b, dtype)
            results.append(Z)
    finally:
        numba.set_num_threads(saved)
    assert len(results) == 2
    np.testing.assert_array_equal(results[1], results[0])


@pytest.mark.parametrize("dtype", DTYPES)
def test_forward_layer_rows_do_not_depend_on_the_batch(rng, dtype):
    # Each z_ki is one sum in one order, whatever block its sample falls in: the first 32 rows of
    # a batch of 64 agree bitwise with a batch of 32.
    A_prev = rng.normal(size=(64, 784)).astype(dtype)
    W = rng.normal(size=(128, 784)).astype(dtype)
    b = rng.normal(size=128).astype(dtype)
    rows = []
    for n in (32, 64):
        Z = np.empty((n, 128), dtype)
        forward(A_prev[:n], W, b, True, ACTIVATIONS["relu"], Z, np.empty_like(Z), True)
        rows.append(Z[:32])
    np.testing.assert_array_equal(rows[0], rows[1])
