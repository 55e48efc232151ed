"""nbbp.gradcheck: small errors for backpropagation done right, large ones for a wrong gradient,
the network left as it was, and bad arguments refused."""

import numpy as np
import pytest
from numpy.testing import assert_array_equal

import nbbp

NETWORKS = {
    "dense": dict(sizes=[4, 6, 3]),
    "sigmoid, squared error": dict(sizes=[4, 5, 2], activation="sigmoid", output="identity",
                                   loss="squared_error"),
    "batch-normalised": dict(sizes=[4, 5, 5, 3], batch_norm=True),
    "residual": dict(sizes=[4, 5, 5, 3], activation="tanh", residual=[(1, 2)]),
    "masked": dict(sizes=[4, 6, 3], activation="tanh", masks=[np.eye(6, 4), None]),
}


def batch(net, rng, n=9):
    X = rng.normal(size=(n, net.sizes[0]))
    if net.loss_name == "cross_entropy":
        return X, rng.integers(0, net.sizes[-1], n)
    return X, rng.normal(size=(n, net.sizes[-1]))


@pytest.mark.parametrize("kind", list(NETWORKS))
def test_backpropagation_passes(rng, kind):
    net = nbbp.Network(seed=3, **NETWORKS[kind])
    X, y = batch(net, rng)
    before = net._theta.copy(), net._stats.copy()
    worst = nbbp.gradcheck(net, X, y)
    assert len(worst) == net.n_layers
    assert max(worst) < 1e-6, worst
    assert_array_equal(net._theta, before[0])
    assert_array_equal(net._stats, before[1])


def test_a_wrong_gradient_is_caught(rng, monkeypatch):
    net = nbbp.Network([4, 6, 3], seed=3)
    X, y = batch(net, rng)
    real = nbbp.Network.gradients

    def off_by_a_little(self, X, y):
        grads = real(self, X, y)
        grads.weights[1][0, 0] *= 1.01  # one weight of the last layer, 1% off
        return grads

    monkeypatch.setattr(nbbp.Network, "gradients", off_by_a_little)
    worst = nbbp.gradcheck(net, X, y)
    assert worst[0] < 1e-6
    assert worst[1] > 5e-3


def test_a_sample_is_seeded_and_checks_fewer(rng, monkeypatch):
    net = nbbp.Network([4, 30, 3], seed=1)
    X, y = batch(net, rng)
    losses = []  # which parameters were moved shows in the losses they gave
    real = nbbp.Network.loss

    def recorded(*args, **kwargs):
        losses.append(real(*args, **kwargs))
        return losses[-1]

    monkeypatch.setattr(nbbp.Network, "loss", recorded)
    runs = []
    for seed in (2, 2, 3):
        losses.clear()
        assert max(nbbp.gradcheck(net, X, y, sample=7, seed=seed)) < 1e-6
        assert len(losses) == 2 * 7 * net.n_layers  # two evaluations per sampled parameter
        runs.append(list(losses))
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


@pytest.mark.parametrize("call, error, match", [
    (lambda net, X, y: nbbp.gradcheck(net.weights, X, y), TypeError, "nbbp.Network"),
    (lambda net, X, y: nbbp.gradcheck(nbbp.Network([4, 6, 3], dtype=np.float32), X, y),
     ValueError, "float64"),
    (lambda net, X, y: nbbp.gradcheck(net, X, y, eps=0), ValueError, "eps"),
    (lambda net, X, y: nbbp.gradcheck(net, X, y, sample=0), ValueError, "sample"),
    (lambda net, X, y: nbbp.gradcheck(net, X[:, :3], y), ValueError, "features"),
])
def test_bad_arguments_are_refused(rng, call, error, match):
    net = nbbp.Network([4, 6, 3])
    X, y = batch(net, rng)
    with pytest.raises(error, match=match):
        call(net, X, y)
