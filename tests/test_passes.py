"""The two twins of each pass (nbbp.passes) agree bit for bit: the compiled forward_pass and
backward_pass, as the epoch driver runs them, and the Python forward_layers and backprop, which
Network.forward, loss, gradients and step call. Where they differ (inference mode, l2, the
history's sums), the difference is theirs by design and tested here too."""

import numpy as np
import pytest
from numpy.testing import assert_array_equal

import nbbp
from nbbp import passes
from nbbp._layout import CODE, N_OUT, rows_of
from nbbp.training import Epochs

NETWORKS = {
    "dense": dict(sizes=[7, 9, 5, 3]),
    "masked, no bias on layer 1": dict(sizes=[7, 9, 5, 3], bias=[True, False, True]),
    "batch-normalised": dict(sizes=[7, 9, 9, 3], batch_norm=True),
    "residual": dict(sizes=[7, 9, 9, 9, 3], activation="tanh", residual=[(1, 3)]),
    "residual and batch-normalised": dict(sizes=[6, 6, 6, 3], batch_norm=[True, False],
                                          residual=[(0, 2)]),
    "identity residuals": dict(sizes=[6, 6, 6, 6, 6, 3], activation="sigmoid", skip="identity",
                               residual=[(0, 2), (2, 4), (1, 3)], batch_norm=[False, True, False,
                                                                               False]),
    "sigmoid outputs, squared error": dict(sizes=[7, 9, 4], output="sigmoid",
                                           loss="squared_error"),
}


def network(kind, dtype):
    spec = dict(NETWORKS[kind])
    if kind.startswith("masked"):
        spec["masks"] = [(np.arange(9 * 7).reshape(9, 7) % 3 != 0), None, None]
    net = nbbp.Network(seed=4, dtype=dtype, **spec)
    rng = np.random.default_rng(1)
    for gamma, beta in zip(net.gammas, net.betas):
        if gamma is not None:  # not the identity, so that a mix-up would show
            gamma[...] = rng.uniform(0.5, 1.5, gamma.shape)
            beta[...] = rng.normal(size=beta.shape)
    return net


def batch(net, rng, n=11):
    X = rng.normal(size=(n, net.sizes[0])).astype(net.dtype)
    if net.loss_name == "cross_entropy":
        Y = np.eye(net.sizes[-1], dtype=net.dtype)[rng.integers(0, net.sizes[-1], n)]
    else:
        Y = rng.uniform(0.1, 0.9, size=(n, net.sizes[-1])).astype(net.dtype)
    return X, Y


def compiled_pass(net, X, Y, sample_weight=None, drop_seed=None):
    """The driver's passes on one batch: train_epoch at learning rate 0 (theta stays), so its
    buffers hold the forward values and its grad the gradients. Returns (zs, activations, grad,
    sum of (weighted) J, stats after)."""
    n = X.shape[0]
    dense = not (any(net.batch_norm) or net.residual)
    stats = net._stats.copy()
    epochs = Epochs(net._layout, net.sizes, net.dtype, n, None if dense else stats,
                    any(net.batch_norm))
    grad = np.zeros_like(net._theta)
    theta = net._theta.copy()
    total, steps, used, weight = epochs.run(
        X, Y, np.zeros(0, np.int64), np.arange(n), theta, grad, net._mask_theta, net._layout,
        net._loss_code, net._eps, 0.0, nbbp.SGD(), np.zeros((0, theta.size), net.dtype), 0.0, 0,
        np.zeros(net.n_layers), np.zeros(net.n_layers), 0.0, sample_weight, drop_seed)
    assert (steps, used) == (1, n)
    assert weight == (n if sample_weight is None else sum(sample_weight.tolist()))
    assert_array_equal(theta, net._theta)  # learning rate 0
    rows = [rows_of(epochs.z_buf, net._layout, n, l) for l in range(net.n_layers)]
    activations = [rows_of(epochs.a_buf, net._layout, n, l) for l in range(net.n_layers)]
    return rows, activations, grad, total, stats


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kind", list(NETWORKS))
def test_compiled_and_python_passes_agree_bit_for_bit(rng, kind, dtype):
    net = network(kind, dtype)
    X, Y = batch(net, rng)
    zs_c, as_c, grad_c, total_c, stats_c = compiled_pass(net, X, Y)
    stats = net._stats.copy()
    zs, a_list, _ = passes.forward_layers(X, net._theta, stats, net._layout, training=True,
                                          update_running=True)
    for l in range(net.n_layers):
        assert_array_equal(zs_c[l], zs[l], err_msg=f"z of layer {l}")
        assert_array_equal(as_c[l], a_list[l + 1], err_msg=f"a of layer {l}")
    assert_array_equal(stats_c, stats)  # the running averages moved the same way
    grad, E = passes.backprop(X, Y, net._theta, net._stats.copy(), net._mask_theta, net._layout,
                              net._loss_code, net._eps)
    assert_array_equal(grad_c, grad)
    # the loss: the driver sums J over the batch, the Python twin takes the mean
    J = np.empty(X.shape[0])
    nbbp.losses.sample_losses(zs[-1], a_list[-1], Y, net._layout[-1, CODE], net._loss_code,
                              net._eps, J)
    # (the driver's sum of J is reassociated by fastmath, so its rounding differs from any
    # fixed order: n roundings of sums of size about sum J bound the difference)
    assert abs(total_c - J.sum()) <= 2 * len(J) * np.finfo(np.float64).eps * J.sum()
    assert float(J.mean()) == E


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kind", ["dense", "batch-normalised", "residual", "identity residuals"])
def test_passes_with_dropout_agree_bit_for_bit(rng, kind, dtype):
    # the driver's first batch is step 0; both twins draw the masks of (seed, step)
    spec = dict(NETWORKS[kind])
    spec["dropout"] = 0.4
    net = nbbp.Network(seed=4, dtype=dtype, **spec)
    X, Y = batch(net, rng)
    seed = np.uint64(0x1234_5678_9ABC_DEF0)
    _zs_c, as_c, grad_c, _, _ = compiled_pass(net, X, Y, drop_seed=seed)
    _zs, a_list, _ = passes.forward_layers(X, net._theta, net._stats.copy(), net._layout,
                                           training=True, dropout=(seed, np.int64(0)))
    for l in range(net.n_layers):
        assert_array_equal(as_c[l], a_list[l + 1], err_msg=f"a of layer {l}")
    grad, _ = passes.backprop(X, Y, net._theta, net._stats.copy(), net._mask_theta, net._layout,
                              net._loss_code, net._eps, dropout=(seed, np.int64(0)))
    assert_array_equal(grad_c, grad)
    assert (as_c[0] == 0).any()  # some units were dropped


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kind", ["dense", "batch-normalised", "identity residuals"])
def test_weighted_passes_agree_bit_for_bit(rng, kind, dtype):
    # sample weights scale the output delta by n w_k / sum w, in both twins by weigh_samples
    net = network(kind, dtype)
    X, Y = batch(net, rng)
    w = rng.uniform(0, 3, size=X.shape[0])
    w[2] = 0
    _, _, grad_c, total_c, _ = compiled_pass(net, X, Y, w)
    grad, E = passes.backprop(X, Y, net._theta, net._stats.copy(), net._mask_theta, net._layout,
                              net._loss_code, net._eps, sample_weight=w)
    assert_array_equal(grad_c, grad)
    assert total_c / w.sum() == pytest.approx(E, rel=1e-13)
    unweighted, _ = passes.backprop(X, Y, net._theta, net._stats.copy(), net._mask_theta,
                                    net._layout, net._loss_code, net._eps)
    assert not np.allclose(grad, unweighted)


def test_only_the_python_forward_has_inference_mode(rng):
    # training normalises with the batch's statistics, inference with the running averages: on
    # a fresh network (running mean 0, variance 1) the two differ
    net = network("batch-normalised", np.float64)
    X, _ = batch(net, rng)
    inference, _, _ = passes.forward_layers(X, net._theta, net._stats, net._layout)
    training, _, _ = passes.forward_layers(X, net._theta, net._stats.copy(), net._layout,
                                           training=True)
    assert not np.allclose(inference[1], training[1])


def test_the_compiled_backward_pass_adds_l2_and_the_python_one_does_not(rng):
    net = network("dense", np.float64)
    X, Y = batch(net, rng)
    n = X.shape[0]
    grads = []
    for l2 in (0.0, 0.5):
        epochs = Epochs(net._layout, net.sizes, net.dtype, n, None, False)
        grad = np.zeros_like(net._theta)
        epochs.run(X, Y, np.zeros(0, np.int64), np.arange(n), net._theta.copy(), grad,
                   net._mask_theta, net._layout, net._loss_code, net._eps, l2, nbbp.SGD(),
                   np.zeros((0, grad.size)), 0.0, 0, np.zeros(3), np.zeros(3))
        grads.append(grad)
    python, _ = passes.backprop(X, Y, net._theta, net._stats, net._mask_theta, net._layout,
                                net._loss_code, net._eps)
    assert_array_equal(grads[0], python)
    weights = np.zeros(net._theta.size, bool)
    for W in nbbp._layout.weight_ranges(net._layout):
        weights[W] = True
    np.testing.assert_allclose(grads[1][weights], python[weights] + 0.5 * net._theta[weights],
                               rtol=1e-14, atol=1e-15)
    assert_array_equal(grads[1][~weights], python[~weights])  # biases are not penalised
    assert int(net._layout[0, N_OUT]) == net.sizes[1]
