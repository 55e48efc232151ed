"""The forward kernel equals the reference: z_i = sum_j w_ij a_j + b_i, a_i = f(z_i)."""

import numba
import numpy as np
import pytest
from conftest import assert_equivalent, DTYPES, LAYER_SHAPES, OUTPUTS
from numpy.testing import assert_allclose

from nbbp import reference
from nbbp.activations import ACTIVATIONS
from nbbp.forward import forward_layer, n_tiles, neuron_tile


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("has_bias", [True, False])
@pytest.mark.parametrize("name", OUTPUTS)
@pytest.mark.parametrize("n_samples, n_in, n_out", LAYER_SHAPES)
def test_forward_layer_equals_reference(rng, parallel, n_samples, n_in, n_out, name, has_bias, dtype):
    A_prev = rng.normal(size=(n_samples, n_in)).astype(dtype)
    W = rng.normal(size=(n_out, n_in)).astype(dtype)
    b = rng.normal(size=n_out).astype(dtype) if has_bias else np.zeros(0, dtype)
    Z = np.empty((n_samples, n_out), dtype)
    A = np.empty_like(Z)
    forward_layer(A_prev, W, b, has_bias, ACTIVATIONS[name], Z, A, parallel)
    zs, a_list = reference.forward([W], [b if has_bias else None], A_prev, [name])
    assert_equivalent(Z, zs[0], dtype)
    assert_equivalent(A, a_list[1], dtype)


def test_forward_layer_by_hand():
    # z = [1*1 + 2*(-1) + 0.5, 3*1 + 4*(-1) - 1] = [-0.5, -2]; tanh applied after.
    A_prev = np.array([[1.0, -1.0]])
    W = np.array([[1.0, 2.0], [3.0, 4.0]])
    b = np.array([0.5, -1.0])
    Z = np.empty((1, 2))
    A = np.empty((1, 2))
    forward_layer(A_prev, W, b, True, ACTIVATIONS["tanh"], Z, A, False)
    assert_allclose(Z, [[-0.5, -2.0]], rtol=0, atol=0)
    assert_allclose(A, np.tanh([[-0.5, -2.0]]), rtol=1e-15)


# Batches of one sample tile large enough for the thread pool: the neurons are cut into an even
# number of tiles (forward.neuron_tile): 33, 33, 33 and 29 at 32x784x128; 27, 27, 27 and 20 at
# 29x517x101.
BALANCED_SHAPES = [(32, 784, 128), (29, 517, 101)]


@pytest.mark.parametrize("n_samples, n_in, n_out, tiles", [(32, 784, 128, 4), (29, 517, 101, 4),
                                                           (32, 64, 32, 1), (64, 784, 128, 6),
                                                           (32, 512, 2048, 46)])
def test_thread_pool_batches_of_one_sample_tile_get_an_even_number_of_tiles(n_samples, n_in,
                                                                             n_out, tiles):
    width = neuron_tile.py_func(n_samples, n_in, n_out)
    assert n_tiles.py_func(n_samples, n_out, width) == tiles


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n_samples, n_in, n_out", BALANCED_SHAPES)
def test_forward_layer_in_even_tiles_equals_reference_and_ignores_threads(rng, n_samples, n_in,
                                                                          n_out, dtype):
    A_prev = rng.normal(size=(n_samples, n_in)).astype(dtype)
    W = rng.normal(size=(n_out, n_in)).astype(dtype)
    b = rng.normal(size=n_out).astype(dtype)
    zs, a_list = reference.forward([W], [b], A_prev, ["relu"])
    results = []
    saved = numba.get_num_threads()
    try:
        for threads in sorted({1, saved}):
            numba.set_num_threads(threads)
            Z = np.empty((n_samples, n_out), dtype)
            A = np.empty_like(Z)
            forward_layer(A_prev, W, b, True, ACTIVATIONS["relu"], Z, A, True)
            assert_equivalent(Z, zs[0], dtype)
            assert_equivalent(A, a_list[1], dtype)
            results.append(Z)
    finally:
        numba.set_num_threads(saved)
    for Z in results[1:]:
        np.testing.assert_array_equal(Z, results[0])


@pytest.mark.parametrize("dtype", DTYPES)
def test_forward_layer_rows_do_not_depend_on_the_tiling(rng, dtype):
    # 32 rows are cut into tiles of 33 neurons, 64 rows into tiles of 48: each z_ki is still
    # computed by the same code, so the first 32 rows agree bitwise.
    A_prev = rng.normal(size=(64, 784)).astype(dtype)
    W = rng.normal(size=(128, 784)).astype(dtype)
    b = rng.normal(size=128).astype(dtype)
    rows = []
    for n in (32, 64):
        Z = np.empty((n, 128), dtype)
        forward_layer(A_prev[:n], W, b, True, ACTIVATIONS["relu"], Z, np.empty_like(Z), True)
        rows.append(Z[:32])
    np.testing.assert_array_equal(rows[0], rows[1])
