"""The Poisson loss with its log link: output="exp", loss="poisson", J = sum_i y_i log(y_i / o_i)
- y_i + o_i (half the Poisson deviance, scikit-learn's), dJ/dz = o - y. The kernels against the
reference are in the shared output/loss grids (test_losses, test_deltas, test_gradcheck,
test_properties); here: a hand-worked value, torch, training, and bad targets."""

import numpy as np
import pytest
from numpy.testing import assert_allclose

import nbbp


def counts(rng, n=40):
    X = rng.normal(size=(n, 3))
    return X, rng.poisson(np.exp(0.5 * X[:, :2]))


def test_poisson_by_hand():
    # one input, identity weights: z = x, o = exp(x). At x = log 2, y = 3: J = 3 log(3/2) - 3 + 2
    # = 0.2164; dJ/dz = o - y = -1, so dE/dW = -1 * x = -log 2 and dE/db = -1.
    net = nbbp.Network([1, 1], output="exp", loss="poisson", bias=True)
    net.weights[0][...] = 1.0
    net.biases[0][...] = 0.0
    X, y = [[np.log(2)]], [3.0]
    assert net.loss(X, y) == pytest.approx(3 * np.log(1.5) - 1, rel=1e-14)
    assert_allclose(net.forward(X), [[2.0]], rtol=1e-15)
    dWs, dbs = net.gradients(X, y)
    assert_allclose(dWs[0], [[-np.log(2)]], rtol=1e-14)
    assert_allclose(dbs[0], [-1.0], rtol=1e-14)
    assert net.loss(X, [0.0]) == pytest.approx(2.0, rel=1e-14)  # y = 0: J = o


def test_poisson_gradients_equal_torch(rng):
    torch = pytest.importorskip("torch")
    X, Y = counts(rng)
    net = nbbp.Network([3, 6, 2], activation="tanh", output="exp", loss="poisson", seed=2)
    Ws = [torch.tensor(W, requires_grad=True) for W in net.weights]
    bs = [torch.tensor(b, requires_grad=True) for b in net.biases]
    z = torch.tanh(torch.from_numpy(X) @ Ws[0].T + bs[0]) @ Ws[1].T + bs[1]
    # torch's PoissonNLLLoss(log_input=True) is exp(z) - y z, the deviance less y log y - y
    target = torch.from_numpy(Y.astype(float))
    loss = torch.nn.PoissonNLLLoss(log_input=True, reduction="sum")(z, target) / len(X)
    loss.backward()
    dWs, dbs = net.gradients(X, Y)
    for l in range(2):
        assert_allclose(dWs[l], Ws[l].grad.numpy(), rtol=1e-10, atol=1e-14)
        assert_allclose(dbs[l], bs[l].grad.numpy(), rtol=1e-10, atol=1e-14)
    y = Y.astype(float)
    constant = np.sum(np.where(y > 0, y * np.log(np.where(y > 0, y, 1)), 0) - y) / len(X)
    assert net.loss(X, Y) == pytest.approx(loss.item() + constant, rel=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_poisson_training_learns_the_rates(rng, dtype):
    X, Y = counts(rng, 400)
    net = nbbp.Network([3, 8, 2], activation="tanh", output="exp", loss="poisson", dtype=dtype,
                       seed=0)
    history = net.fit(X, Y, epochs=60, batch_size=32, learning_rate=0.01, optimizer="adam")
    rates = np.exp(0.5 * X[:, :2])
    # down to about the deviance of the true rates, the noise of the counts themselves
    y = Y.astype(float)
    true_loss = np.mean(np.sum(np.where(y > 0, y * np.log(np.where(y > 0, y, 1) / rates), 0)
                               - y + rates, axis=1))
    assert history.loss[-1] < history.loss[0]
    assert history.loss[-1] < 1.1 * true_loss
    assert np.corrcoef(net.predict(X).ravel(), rates.ravel())[0, 1] > 0.9
    assert net.predict(X).dtype == dtype
    assert np.all(net.predict(X) > 0)


@pytest.mark.parametrize("kwargs, message", [
    (dict(output="identity"), (r"loss 'poisson' needs its log link, o = exp\(z\) > 0: output "
                               r"must be one of \['exp'\]; got 'identity'")),
    (dict(activation="exp"), r"activation must be one of"),
])
def test_poisson_needs_the_exp_output(kwargs, message):
    with pytest.raises(ValueError, match=message):
        nbbp.Network([3, 4, 1], **{"output": "exp", "loss": "poisson", **kwargs})


def test_negative_counts_are_refused(rng):
    X, Y = counts(rng)
    net = nbbp.Network([3, 4, 2], output="exp", loss="poisson")
    Y = Y.astype(float)
    Y[5, 1] = -1
    for call in (lambda: net.fit(X, Y, epochs=1), lambda: net.loss(X, Y)):
        with pytest.raises(ValueError, match=r"y for poisson must be >= 0 \(counts, rates\); "
                                             r"got -1.0"):
            call()


def test_exp_output_with_squared_error(rng):
    # exp is an output for squared_error too (positive targets): f'(z) = o through the Jacobian
    X, Y = counts(rng)
    net = nbbp.Network([3, 4, 2], output="exp", loss="squared_error")
    history = net.fit(X, Y, epochs=20, learning_rate=0.01, optimizer="adam", batch_size=8)
    assert history.loss[-1] < history.loss[0]


def test_poisson_has_no_probabilities(rng):
    X, _Y = counts(rng)
    net = nbbp.Network([3, 4, 2], output="exp", loss="poisson")
    with pytest.raises(ValueError, match=r"predict_proba needs a classification loss .* "
                                         r"'poisson'"):
        net.predict_proba(X)
