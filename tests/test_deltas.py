"""Output and hidden deltas equal the reference, for every output/loss pair and activation."""

import numpy as np
import pytest
from conftest import (
    DTYPES,
    HIDDEN,
    LAYER_SHAPES,
    OUTPUT_LOSS_PAIRS,
    PACKED_DELTA_SHAPES,
    assert_equivalent,
    assert_sums_equivalent,
    random_targets,
)
from numpy.testing import assert_allclose

from nbbp import deltas, reference
from nbbp.activations import ACTIVATIONS
from nbbp.deltas import hidden_delta, output_delta
from nbbp.gradients import scratch_size
from nbbp.losses import LOSSES


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("output, loss", OUTPUT_LOSS_PAIRS)
@pytest.mark.parametrize("n_samples, _, n_out", LAYER_SHAPES)
def test_output_delta_equals_reference(rng, n_samples, _, n_out, output, loss, dtype):
    Z = rng.normal(size=(n_samples, n_out)).astype(dtype)
    O = reference.activation(output, Z)
    Y = random_targets(rng, n_samples, n_out, loss, dtype)
    delta = np.empty_like(Z)
    eps = dtype(np.finfo(dtype).eps)
    output_delta(Z, O, Y, ACTIVATIONS[output], LOSSES[loss], eps, delta)
    assert_equivalent(delta, reference.output_delta(Z, O, Y, output, loss), dtype)


@pytest.mark.parametrize("output, loss", [("softmax", "cross_entropy"), ("sigmoid", "log_loss"),
                                          ("identity", "squared_error")])
def test_matched_pairs_give_o_minus_y(rng, output, loss):
    Z = 50 * rng.normal(size=(7, 4))  # saturated outputs: o - y must still be exact
    O = reference.activation(output, Z)
    Y = random_targets(rng, 7, 4, loss, np.float64)
    delta = np.empty_like(Z)
    output_delta(Z, O, Y, ACTIVATIONS[output], LOSSES[loss], np.finfo(np.float64).eps, delta)
    assert_allclose(delta, O - Y, rtol=0, atol=0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", HIDDEN)
@pytest.mark.parametrize("n_samples, n_hidden, n_next", LAYER_SHAPES + PACKED_DELTA_SHAPES)
def test_hidden_delta_equals_reference(rng, parallel, n_samples, n_hidden, n_next, name, dtype):
    delta_next = rng.normal(size=(n_samples, n_next)).astype(dtype)
    W_next = rng.normal(size=(n_next, n_hidden)).astype(dtype)
    Z = rng.normal(size=(n_samples, n_hidden)).astype(dtype)
    A = reference.activation(name, Z)
    delta = np.full_like(Z, np.nan)
    scratch = np.full(scratch_size(n_samples, n_hidden, n_next), np.nan, dtype)
    hidden_delta(delta_next, W_next, Z, A, ACTIVATIONS[name], delta, parallel, scratch)
    # f'(z_kj) times a sum of n_next terms w_ij delta_next_ki; f' itself (1 - a^2, a (1 - a))
    # is within 2u of exact, written any way
    abs_terms = np.abs(delta_next.astype(np.float64)) @ np.abs(W_next.astype(np.float64))
    derivative = np.abs(reference.activation_derivative(name, Z, A).astype(np.float64))
    assert_sums_equivalent(delta, reference.hidden_delta(delta_next, W_next, Z, A, name),
                           derivative * abs_terms, n_next, dtype,
                           extra=2 * np.finfo(dtype).eps * abs_terms)


def test_hidden_delta_by_hand():
    # delta_j = f'(z_j) sum_i w_ij delta_i with identity f: [1*0.5 + 3*(-1), 2*0.5 + 4*(-1)]
    delta_next = np.array([[0.5, -1.0]])
    W_next = np.array([[1.0, 2.0], [3.0, 4.0]])
    Z = np.zeros((1, 2))
    delta = np.empty((1, 2))
    scratch = np.empty(scratch_size(1, 2, 2))
    hidden_delta(delta_next, W_next, Z, Z, ACTIVATIONS["identity"], delta, False, scratch)
    assert_allclose(delta, [[-2.5, -3.0]], rtol=0, atol=0)


def test_hidden_delta_with_too_small_a_scratch_buffer_raises():
    # float32: strips of 16, the widest, which scratch_size is computed for
    delta_next, W_next = np.ones((3, 2), np.float32), np.ones((2, 5), np.float32)
    Z, delta = np.zeros((3, 5), np.float32), np.zeros((3, 5), np.float32)
    with pytest.raises(IndexError, match="out of bounds"):
        hidden_delta(delta_next, W_next, Z, Z, ACTIVATIONS["identity"], delta, False,
                     np.empty(deltas.scratch_size(3, 5, 2) - 1, np.float32))
