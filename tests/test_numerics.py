"""Numerical edge cases of whole networks: saturated deep networks, whose gradients vanish but
stay finite, and float32 training that follows float64's loss curve. (Extreme logits and
outputs of exactly 0 and 1 are in test_losses.py; 1-sample batches and 1-neuron layers in the
kernel tests' LAYER_SHAPES.) pytest turns every warning into an error, so no RuntimeWarning
escapes these either."""

import numpy as np
import pytest
from conftest import assert_equivalent
from numpy.testing import assert_allclose

import nbbp
from nbbp import reference
from nbbp.datasets import spirals

DEPTH = 20


# Biases that put every hidden neuron deep in the flat part of its activation: sigmoid'(12) =
# 6e-6 and tanh'(6) = 2.5e-5. Not tanh at 12: its derivative 1 - a^2 at a = 1 - 7.6e-11 keeps
# only 6 of 16 digits, and 20 layers compound one ulp between Numba's and NumPy's tanh to a
# relative 1.7e-4 (measured), so the comparison below would test tanh's conditioning.
SATURATING_BIAS = {"sigmoid": 12.0, "tanh": 6.0}


def saturated_network(activation, dtype, rng):
    """A 20-hidden-layer network whose every hidden neuron is saturated."""
    net = nbbp.Network([8] + [16] * DEPTH + [3], activation=activation, seed=0, dtype=dtype)
    bias = SATURATING_BIAS[activation]
    for b in net.biases[:-1]:
        b[...] = rng.choice([-bias, bias], size=b.shape)
    X = rng.normal(size=(64, 8))
    y = rng.integers(0, 3, size=64)
    return net, X, y


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
def test_saturated_deep_gradients_vanish_but_stay_finite(activation, dtype, rng):
    net, X, y = saturated_network(activation, dtype, rng)
    dW, db = net.gradients(X, y)
    norms = [float(np.linalg.norm(d)) for d in dW]
    assert all(np.isfinite(d).all() for d in dW + db)
    # The output layer still learns; each saturated layer shrinks delta by f'(z) ~ 1e-5 or less.
    assert norms[-1] > 0.1
    assert norms[0] < 1e-60 * norms[-1]
    assert norms[DEPTH - 1] < 1e-3 * norms[-1]
    # Through the vanishing range the kernels still equal the reference, relatively (float64
    # reaches 1e-100 without underflow; float32 underflows to exactly 0 in both). The derivative
    # of a saturated neuron loses digits to 1 - a, and 20 layers compound them: measured 3e-9.
    activations = [activation] * DEPTH + ["softmax"]
    Y = np.eye(3)[y]
    dW_ref, _db_ref = reference.backprop(list(net.weights), list(net.biases),
                                         [None] * (DEPTH + 1), X.astype(dtype), Y.astype(dtype),
                                         activations, "cross_entropy")
    for l in range(DEPTH + 1):
        scale = float(np.max(np.abs(dW_ref[l]), initial=0.0))
        if dtype == np.float64 and scale > 0:
            assert_allclose(dW[l] / scale, dW_ref[l] / scale, rtol=1e-7, atol=1e-12)
        else:
            assert_equivalent(dW[l], dW_ref[l], dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
def test_saturated_deep_network_trains_without_nan(activation, dtype, rng):
    net, X, y = saturated_network(activation, dtype, rng)
    first = net.weights[0].copy()
    history = net.fit(X, y, epochs=5, batch_size=16, learning_rate=0.1, optimizer="adam")
    assert np.all(np.isfinite(history.loss))
    assert history.loss[-1] < history.loss[0]
    assert all(np.isfinite(g).all() for g in history.grad_norm)
    assert history.grad_norm[-1][0] < 1e-30 * history.grad_norm[-1][-1]
    assert all(np.isfinite(W).all() for W in net.weights)
    # Adam divides by sqrt(v) + eps: a vanished gradient moves a weight by ~0, never by NaN.
    assert np.all(np.abs(net.weights[0] - first) <= 0.5)


def blobs(rng):
    """4 classes from two linear rules on 10 features: a smooth problem that relu learns fully."""
    X = rng.normal(size=(2000, 10))
    y = (X[:, :4] @ rng.normal(size=4) > 0).astype(np.int64) + 2 * (X[:, 4] > 0)
    return X, y


def sine(rng):
    x = np.linspace(-3, 3, 500)[:, None]
    return x, np.sin(2 * x)


def loss_curves(X, y, epochs, **network_and_fit):
    fit = {k: network_and_fit.pop(k) for k in ("optimizer", "learning_rate")}
    curves, scores = {}, {}
    for dtype in (np.float64, np.float32):
        net = nbbp.Network(**network_and_fit, seed=3, dtype=dtype)
        curves[dtype] = np.array(net.fit(X, y, epochs=epochs, batch_size=32, **fit).loss)
        scores[dtype] = net.score(X, y)
    return curves[np.float64], curves[np.float32], scores


@pytest.mark.parametrize("problem, sizes, activation, output, loss, optimizer, learning_rate", [
    (blobs, [10, 32, 32, 4], "relu", "softmax", "cross_entropy", "adam", 0.001),
    (blobs, [10, 32, 32, 4], "relu", "softmax", "cross_entropy", "momentum", 0.01),
    (sine, [1, 32, 32, 1], "tanh", "identity", "squared_error", "adam", 0.003),
])
def test_float32_loss_curve_follows_float64_for_200_epochs(problem, sizes, activation, output,
                                                          loss, optimizer, learning_rate):
    # Measured: the curves differ by at most 5.4e-5 of the first epoch's loss over 200 epochs,
    # while the loss falls by a factor of 1000 or more.
    X, y = problem(np.random.default_rng(5))
    loss64, loss32, scores = loss_curves(X, y, 200, sizes=sizes, activation=activation,
                                         output=output, loss=loss, optimizer=optimizer,
                                         learning_rate=learning_rate)
    assert loss64[-1] < 1e-2 * loss64[0]
    assert np.max(np.abs(loss32 - loss64)) <= 1e-3 * loss64[0]
    assert abs(scores[np.float32] - scores[np.float64]) <= 1e-3


def test_float32_spirals_reach_float64s_loss():
    # Spirals train through a sharp drop whose timing float32's rounding shifts by a fraction of
    # an epoch (measured: up to 1.9e-2 of the first loss, around epoch 20); both then fit fully.
    X, y = spirals(1000, seed=1)
    loss64, loss32, scores = loss_curves(X, y, 200, sizes=[2, 64, 64, 3], activation="relu",
                                         output="softmax", loss="cross_entropy",
                                         optimizer="adam", learning_rate=0.003)
    assert np.max(np.abs(loss32 - loss64)) <= 5e-2 * loss64[0]
    assert loss32[-1] < 1e-2
    assert loss64[-1] < 1e-2
    assert scores[np.float32] == scores[np.float64] == 1.0
