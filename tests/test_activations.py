"""The activation row passes (the matrix kernels' f and f') equal their NumPy twins, and stay finite and silent at extreme inputs."""

import numpy as np
import pytest
from conftest import assert_equivalent, DTYPES, HIDDEN, LAYER_SHAPES, OUTPUTS
from numpy.testing import assert_allclose, assert_array_equal

from nbbp import reference
from nbbp.activations import ACTIVATIONS, activate_rows, times_derivative_rows


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
