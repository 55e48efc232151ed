"""Batch normalisation: the kernels equal their reference twins, the network's gradients equal
the reference's and central differences, fit equals reference.train with every optimizer, the
running averages follow torch.nn.BatchNorm1d, results do not depend on the thread count, and
bad input changes nothing."""

import numba
import numpy as np
import pytest
from conftest import DTYPES, assert_equivalent, torch_twin
from numpy.testing import assert_allclose, assert_array_equal
from test_gradcheck import MAX_RELATIVE_ERROR, central_difference, relative_error
from test_training import OPTIMIZERS

import nbbp
from nbbp import reference
from nbbp._simd import aligned_zeros
from nbbp.activations import IDENTITY
from nbbp.batchnorm import EPS, MOMENTUM, batchnorm_backward, batchnorm_inference, batchnorm_train
from nbbp.forward import forward_layer, forward_normalised, scratch_size

# (n_samples, width): the smallest batch (2), one neuron, widths not divisible by the 16-neuron
# block or by 2 threads, and a ragged last block.
SHAPES = [(2, 1), (2, 5), (3, 16), (7, 17), (33, 40), (64, 3)]


def batch(rng, n, width, dtype):
    """Pre-activations with per-neuron offsets and scales, as a layer's linear output has."""
    return (rng.normal(size=(n, width)) * rng.uniform(0.5, 3, width)
            + rng.normal(scale=2, size=width)).astype(dtype)


def bn_params(rng, width, dtype):
    return (rng.uniform(0.5, 1.5, width).astype(dtype),
            rng.normal(scale=0.3, size=width).astype(dtype))


# ------------------------------------------------------------------------------ kernels
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n, width", SHAPES)
def test_batchnorm_train_equals_reference(rng, parallel, n, width, dtype):
    Z = batch(rng, n, width, dtype)
    gamma, beta = bn_params(rng, width, dtype)
    running_mean, running_var = (rng.normal(size=width).astype(dtype),
                                 rng.uniform(0.5, 2, width).astype(dtype))
    y, z_hat, mu, var = reference.batchnorm_forward(Z, gamma, beta)
    expected_running = reference.running_update(running_mean, running_var, mu, var, n)
    out, Z_hat = Z.copy(), np.empty_like(Z)
    mean, inv_std = np.empty(width, dtype=dtype), np.empty(width, dtype=dtype)
    batchnorm_train(out, gamma, beta, dtype(EPS), dtype(MOMENTUM), True, running_mean, running_var,
                    Z_hat, mean, inv_std, parallel)
    assert_equivalent(out, y, dtype)
    assert_equivalent(Z_hat, z_hat, dtype)
    assert_equivalent(mean, mu, dtype)
    assert_equivalent(inv_std, 1 / np.sqrt(var + EPS), dtype)
    assert_equivalent(running_mean, expected_running[0], dtype)
    assert_equivalent(running_var, expected_running[1], dtype)


# (n_samples, n_in, n_out): one strip or many, widths past a 64-neuron block, ragged strips, and
# groups of strips (1,024 float32 neurons)
FUSED_SHAPES = [(2, 1, 1), (7, 5, 17), (33, 70, 40), (128, 64, 256), (65, 37, 131), (9, 3, 1030)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n, n_in, n_out", FUSED_SHAPES)
@pytest.mark.parametrize("has_bias", [True, False])
def test_forward_normalised_equals_the_two_kernels_and_ignores_threads(rng, n, n_in, n_out,
                                                                      has_bias, dtype):
    A_prev = rng.normal(size=(n, n_in)).astype(dtype)
    W = (rng.normal(size=(n_out, n_in)) / np.sqrt(n_in)).astype(dtype)
    b = rng.normal(size=n_out).astype(dtype)
    gamma, beta = bn_params(rng, n_out, dtype)
    stats = rng.normal(size=n_out).astype(dtype), rng.uniform(0.5, 2, n_out).astype(dtype)
    scratch = aligned_zeros(scratch_size(n, n_in, n_out), dtype)

    def fused(parallel):
        running = stats[0].copy(), stats[1].copy()
        Z, Z_hat = np.empty((n, n_out), dtype), np.empty((n, n_out), dtype)
        mean, inv_std = np.empty(n_out, dtype), np.empty(n_out, dtype)
        forward_normalised(A_prev, W, b, has_bias, gamma, beta, dtype(EPS), dtype(MOMENTUM),
                           True, *running, Z_hat, mean, inv_std, Z, parallel, scratch)
        return Z, Z_hat, mean, inv_std, *running

    def two_kernels(parallel):
        running = stats[0].copy(), stats[1].copy()
        Z, Z_hat = np.empty((n, n_out), dtype), np.empty((n, n_out), dtype)
        mean, inv_std = np.empty(n_out, dtype), np.empty(n_out, dtype)
        forward_layer(A_prev, W, b, has_bias, IDENTITY, Z, Z, parallel, scratch)
        batchnorm_train(Z, gamma, beta, dtype(EPS), dtype(MOMENTUM), True, *running, Z_hat,
                        mean, inv_std, parallel)
        return Z, Z_hat, mean, inv_std, *running

    got = fused(True)
    # each neuron's statistics have one owner and sum over k in order: the same bits on any
    # number of threads
    for a, serial in zip(got, fused(False)):
        assert_array_equal(a, serial)
    # The same arithmetic per neuron as the two kernels, but not always the same bits: a neuron
    # that one kernel's vector loop reaches in its scalar remainder may be contracted or
    # reassociated otherwise (1 ulp apart in float64 under NUMBA_BOUNDSCHECK=1)
    for a, expected in zip(got, two_kernels(False)):
        assert_equivalent(a, expected, dtype)
    z = A_prev.astype(np.float64) @ W.T.astype(np.float64) + (b if has_bias else 0)
    y, z_hat, mu, _var = reference.batchnorm_forward(z, gamma.astype(np.float64),
                                                     beta.astype(np.float64))
    # the sums of n_in terms, then the normalisation's: float32 keeps about 1e-5 of the scale
    tolerance = dict(rtol=1e-9, atol=1e-9) if dtype == np.float64 else dict(rtol=2e-4, atol=2e-4)
    assert_allclose(got[0], y, **tolerance)
    assert_allclose(got[1], z_hat, **tolerance)
    assert_allclose(got[2], mu, **tolerance)


def test_batchnorm_train_leaves_running_averages_without_update(rng):
    Z = batch(rng, 5, 3, np.float64)
    running_mean, running_var = np.zeros(3), np.ones(3)
    batchnorm_train(Z, np.ones(3), np.zeros(3), EPS, MOMENTUM, False, running_mean, running_var,
                    np.empty_like(Z), np.empty(3), np.empty(3), False)
    assert_array_equal(running_mean, 0)
    assert_array_equal(running_var, 1)


def test_batchnorm_by_hand():
    # One neuron, samples 1 and 3: mu = 2, biased var = 1, z_hat = -+1 / sqrt(1 + 1e-5);
    # gamma 2, beta 0.5: y = 0.5 -+ 2 / sqrt(1.00001). Running, from 0 and 1 with momentum 0.1:
    # mean 0.1 * 2 = 0.2, var 0.9 * 1 + 0.1 * (1 * 2 / 1) = 1.1 (unbiased: n / (n - 1) = 2).
    Z = np.array([[1.0], [3.0]])
    running_mean, running_var = np.zeros(1), np.ones(1)
    Z_hat, mean, inv_std = np.empty_like(Z), np.empty(1), np.empty(1)
    batchnorm_train(Z, np.array([2.0]), np.array([0.5]), EPS, MOMENTUM, True, running_mean,
                    running_var, Z_hat, mean, inv_std, False)
    s = np.sqrt(1.00001)
    assert_allclose(Z[:, 0], [0.5 - 2 / s, 0.5 + 2 / s], rtol=1e-15)
    assert_allclose(Z_hat[:, 0], [-1 / s, 1 / s], rtol=1e-15)
    assert_allclose(running_mean, [0.2], rtol=1e-15)
    assert_allclose(running_var, [1.1], rtol=1e-15)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n, width", [*SHAPES, (1, 4)])
def test_batchnorm_inference_equals_reference(rng, parallel, n, width, dtype):
    Z = batch(rng, n, width, dtype)
    gamma, beta = bn_params(rng, width, dtype)
    running_mean, running_var = (rng.normal(size=width).astype(dtype),
                                 rng.uniform(0.1, 2, width).astype(dtype))
    expected = reference.batchnorm_inference(Z, gamma, beta, running_mean, running_var)
    batchnorm_inference(Z, gamma, beta, dtype(EPS), running_mean, running_var, parallel)
    assert_equivalent(Z, expected, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n, width", SHAPES)
def test_batchnorm_backward_equals_reference(rng, parallel, n, width, dtype):
    Z = batch(rng, n, width, dtype)
    gamma, beta = bn_params(rng, width, dtype)
    delta = rng.normal(size=(n, width)).astype(dtype)
    expected = reference.batchnorm_backward(delta, Z, gamma)
    Z_hat, mean, inv_std = (np.empty_like(Z), np.empty(width, dtype=dtype),
                            np.empty(width, dtype=dtype))
    batchnorm_train(Z.copy(), gamma, beta, dtype(EPS), dtype(MOMENTUM), False, mean, mean, Z_hat,
                    mean, inv_std, False)
    dgamma, dbeta = np.empty(width, dtype=dtype), np.empty(width, dtype=dtype)
    delta_lin = np.empty_like(Z)
    batchnorm_backward(delta, Z_hat, gamma, inv_std, dgamma, dbeta, delta_lin, parallel)
    assert_equivalent(delta_lin, expected[0], dtype)
    assert_equivalent(dgamma, expected[1], dtype)
    assert_equivalent(dbeta, expected[2], dtype)
    # In place over z_hat, as the epoch driver calls it.
    batchnorm_backward(delta, Z_hat, gamma, inv_std, dgamma, dbeta, Z_hat, parallel)
    assert_array_equal(Z_hat, delta_lin)


def test_reference_batchnorm_backward_matches_central_differences(rng):
    # The oracle's chain rule through mu and var, against E = sum(c * y) / n.
    n, width = 5, 3
    Z, (gamma, beta), c = (batch(rng, n, width, np.float64), bn_params(rng, width, np.float64),
                           rng.normal(size=(n, width)))

    def E():
        return float(np.sum(c * reference.batchnorm_forward(Z, gamma, beta)[0])) / n

    delta_z, dgamma, dbeta = reference.batchnorm_backward(c, Z, gamma)
    for param, analytic in ((Z, delta_z / n), (gamma, dgamma), (beta, dbeta)):
        assert relative_error(central_difference(E, param), analytic) < MAX_RELATIVE_ERROR


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs 2 threads")
def test_kernels_are_bitwise_identical_on_1_and_2_threads(rng):
    n, width = 300, 250
    Z, (gamma, beta) = batch(rng, n, width, np.float32), bn_params(rng, width, np.float32)
    delta = rng.normal(size=(n, width)).astype(np.float32)
    results = []
    saved = numba.get_num_threads()
    try:
        for threads in (1, 2):
            numba.set_num_threads(threads)
            out, Z_hat = Z.copy(), np.empty_like(Z)
            stats = [np.zeros(width, np.float32), np.ones(width, np.float32),
                     np.empty(width, np.float32), np.empty(width, np.float32)]
            batchnorm_train(out, gamma, beta, np.float32(EPS), np.float32(MOMENTUM), True, stats[0],
                            stats[1], Z_hat, stats[2], stats[3], True)
            grads = [np.empty(width, np.float32), np.empty(width, np.float32), np.empty_like(Z)]
            batchnorm_backward(delta, Z_hat, gamma, stats[3], *grads, True)
            results.append([out, Z_hat, *stats, *grads])
    finally:
        numba.set_num_threads(saved)
    for one, two in zip(*results):
        assert_array_equal(one, two)


# ------------------------------------------------------------------------------ the network
def bn_network(rng, sizes=(4, 6, 5, 3), activation="tanh", output="softmax",
               loss="cross_entropy", batch_norm=True, dtype=np.float64, **kwargs):
    """A network with gamma, beta and biases away from their initial 1, 0, 0."""
    net = nbbp.Network(list(sizes), activation=activation, output=output, loss=loss,
                       batch_norm=batch_norm, dtype=dtype, seed=int(rng.integers(1000)), **kwargs)
    for b in net.biases:
        if b is not None:
            b[...] = rng.normal(scale=0.5, size=b.shape)
    for gamma, beta in zip(net.gammas, net.betas):
        if gamma is not None:
            gamma[...] = rng.uniform(0.5, 1.5, gamma.shape)
            beta[...] = rng.normal(scale=0.3, size=beta.shape)
    return net


def reference_args(net):
    """(weights, biases, activations, batch_norm, skips, running) of a network for reference.*"""
    L = net.n_layers
    norm = [None if g is None else (g.copy(), b.copy()) for g, b in zip(net.gammas, net.betas)]
    skips = [None] * L
    for s, t in net.residual:
        skips[t - 1] = s
    running = [None if m is None else (m.copy(), v.copy())
               for m, v in zip(net.running_means, net.running_vars)]
    return ([W.copy() for W in net.weights], [None if b is None else b.copy() for b in net.biases],
            [*net.activation, net.output], norm, skips, running)


def test_parameters_start_as_in_torch_and_sit_in_theta():
    net = nbbp.Network([3, 5, 4, 2], batch_norm=[True, False])
    assert net.gammas[1] is None
    assert net.gammas[2] is None
    assert net.running_means[1] is None
    assert_array_equal(net.gammas[0], 1)
    assert_array_equal(net.betas[0], 0)
    assert_array_equal(net.running_means[0], 0)
    assert_array_equal(net.running_vars[0], 1)
    # W, b, gamma, beta of layer 1 are one stretch of theta: every optimizer trains them.
    assert net.n_parameters == 3 * 5 + 5 + 2 * 5 + 5 * 4 + 4 + 4 * 2 + 2
    net.gammas[0][...] = 7
    assert np.count_nonzero(net._theta == 7) == 5
    assert net.batch_norm == (True, False)
    assert "batch_norm=[True, False]" in repr(net)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("residual", [None, [(1, 3)]], ids=["plain", "residual"])
def test_forward_and_gradients_equal_reference(rng, dtype, residual):
    net = bn_network(rng, sizes=(4, 6, 5, 6, 3), batch_norm=[True, False, True], dtype=dtype,
                     residual=residual)
    net.running_means[0][...] = rng.normal(size=6)
    net.running_vars[2][...] = rng.uniform(0.5, 2, size=6)
    X = rng.normal(size=(9, 4)).astype(dtype)
    y = rng.integers(0, 3, size=9)
    W, b, acts, norm, skips, running = reference_args(net)
    _, a_train = reference.forward(W, b, X, acts, norm, skips)
    _, a_infer = reference.forward(W, b, X, acts, norm, skips, running)
    assert_equivalent(net.forward(X, training=True), a_train[-1], dtype)
    assert_equivalent(net.forward(X), a_infer[-1], dtype)
    dWs, dbs, dgammas, dbetas = reference.backprop(W, b, None, X, np.eye(3, dtype=dtype)[y], acts,
                                                   "cross_entropy", 0.0, norm, skips)
    got = net.gradients(X, y)
    for l in range(net.n_layers):
        assert_equivalent(got[0][l], dWs[l], dtype)
        assert_equivalent(got[1][l], dbs[l], dtype)
        if dgammas[l] is None:
            assert got.gammas[l] is None
            assert got.betas[l] is None
        else:
            assert_equivalent(got.gammas[l], dgammas[l], dtype)
            assert_equivalent(got.betas[l], dbetas[l], dtype)


def check_central_differences(net, X, Y):
    """Every W, b, gamma and beta of the kernels (through Network) and of the reference against
    central differences of E in training mode. A normalised layer's bias has gradient 0 (the
    batch mean removes it): there both must be 0 up to rounding."""
    got = net.gradients(X, Y)
    W, b, acts, norm, skips, _ = reference_args(net)
    ref = reference.backprop(W, b, None, X, Y, acts, net.loss_name, 0.0, norm, skips, net.skip)

    def ref_loss():
        zs, a_list = reference.forward(W, b, X, acts, norm, skips, skip=net.skip)
        return reference.loss(zs[-1], a_list[-1], Y, acts[-1], net.loss_name)

    kernel_params = [net.weights, net.biases, net.gammas, net.betas]
    ref_params = [W, b, [None if p is None else p[0] for p in norm],
                  [None if p is None else p[1] for p in norm]]
    analytic = [got[0], got[1], got.gammas, got.betas]
    for kind in range(4):
        for l in range(net.n_layers):
            if kernel_params[kind][l] is None:
                continue
            for param, grad, loss_of in ((kernel_params[kind][l], analytic[kind][l],
                                          lambda: net.loss(X, Y, training=True)),
                                         (ref_params[kind][l], ref[kind][l], ref_loss)):
                numeric = central_difference(loss_of, param)
                if kind == 1 and net.gammas[l] is not None:
                    assert np.abs(numeric).max() < 1e-9
                    assert np.abs(grad).max() < 1e-14
                else:
                    assert relative_error(numeric, grad) < MAX_RELATIVE_ERROR, (kind, l)


@pytest.mark.parametrize("activation, output, loss", [
    ("tanh", "softmax", "cross_entropy"),
    ("sigmoid", "sigmoid", "log_loss"),
    (["tanh", "sigmoid"], "identity", "squared_error"),
])
def test_gradients_match_central_differences(rng, activation, output, loss):
    net = bn_network(rng, activation=activation, output=output, loss=loss, batch_norm=True)
    X = rng.normal(size=(6, 4))
    Y = {"cross_entropy": np.eye(3)[rng.integers(0, 3, 6)],
         "log_loss": rng.integers(0, 2, size=(6, 3)).astype(float),
         "squared_error": rng.normal(size=(6, 3))}[loss]
    check_central_differences(net, X, Y)


def test_gradients_through_residual_and_normalised_layers_match_central_differences(rng):
    net = bn_network(rng, sizes=(3, 5, 5, 5, 2), batch_norm=[True, False, True],
                     residual=[(1, 3), (1, 2)], output="sigmoid", loss="log_loss",
                     bias=[True, False, True, True])
    X = rng.normal(size=(7, 3))
    Y = rng.integers(0, 2, size=(7, 2)).astype(float)
    check_central_differences(net, X, Y)


def test_gradients_and_loss_leave_the_running_averages_and_step_updates_them(rng):
    net = bn_network(rng)
    X, y = rng.normal(size=(8, 4)), rng.integers(0, 3, size=8)
    net.gradients(X, y)
    net.loss(X, y, training=True)
    net.forward(X, training=True)
    net.predict(X)
    assert_array_equal(net.running_means[0], 0)
    assert_array_equal(net.running_vars[0], 1)
    W, b, acts, norm, skips, running = reference_args(net)
    z = X @ W[0].T + b[0]
    expected = reference.running_update(*running[0], z.mean(axis=0), z.var(axis=0), 8)
    E = net.step(X, y, 0.1)
    assert pytest.approx(reference.loss(*[
        v[-1] for v in reference.forward(W, b, X, acts, norm, skips)], np.eye(3)[y], "softmax",
        "cross_entropy"), rel=1e-12) == E
    assert_allclose(net.running_means[0], expected[0], rtol=1e-12)
    assert_allclose(net.running_vars[0], expected[1], rtol=1e-12)


# ------------------------------------------------------------------------------ training
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_three_epochs_of_each_optimizer_equal_reference(rng, name):
    # 49 samples in batches of 16: 16, 16, 16, and a last batch of one sample, left out. No
    # bias in the normalised layers: its gradient is rounding noise, which AdaGrad, RMSProp
    # and Adam scale up to steps of the learning rate (harmless, as the bias cancels out, but
    # not reproducible between two summation orders).
    X, y = rng.normal(size=(49, 5)), rng.integers(0, 3, size=49)
    mask = rng.integers(0, 2, size=(7, 5))
    net = bn_network(rng, sizes=(5, 7, 7, 3), activation=["tanh", "relu"], masks=[mask, None, None],
                     bias=[False, False, True], residual=[(1, 2)])
    W, b, acts, norm, skips, running = reference_args(net)
    W_ref, b_ref, losses, norm_ref, running_ref = reference.train(
        W, b, list(net.masks), X, np.eye(3)[y], acts, "cross_entropy", epochs=3, batch_size=16,
        learning_rate=0.05, optimizer=name, l2=0.01, batch_norm=norm, skips=skips, running=running,
        **OPTIMIZERS[name])
    history = net.fit(X, y, epochs=3, batch_size=16, learning_rate=0.05, optimizer=name, l2=0.01,
                      shuffle=False)
    assert net._opt.steps == 3 * 3
    assert_allclose(history.loss, losses, rtol=1e-10)
    for l in range(net.n_layers):
        assert_allclose(net.weights[l], W_ref[l], rtol=1e-9, atol=1e-11)
        if b_ref[l] is not None:
            assert_allclose(net.biases[l], b_ref[l], rtol=1e-9, atol=1e-11)
        if norm_ref[l] is not None:
            assert_allclose(net.gammas[l], norm_ref[l][0], rtol=1e-9, atol=1e-11)
            assert_allclose(net.betas[l], norm_ref[l][1], rtol=1e-9, atol=1e-11)
            assert_allclose(net.running_means[l], running_ref[l][0], rtol=1e-9, atol=1e-11)
            assert_allclose(net.running_vars[l], running_ref[l][1], rtol=1e-9, atol=1e-11)
    assert_array_equal(net.weights[0][mask == 0], 0)


def test_float32_training_follows_float64(rng):
    X, y = rng.normal(size=(64, 5)), rng.integers(0, 3, size=64)
    losses = {}
    for dtype in DTYPES:
        net = nbbp.Network([5, 16, 16, 3], batch_norm=True, residual=1, dtype=dtype, seed=2)
        losses[dtype] = net.fit(X, y, epochs=20, batch_size=16, learning_rate=0.05,
                                optimizer="adam", shuffle=False).loss
        assert net.gammas[0].dtype == net.running_vars[0].dtype == dtype
    assert losses[np.float64][-1] < 0.7 * losses[np.float64][0]
    assert_allclose(losses[np.float32], losses[np.float64], rtol=1e-3)


def test_fit_matches_torch_batchnorm1d(rng):
    # The conventions themselves (eps, momentum, biased and unbiased variance, the backward
    # pass), against the library they follow: two SGD steps of Linear-BatchNorm1d-tanh-Linear.
    torch = pytest.importorskip("torch")
    net = nbbp.Network([4, 6, 3], activation="tanh", batch_norm=True, seed=3)
    X, y = rng.normal(size=(10, 4)), rng.integers(0, 3, size=10)
    model = torch_twin(torch, net, torch.nn.Linear(4, 6), torch.nn.BatchNorm1d(6),
                       torch.nn.Tanh(), torch.nn.Linear(6, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for start in (0, 5):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(torch.from_numpy(X[start:start + 5])),
                                          torch.from_numpy(y[start:start + 5])).backward()
        optimizer.step()
    net.fit(X, y, epochs=1, batch_size=5, learning_rate=0.1, shuffle=False)
    bn = model[1]
    for got, expected in ((net.weights[0], model[0].weight), (net.weights[1], model[3].weight),
                          (net.gammas[0], bn.weight), (net.betas[0], bn.bias),
                          (net.running_means[0], bn.running_mean),
                          (net.running_vars[0], bn.running_var)):
        assert_allclose(got, expected.detach().numpy(), rtol=1e-10, atol=1e-12)
    model.eval()
    assert_allclose(net.forward(X), torch.softmax(model(torch.from_numpy(X)), 1).detach().numpy(),
                    rtol=1e-10, atol=1e-12)


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs 2 threads")
def test_fit_is_bitwise_identical_on_1_and_2_threads(rng):
    # Width 256 and batches of 256: every batch-normalisation kernel runs on the thread pool.
    X, y = rng.normal(size=(512, 16)).astype(np.float32), rng.integers(0, 4, size=512)
    runs = []
    saved = numba.get_num_threads()
    try:
        for threads in (1, 2):
            numba.set_num_threads(threads)
            net = nbbp.Network([16, 256, 256, 4], batch_norm=True, residual=1, dtype=np.float32,
                               seed=4)
            history = net.fit(X, y, epochs=1, batch_size=256, learning_rate=0.05)
            runs.append((net._theta.copy(), net._stats.copy(), history.loss, net.forward(X)))
    finally:
        numba.set_num_threads(saved)
    for one, two in zip(*runs):
        assert_array_equal(one, two)


def test_early_stopping_restores_the_running_averages_of_the_best_epoch(rng):
    X, y = rng.normal(size=(60, 5)), rng.integers(0, 3, size=60)
    net = nbbp.Network([5, 8, 3], batch_norm=True, seed=1)
    seen = []
    history = net.fit(X, y, epochs=12, batch_size=8, learning_rate=0.5, early_stopping=True,
                      patience=3, callback=lambda e, h: seen.append((net._theta.copy(),
                                                                     net._stats.copy())))
    assert history.best_epoch is not None
    assert history.best_epoch < history.epochs - 1
    assert_array_equal(net._theta, seen[history.best_epoch][0])
    assert_array_equal(net._stats, seen[history.best_epoch][1])


# ------------------------------------------------------------------------------ bad input
def snapshot(net):
    return (net._theta.copy(), net._stats.copy(), net._opt.state.copy(), net._opt.steps,
            net.rng.bit_generator.state)


def assert_unchanged(net, before):
    after = snapshot(net)
    for one, two in zip(before[:3], after[:3]):
        assert_array_equal(one, two)
    assert before[3:] == after[3:]


@pytest.mark.parametrize("call, message", [
    (lambda net, X, y: net.gradients(X[:1], y[:1]),
     "gradients: batch normalisation in training mode needs a batch of 2 samples or more"),
    (lambda net, X, y: net.step(X[:1], y[:1], 0.1), "step: batch normalisation"),
    (lambda net, X, y: net.loss(X[:1], y[:1], training=True),
     r"loss\(training=True\): batch normalisation"),
    (lambda net, X, y: net.forward(X[:1], training=True),
     r"forward\(training=True\): batch normalisation"),
    (lambda net, X, y: net.fit(X, y, batch_size=1),
     "needs batches of 2 samples or more.*got batch_size=1"),
    (lambda net, X, y: net.partial_fit(X, y, batch_size=1), "got batch_size=1"),
    (lambda net, X, y: net.fit(X[:1], y[:1]), "got 1 training sample"),
    (lambda net, X, y: net.fit(X[:2], y[:2], validation_fraction=0.5), "got 1 training sample"),
])
def test_a_batch_of_one_sample_in_training_mode_is_refused(rng, call, message):
    net = bn_network(rng)
    X, y = rng.normal(size=(10, 4)), rng.integers(0, 3, size=10)
    before = snapshot(net)
    with pytest.raises(ValueError, match=message):
        call(net, X, y)
    assert_unchanged(net, before)
    net.forward(X[:1])  # inference normalises with the running averages: one sample is fine


@pytest.mark.parametrize("batch_norm, error, message", [
    ([True], ValueError, "batch_norm must be one value or a list of 2"),
    ("yes", TypeError, "batch_norm must be a bool or a list of bools"),
    ([True, 1], TypeError, "got 1"),
])
def test_bad_batch_norm_argument(batch_norm, error, message):
    with pytest.raises(error, match=message):
        nbbp.Network([3, 4, 4, 2], batch_norm=batch_norm)


def test_training_flag_must_be_a_bool(rng):
    net = bn_network(rng)
    with pytest.raises(TypeError, match="training must be True or False; got 'yes'"):
        net.forward(rng.normal(size=(3, 4)), training="yes")


def test_divergence_restores_the_running_averages(rng):
    X, y = rng.normal(size=(40, 4)) * 1e3, rng.normal(size=(40, 3)) * 1e30
    net = nbbp.Network([4, 6, 3], batch_norm=True, output="identity", loss="squared_error")
    net.fit(X[:20], y[:20] * 1e-30, epochs=1, batch_size=10)
    before = net._stats.copy()
    with pytest.raises(nbbp.DivergenceError):
        net.fit(X, y, epochs=3, batch_size=10, learning_rate=1e3)
    assert_array_equal(net._stats, before)
