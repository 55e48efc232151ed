"""Dropout: inverted dropout of hidden activations in fit and partial_fit, with counter-based
masks. The mask kernel against its reference twin, bit for bit; p = 0 is no dropout, bit for
bit; the mean activation is kept; 1 and 2 threads give the same bits; central differences with
a fixed mask; the compiled pass against the Python one; fit against reference.train; the file
round trip; and bad values refused."""

import numba
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from test_batchnorm import reference_args
from test_gradcheck import central_difference, relative_error
from test_training import OPTIMIZERS

import nbbp
from nbbp import passes, reference
from nbbp.dropout import TWO_32, dropout_rows, threshold


def data(rng, n=48, n_in=6, n_out=3):
    return rng.normal(size=(n, n_in)), rng.integers(0, n_out, size=n)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_masks_equal_the_reference_bit_for_bit(rng, dtype, p):
    A = rng.normal(size=(37, 29)).astype(dtype)
    seed, step, layer = np.uint64(0xDEADBEEF12345678), 17, 2
    got = A.copy()
    dropout_rows(got, seed, np.int64(step), np.int64(layer), np.int64(threshold(p)))
    factors = reference.dropout_multiplier(seed, step, layer, 37, 29, threshold(p), dtype)
    assert_array_equal(got, A * factors)
    # other steps, layers and seeds give other masks
    for other in ((seed, step + 1, layer), (seed, step, layer + 1), (seed + np.uint64(1), step,
                                                                     layer)):
        assert not np.array_equal(reference.dropout_multiplier(*other, 37, 29, threshold(p)) == 0,
                                  factors == 0)


@pytest.mark.parametrize("p", [0.2, 0.5])
def test_the_mean_activation_is_kept_and_p_units_are_dropped(p):
    # 200,000 units: the fraction dropped is p, and the mean factor 1, within 5 standard errors
    factors = reference.dropout_multiplier(np.uint64(7), 3, 1, 1000, 200, threshold(p))
    n = factors.size
    dropped = np.mean(factors == 0)
    assert abs(dropped - p) < 5 * np.sqrt(p * (1 - p) / n)
    assert abs(factors.mean() - 1) < 5 * np.sqrt(p / (1 - p) / n)
    A = np.full((1000, 200), 2.5)
    dropout_rows(A, np.uint64(7), np.int64(3), np.int64(1), np.int64(threshold(p)))
    assert abs(A.mean() / 2.5 - 1) < 5 * np.sqrt(p / (1 - p) / n)
    assert threshold(p) / TWO_32 == pytest.approx(p, abs=2**-32)


def test_p_zero_is_no_dropout_bit_for_bit(rng):
    X, y = data(rng)
    nets = [nbbp.Network([6, 16, 16, 3], activation="tanh", seed=1, **kwargs)
            for kwargs in ({}, {"dropout": 0.0}, {"dropout": [0.0, 0.0]})]
    histories = [net.fit(X, y, epochs=3, batch_size=16, optimizer="adam") for net in nets]
    for net, history in zip(nets[1:], histories[1:]):
        assert history.loss == histories[0].loss
        assert_array_equal(net._theta, nets[0]._theta)
        assert net.rng.bit_generator.state == nets[0].rng.bit_generator.state


def test_one_and_two_threads_give_the_same_bits(rng):
    # layers large enough for the kernels' threads (see _jit.use_threads)
    X, y = data(rng, n=256, n_in=64, n_out=10)
    thetas = []
    before = numba.get_num_threads()
    try:
        for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(threads)
            net = nbbp.Network([64, 256, 256, 10], dropout=[0.3, 0.5], seed=3)
            net.fit(X, y, epochs=2, batch_size=128, optimizer="adam")
            thetas.append(net._theta.copy())
    finally:
        numba.set_num_threads(before)
    assert_array_equal(thetas[0], thetas[1])


@pytest.mark.parametrize("spec", [
    dict(sizes=[4, 6, 5, 3], activation=["tanh", "sigmoid"]),
    dict(sizes=[4, 5, 5, 5, 3], activation="tanh", residual=[(1, 3)], skip="identity",
         batch_norm=[False, True, False]),
], ids=["dense", "identity skip and batch norm"])
def test_gradients_match_central_differences_with_a_fixed_mask(rng, spec):
    net = nbbp.Network(**spec, dropout=0.4, seed=2)
    X = rng.normal(size=(7, 4))
    Y = np.eye(3)[rng.integers(0, 3, 7)]
    mask = (np.uint64(99), np.int64(5))
    grad, _ = passes.backprop(X, Y, net._theta, net._stats.copy(), net._mask_theta, net._layout,
                              net._loss_code, net._eps, dropout=mask)

    def loss():
        zs, a_list, _ = passes.forward_layers(X, net._theta, net._stats.copy(), net._layout,
                                              training=True, dropout=mask)
        return passes.mean_loss(zs[-1], a_list[-1], Y, net._layout, net._loss_code, net._eps)

    numeric = central_difference(loss, net._theta)
    assert relative_error(numeric, grad) < 1e-7
    unmasked, _ = passes.backprop(X, Y, net._theta, net._stats.copy(), net._mask_theta,
                                  net._layout, net._loss_code, net._eps)
    assert not np.allclose(grad, unmasked)


def test_gradients_equal_the_reference_with_its_masks(rng):
    net = nbbp.Network([4, 7, 6, 3], activation=["sigmoid", "tanh"], dropout=[0.3, 0.6], seed=4)
    X = rng.normal(size=(9, 4))
    Y = np.eye(3)[rng.integers(0, 3, 9)]
    seed, step = np.uint64(1234), np.int64(8)
    grad, _ = passes.backprop(X, Y, net._theta, net._stats, net._mask_theta, net._layout,
                              net._loss_code, net._eps, dropout=(seed, step))
    W, b, acts, _, _, _ = reference_args(net)
    factors = [reference.dropout_multiplier(seed, step, l, 9, W[l].shape[0], threshold(p))
               for l, p in enumerate(net.dropout)] + [None]
    dWs, dbs = reference.backprop(W, b, None, X, Y, acts, "cross_entropy", dropout=factors)
    got_W, got_b = nbbp._layout.views(net._layout, grad)
    for l in range(3):
        assert_allclose(got_W[l], dWs[l], rtol=1e-12, atol=1e-15)
        assert_allclose(got_b[l], dbs[l], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", ["sgd", "adam"])
@pytest.mark.parametrize("shuffle", [False, True])
def test_fit_equals_reference_train(rng, name, shuffle):
    X, y = data(rng, n=40)
    net = nbbp.Network([6, 9, 7, 3], activation="tanh", dropout=[0.25, 0.5], seed=5)
    # the network's generator draws each epoch's order (when shuffling), then its masks' seed
    draws = np.random.Generator(type(net.rng.bit_generator)())
    draws.bit_generator.state = net.rng.bit_generator.state
    orders, seeds = [], []
    for _ in range(3):
        orders.append(draws.permutation(40) if shuffle else np.arange(40))
        seeds.append(draws.integers(2**64, dtype=np.uint64))
    W, b, acts, _, _, _ = reference_args(net)
    W_ref, b_ref, losses = reference.train(
        W, b, None, X, np.eye(3)[y], acts, "cross_entropy", epochs=3, batch_size=16,
        learning_rate=0.05, optimizer=name, orders=orders,
        dropout=[threshold(p) for p in net.dropout] + [0], dropout_seeds=seeds,
        **OPTIMIZERS[name])
    history = net.fit(X, y, epochs=3, batch_size=16, learning_rate=0.05, optimizer=name,
                      shuffle=shuffle)
    assert_allclose(history.loss, losses, rtol=1e-10)
    for l in range(3):
        assert_allclose(net.weights[l], W_ref[l], rtol=1e-9, atol=1e-12)
        assert_allclose(net.biases[l], b_ref[l], rtol=1e-9, atol=1e-12)
    assert net.rng.bit_generator.state == draws.bit_generator.state


def test_inference_uses_no_dropout(rng):
    X, _ = data(rng)
    with_dropout = nbbp.Network([6, 16, 3], dropout=0.5, seed=1)
    without = nbbp.Network([6, 16, 3], seed=1)
    assert_array_equal(with_dropout.forward(X), without.forward(X))
    assert with_dropout.loss(X, np.zeros(len(X), int), training=True) == \
        without.loss(X, np.zeros(len(X), int), training=True)


def test_dropout_saves_loads_and_pickles(rng, tmp_path):
    import copy

    net = nbbp.Network([6, 8, 8, 3], dropout=[0.1, 0.35], seed=1)
    net.save(tmp_path / "m.npz")
    loaded = nbbp.load(tmp_path / "m.npz")
    assert loaded.dropout == (0.1, 0.35)
    assert_array_equal(loaded._layout, net._layout)
    assert "dropout=[0.1, 0.35]" in repr(loaded)
    old = net.__getstate__()  # pickled before dropout: no attribute, a layout without its column
    del old["dropout"]
    old["_layout"] = old["_layout"][:, :10].copy()
    revived = nbbp.Network.__new__(nbbp.Network)
    revived.__setstate__(copy.deepcopy(old))
    assert revived.dropout == (0.0, 0.0)
    assert not revived._layout[:, -1].any()


@pytest.mark.parametrize("dropout, message", [
    (1.0, (r"dropout must be a probability in \[0, 1\), one value or one per hidden layer; got "
           r"1.0")),
    (-0.1, "got -0.1"),
    (float("nan"), "got nan"),
    ("0.5", "got '0.5'"),
    ([0.1, 1.5], "got 1.5 for hidden layer 2"),
    ([0.1], r"dropout must be one value or a list of 2"),
])
def test_bad_dropout_is_refused(dropout, message):
    with pytest.raises(ValueError, match=message):
        nbbp.Network([6, 8, 8, 3], dropout=dropout)


def test_lbfgs_refuses_dropout(rng):
    X, y = data(rng)
    net = nbbp.Network([6, 8, 3], dropout=0.2)
    with pytest.raises(ValueError, match="does not train with dropout"):
        net.fit(X, y, optimizer="lbfgs")



def test_an_int_seed_gives_the_masks_of_the_same_uint64_seed():
    # the hash casts the seed: a Python int (typed int64) must not turn the arithmetic signed
    A = np.ones((50, 40))
    B = np.ones((50, 40))
    dropout_rows(A, np.uint64(5), np.int64(1), np.int64(0), np.int64(threshold(0.5)))
    dropout_rows(B, 5, np.int64(1), np.int64(0), np.int64(threshold(0.5)))
    assert_array_equal(A, B)
