"""The activation row passes (the matrix kernels' f and f') equal their NumPy twins, and stay
finite and silent at extreme inputs."""

import math

import numpy as np
import pytest
from conftest import DTYPES, HIDDEN, LAYER_SHAPES, OUTPUTS, assert_equivalent
from numba import njit
from numpy.testing import assert_allclose, assert_array_equal

from nbbp import reference
from nbbp.activations import ACTIVATIONS, activate_rows, exp, times_derivative_rows


@njit
def _exp_all(x, out):
    """out_p = exp(x_p), in a loop that LLVM vectorises, as the softmax's."""
    for p in range(x.shape[0]):
        out[p] = exp(x[p])


def activation_forward(Z, code, A):
    """a_ki = f(z_ki) for every row, by the row pass the matrix kernels call."""
    activate_rows(Z, np.int64(0), np.int64(Z.shape[0]), code, A)


def activation_derivative(Z, A, code, D):
    """d_ki = f'(z_ki): 1 times f'(z_ki), by the delta rule's row pass."""
    D[...] = 1
    times_derivative_rows(Z, A, np.int64(0), np.int64(Z.shape[0]), code, D)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", OUTPUTS)
@pytest.mark.parametrize("n_samples, _, n", LAYER_SHAPES)
def test_activation_forward_equals_reference(rng, name, n_samples, _, n, dtype):
    Z = (3 * rng.normal(size=(n_samples, n))).astype(dtype)
    A = np.empty_like(Z)
    activation_forward(Z, ACTIVATIONS[name], A)
    assert A.dtype == dtype
    assert_equivalent(A, reference.activation(name, Z), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", HIDDEN)
@pytest.mark.parametrize("n_samples, _, n", LAYER_SHAPES)
def test_activation_derivative_equals_reference(rng, name, n_samples, _, n, dtype):
    Z = (3 * rng.normal(size=(n_samples, n))).astype(dtype)
    A = reference.activation(name, Z)
    D = np.empty_like(Z)
    activation_derivative(Z, A, ACTIVATIONS[name], D)
    assert_equivalent(D, reference.activation_derivative(name, Z, A), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_saturates_to_exact_0_and_1(dtype):
    Z = np.array([[1000.0, -1000.0, 0.0]], dtype=dtype)
    A = np.empty_like(Z)
    activation_forward(Z, ACTIVATIONS["sigmoid"], A)
    assert_array_equal(A, np.array([[1.0, 0.0, 0.5]], dtype=dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_of_huge_and_equal_logits(dtype):
    Z = np.array([[1000.0, -1000.0, 1000.0], [7.0, 7.0, 7.0], [-1000.0, -1000.0, -1000.0]],
                 dtype=dtype)
    A = np.empty_like(Z)
    activation_forward(Z, ACTIVATIONS["softmax"], A)
    assert np.isfinite(A).all()
    assert_allclose(A, [[0.5, 0.0, 0.5], [1 / 3] * 3, [1 / 3] * 3], rtol=1e-6)
    assert_allclose(A.sum(axis=1), 1.0, rtol=1e-6)


def test_relu_and_leaky_relu_values_by_hand():
    Z = np.array([[-2.0, 0.0, 3.0]])
    A = np.empty_like(Z)
    D = np.empty_like(Z)
    activation_forward(Z, ACTIVATIONS["relu"], A)
    assert_array_equal(A, [[0.0, 0.0, 3.0]])
    activation_forward(Z, ACTIVATIONS["leaky_relu"], A)
    assert_array_equal(A, [[-0.02, 0.0, 3.0]])
    activation_derivative(Z, A, ACTIVATIONS["leaky_relu"], D)
    assert_array_equal(D, [[0.01, 0.01, 1.0]])


def test_nan_propagates_through_activations():
    Z = np.array([[np.nan, 1.0]])
    for name in OUTPUTS:
        A = np.zeros_like(Z)
        activation_forward(Z, ACTIVATIONS[name], A)
        assert np.isnan(A[0, 0]), name


def test_relu_of_infinities_and_nan_in_kernel_and_reference():
    Z = np.array([[-np.inf, np.inf, np.nan, -0.0, -3.0]])
    A = np.empty_like(Z)
    activation_forward(Z, ACTIVATIONS["relu"], A)
    expected = np.array([[0.0, np.inf, np.nan, 0.0, 0.0]])
    assert_array_equal(A, expected)
    assert_array_equal(reference.activation("relu", Z), expected)


def _ulps(got, expected):
    """|got - expected| in units in the last place of float32 at expected (exact: float64)."""
    spacing = np.spacing(np.abs(expected).astype(np.float32)).astype(np.float64)
    return np.abs(got.astype(np.float64) - expected) / spacing


def test_compiled_float32_exp_is_within_one_ulp_of_the_exact_value(rng):
    # every float32 from -104 (exp underflows to 0 there) to 89 (it overflows), on a grid, and
    # random ones in between; the subnormal results included
    x = np.concatenate([np.linspace(-104, 89, 400_001, dtype=np.float32),
                        rng.uniform(-104, 89, 200_000).astype(np.float32),
                        np.float32([-87.4, -88.7, -100.0, -103.9, 0.0, -0.0, 1e-30, -1e-30])])
    got = np.empty_like(x)
    _exp_all(x, got)
    exact = np.exp(x.astype(np.float64))
    finite = exact < np.finfo(np.float32).max
    assert _ulps(got[finite], exact[finite]).max() <= 1.0
    assert_array_equal(got[~finite], np.inf)


def test_compiled_float32_exp_of_special_values():
    x = np.float32([np.nan, np.inf, -np.inf, 89.0, 1e10, -1e10, -105.0, 88.72])
    got = np.empty_like(x)
    _exp_all(x, got)
    assert np.isnan(got[0])
    assert_array_equal(got[1:7], np.float32([np.inf, 0.0, np.inf, np.inf, 0.0, 0.0]))
    assert np.isfinite(got[7])


def test_compiled_exp_keeps_the_c_librarys_in_float64(rng):
    x = rng.uniform(-700, 700, 10_000)
    got = np.empty_like(x)
    _exp_all(x, got)
    assert_array_equal(got, [math.exp(v) for v in x])


@pytest.mark.parametrize("name", ["sigmoid", "exp"])  # softmax: test_activation_forward_...
def test_float32_activations_through_the_vectorised_exp_stay_close_to_float64(rng, name):
    Z = (20 * rng.normal(size=(64, 37))).astype(np.float32)
    A = np.empty_like(Z)
    activation_forward(Z, ACTIVATIONS[name], A)
    expected = reference.activation(name, Z.astype(np.float64))
    assert_allclose(A, expected, rtol=4 * np.finfo(np.float32).eps, atol=1e-38)
