"""Central-difference gradient checks, on the compiled kernels (through Network) and on the
NumPy reference, for every layer's weights and biases."""

import numpy as np
import pytest
from conftest import HIDDEN, OUTPUT_LOSS_PAIRS, random_targets, worked_example_network

import nbbp
from nbbp import reference

H = 1e-5
MAX_RELATIVE_ERROR = 1e-7
KINKED = ("relu", "leaky_relu")
SIZES = [4, 5, 3, 3]
N_SAMPLES = 6


def relative_error(numeric, analytic):
    scale = np.linalg.norm(numeric) + np.linalg.norm(analytic)
    return np.linalg.norm(numeric - analytic) / scale if scale > 0 else 0.0


def central_difference(loss_of, param, mask=None):
    """dE/dparam by (E(p + h) - E(p - h)) / 2h, perturbing ``param`` in place; a masked weight
    is no parameter, so its entry stays 0."""
    grad = np.zeros_like(param)
    for idx in np.ndindex(param.shape):
        if mask is not None and mask[idx] == 0:
            continue
        saved = param[idx]
        param[idx] = saved + H
        up = loss_of()
        param[idx] = saved - H
        down = loss_of()
        param[idx] = saved
        grad[idx] = (up - down) / (2 * H)
    return grad


def away_from_kinks(net, X, activations):
    """True when no relu-like pre-activation is within 1e-3 of 0, so that +-h never crosses it."""
    zs, _ = reference.forward(list(net.weights), list(net.biases), X, activations)
    return all(np.abs(z).min() > 1e-3 for z, name in zip(zs, activations) if name in KINKED)


def problem(hidden, output, loss, masks=None, bias=True):
    """A small network with nonzero biases and data that keeps relu pre-activations off 0."""
    for seed in range(50):
        rng = np.random.default_rng(seed)
        net = nbbp.Network(SIZES, activation=hidden, output=output, loss=loss, seed=seed,
                           masks=masks, bias=bias)
        for b in net.biases:
            if b is not None:
                b[...] = rng.normal(scale=0.5, size=b.shape)
        X = rng.normal(size=(N_SAMPLES, SIZES[0]))
        Y = random_targets(rng, N_SAMPLES, SIZES[-1], loss, np.float64)
        activations = [*net.activation, output]
        if away_from_kinks(net, X, activations):
            return net, X, Y, activations
    raise AssertionError("no seed kept the pre-activations away from the relu kink")


def check_kernels(net, X, Y):
    dWs, dbs = net.gradients(X, Y)
    for l in range(net.n_layers):
        numeric = central_difference(lambda: net.loss(X, Y), net.weights[l], net.masks[l])
        assert relative_error(numeric, dWs[l]) < MAX_RELATIVE_ERROR, f"weights[{l}]"
        if net.biases[l] is not None:
            numeric = central_difference(lambda: net.loss(X, Y), net.biases[l])
            assert relative_error(numeric, dbs[l]) < MAX_RELATIVE_ERROR, f"biases[{l}]"


def check_reference(net, X, Y, activations):
    weights = [W.copy() for W in net.weights]
    biases = [None if b is None else b.copy() for b in net.biases]
    masks = list(net.masks)

    def loss_of():
        zs, a_list = reference.forward(weights, biases, X, activations)
        return reference.loss(zs[-1], a_list[-1], Y, activations[-1], net.loss_name)

    dWs, dbs = reference.backprop(weights, biases, masks, X, Y, activations, net.loss_name)
    for l in range(len(weights)):
        numeric = central_difference(loss_of, weights[l], masks[l])
        assert relative_error(numeric, dWs[l]) < MAX_RELATIVE_ERROR, f"weights[{l}]"
        if biases[l] is not None:
            assert (relative_error(central_difference(loss_of, biases[l]), dbs[l])
                    < MAX_RELATIVE_ERROR)


@pytest.mark.parametrize("output, loss", OUTPUT_LOSS_PAIRS)
@pytest.mark.parametrize("hidden", HIDDEN)
def test_kernel_gradients_match_central_differences(hidden, output, loss):
    net, X, Y, _ = problem(hidden, output, loss)
    check_kernels(net, X, Y)


@pytest.mark.parametrize("output, loss", OUTPUT_LOSS_PAIRS)
@pytest.mark.parametrize("hidden", HIDDEN)
def test_reference_gradients_match_central_differences(hidden, output, loss):
    net, X, Y, activations = problem(hidden, output, loss)
    check_reference(net, X, Y, activations)


def test_mixed_activations_masks_and_no_bias():
    rng = np.random.default_rng(3)
    masks = [rng.integers(0, 2, size=(SIZES[l + 1], SIZES[l])) for l in range(len(SIZES) - 1)]
    masks[1] = None
    net, X, Y, activations = problem(["tanh", "sigmoid"], "softmax", "cross_entropy", masks=masks,
                                     bias=[True, False, True])
    check_kernels(net, X, Y)
    check_reference(net, X, Y, activations)


def test_worked_example_gradients():
    net = worked_example_network()
    X, Y = np.array([[1.0, 0.0]]), np.array([[1.0]])
    check_kernels(net, X, Y)


def test_gradcheck_detects_a_wrong_gradient():
    # The check itself must be able to fail: a gradient off by 1e-4 in one entry is caught.
    net, X, Y, _ = problem("tanh", "sigmoid", "log_loss")
    dWs, _ = net.gradients(X, Y)
    numeric = central_difference(lambda: net.loss(X, Y), net.weights[0])
    wrong = dWs[0].copy()
    wrong[0, 0] += 1e-4
    assert relative_error(numeric, dWs[0]) < MAX_RELATIVE_ERROR
    assert relative_error(numeric, wrong) > MAX_RELATIVE_ERROR
