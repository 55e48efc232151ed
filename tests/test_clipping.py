"""Gradient clipping by global norm (``fit(clip_norm=c)``), as torch.nn.utils.clip_grad_norm_:
inside the compiled epoch, equal to torch and to the reference, bitwise a no-op when no batch's
norm reaches c, and refused when not a positive number."""

import numpy as np
import pytest
from conftest import torch_twin
from numpy.testing import assert_allclose, assert_array_equal

import nbbp
from nbbp import reference


def data(rng, n=40):
    return rng.normal(size=(n, 4)) * 3, rng.integers(0, 3, size=n)


@pytest.mark.parametrize("clip_norm", [0.05, 0.5, 100.0])
def test_clipped_sgd_and_adam_equal_torch(rng, clip_norm):
    torch = pytest.importorskip("torch")
    X, y = data(rng)
    for optimizer in ("sgd", "adam"):
        net = nbbp.Network([4, 8, 3], activation="tanh", seed=5)
        model = torch_twin(torch, net, torch.nn.Linear(4, 8), torch.nn.Tanh(),
                           torch.nn.Linear(8, 3))
        make = torch.optim.SGD if optimizer == "sgd" else torch.optim.Adam
        theirs = make(model.parameters(), lr=0.1)
        norms = []
        for start in range(0, 40, 8):
            theirs.zero_grad()
            torch.nn.functional.cross_entropy(model(torch.from_numpy(X[start:start + 8])),
                                              torch.from_numpy(y[start:start + 8])).backward()
            norms.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm)))
            theirs.step()
        net.fit(X, y, epochs=1, batch_size=8, learning_rate=0.1, optimizer=optimizer,
                shuffle=False, clip_norm=clip_norm)
        for got, layer in zip(net.weights, (model[0], model[2])):
            assert_allclose(got, layer.weight.detach().numpy(), rtol=1e-10, atol=1e-12)
        for got, layer in zip(net.biases, (model[0], model[2])):
            assert_allclose(got, layer.bias.detach().numpy(), rtol=1e-10, atol=1e-12)
        clipped = sum(norm > clip_norm for norm in norms)
        assert clipped == (0 if clip_norm == 100.0 else 5)  # the cases do what they say


def test_clipping_with_l2_and_masks_equals_the_reference(rng):
    X, y = data(rng)
    mask = (np.arange(32).reshape(8, 4) % 3 != 0)
    net = nbbp.Network([4, 8, 3], seed=2, masks=[mask, None])
    Y = np.eye(3)[y]
    W_ref, b_ref, losses = reference.train(
        [W.copy() for W in net.weights], [b.copy() for b in net.biases],
        [mask.astype(float), None], X, Y, ["relu", "softmax"], "cross_entropy", epochs=2,
        batch_size=8, learning_rate=0.1, l2=0.01, clip_norm=0.3)
    history = net.fit(X, y, epochs=2, batch_size=8, learning_rate=0.1, l2=0.01, shuffle=False,
                      clip_norm=0.3)
    for got, expected in zip(net.weights + net.biases, W_ref + b_ref):
        assert_allclose(got, expected, rtol=1e-11, atol=1e-13)
    assert_allclose(history.loss, losses, rtol=1e-12)
    assert_array_equal(net.weights[0][~mask], 0)


def test_a_norm_below_the_limit_changes_nothing(rng):
    X, y = data(rng)
    a, b = nbbp.Network([4, 8, 3], seed=1), nbbp.Network([4, 8, 3], seed=1)
    a.fit(X, y, epochs=2, batch_size=8, shuffle=False)
    b.fit(X, y, epochs=2, batch_size=8, shuffle=False, clip_norm=1e6)
    assert_array_equal(a._theta, b._theta)


@pytest.mark.parametrize("clip_norm", [0, -1.0, float("nan"), float("inf"), "1", True])
def test_bad_clip_norms_are_refused_and_nothing_changes(rng, clip_norm):
    X, y = data(rng)
    net = nbbp.Network([4, 8, 3])
    before = net._theta.copy()
    with pytest.raises((ValueError, TypeError), match="clip_norm"):
        net.fit(X, y, epochs=1, clip_norm=clip_norm)
    assert_array_equal(net._theta, before)


def test_clipping_covers_batch_normalisation_as_torch(rng):
    # gamma and beta count in the norm and are scaled with the rest
    torch = pytest.importorskip("torch")
    net = nbbp.Network([4, 6, 3], activation="tanh", batch_norm=True, seed=3)
    X, y = data(rng, n=20)
    model = torch_twin(torch, net, torch.nn.Linear(4, 6), torch.nn.BatchNorm1d(6),
                       torch.nn.Tanh(), torch.nn.Linear(6, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for start in range(0, 20, 5):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(torch.from_numpy(X[start:start + 5])),
                                          torch.from_numpy(y[start:start + 5])).backward()
        assert torch.nn.utils.clip_grad_norm_(model.parameters(), 0.1) > 0.1
        optimizer.step()
    net.fit(X, y, epochs=1, batch_size=5, learning_rate=0.1, shuffle=False, clip_norm=0.1)
    bn = model[1]
    for got, expected in ((net.weights[0], model[0].weight), (net.weights[1], model[3].weight),
                          (net.biases[0], model[0].bias), (net.gammas[0], bn.weight),
                          (net.betas[0], bn.bias), (net.running_means[0], bn.running_mean)):
        assert_allclose(got, expected.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_float32_clipping_follows_float64(rng):
    X, y = data(rng)
    runs = []
    for dtype in (np.float64, np.float32):
        net = nbbp.Network([4, 8, 3], seed=1, dtype=dtype)
        net.fit(X, y, epochs=2, batch_size=8, shuffle=False, clip_norm=0.05, optimizer="momentum")
        runs.append(net._theta.astype(np.float64))
    assert_allclose(runs[1], runs[0], rtol=1e-4, atol=1e-5)
