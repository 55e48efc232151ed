"""Residual connections a(t) = f(z(t) + a(s)): the argument, the two kernels against their
reference twins, a hand-worked network, gradients against the reference and central
differences, and fit against reference.train."""

import numpy as np
import pytest
from conftest import DTYPES, HIDDEN, OUTPUTS, assert_equivalent
from numpy.testing import assert_allclose, assert_array_equal
from test_batchnorm import check_central_differences, reference_args
from test_gradcheck import KINKED
from test_training import OPTIMIZERS

import nbbp
from nbbp import reference
from nbbp.activations import ACTIVATIONS
from nbbp.deltas import residual_delta
from nbbp.forward import add_skip_and_activate

SHAPES = [(1, 1), (2, 5), (7, 17), (33, 40)]


# ------------------------------------------------------------------------------ the argument
@pytest.mark.parametrize("sizes, residual, expected", [
    ([2] + [8] * 7 + [3], 2, ((1, 3), (3, 5), (5, 7))),
    ([2] + [8] * 7 + [3], 3, ((1, 4), (4, 7))),
    ([2] + [8] * 7 + [3], 1, tuple((s, s + 1) for s in range(1, 7))),
    ([2, 8, 8, 4, 4, 8, 3], 1, ((1, 2), (3, 4))),          # only pairs of equal width
    ([8, 8, 8, 8, 8], [(2, 4), (0, 2), [1, 3]], ((0, 2), (1, 3), (2, 4))),  # sorted by target
])
def test_residual_argument_names_the_skips(sizes, residual, expected):
    net = nbbp.Network(sizes, residual=residual)
    assert net.residual == expected
    targets = dict((t, s) for s, t in expected)
    assert [int(v) for v in net._layout[:, -1]] == [targets.get(l + 1, -1) for l in range(net.n_layers)]
    assert f"residual={list(expected)}" in repr(net)


@pytest.mark.parametrize("residual, error, message", [
    (0, ValueError, "residual must be an int >= 1"),
    (5, ValueError, r"residual=5 adds no skip: sizes \[2, 8, 8, 8, 3\] have no hidden layers"),
    ([(1, 4)], ValueError, r"joins layers of different widths: sizes\[1\] = 8, sizes\[4\] = 3"),
    ([(3, 1)], ValueError, r"residual pair \(3, 1\) must have 0 <= from < to <= 4"),
    ([(2, 2)], ValueError, r"residual pair \(2, 2\) must have"),
    ([(1, 5)], ValueError, r"residual pair \(1, 5\) must have"),
    ([(-1, 2)], ValueError, r"residual pair \(-1, 2\) must have"),
    ([(1, 3), (2, 3)], ValueError, "two skips into layer 3; at most one per layer"),
    ([(1, 2, 3)], TypeError, r"list of \(from, to\) pairs of layer indices; got the entry \(1, 2, 3\)"),
    ([(1.0, 2)], TypeError, "got the entry"),
    ("2", TypeError, "residual must be None, an int or a list of"),
    (True, TypeError, "residual must be None, an int or a list of"),
])
def test_bad_residual_argument(residual, error, message):
    with pytest.raises(error, match=message):
        nbbp.Network([2, 8, 8, 8, 3], residual=residual)


# ------------------------------------------------------------------------------ kernels
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("has_skip", [True, False])
@pytest.mark.parametrize("name", OUTPUTS)
@pytest.mark.parametrize("n, width", SHAPES)
def test_add_skip_and_activate_equals_reference(rng, n, width, name, has_skip, dtype):
    Z = rng.normal(size=(n, width)).astype(dtype)
    A_skip = rng.normal(size=(n, width)).astype(dtype)
    expected_z = Z + A_skip if has_skip else Z.copy()
    A = np.empty_like(Z)
    add_skip_and_activate(Z, A_skip, has_skip, ACTIVATIONS[name], A)
    assert_equivalent(Z, expected_z, dtype)
    assert_equivalent(A, reference.activation(name, expected_z), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", HIDDEN)
@pytest.mark.parametrize("n, width", SHAPES)
def test_residual_delta_equals_reference(rng, n, width, name, dtype):
    Z = rng.normal(size=(n, width)).astype(dtype)
    A = reference.activation(name, Z)
    delta, delta_skip = (rng.normal(size=(n, width)).astype(dtype) for _ in range(2))
    expected = reference.activation_derivative(name, Z, A) * (delta + delta_skip)
    residual_delta(delta, delta_skip, Z, A, ACTIVATIONS[name])
    assert_equivalent(delta, expected, dtype)


# ------------------------------------------------------------------------------ the network
def test_skip_by_hand():
    # 1-1-1-1 identity network, W = 2, 3, 5, no biases, a skip from a1 to the output. At x = 1:
    # a1 = 2, a2 = 3 a1 = 6, o = 5 a2 + a1 = 32. E = (o - y)^2 / 2 with y = 0: delta3 = 32;
    # delta2 = 5 * 32 = 160; delta1 = 3 * 160 + 32 = 512 (the delta rule plus the skip's delta).
    # dE/dW3 = delta3 a2 = 192, dE/dW2 = delta2 a1 = 320, dE/dW1 = delta1 x = 512.
    net = nbbp.Network([1, 1, 1, 1], activation="identity", output="identity",
                       loss="squared_error", bias=False, residual=[(1, 3)])
    for W, value in zip(net.weights, (2.0, 3.0, 5.0)):
        W[...] = value
    assert_array_equal(net.forward([[1.0]]), [[32.0]])
    dWs, _ = net.gradients([[1.0]], [0.0])
    assert [float(dW[0, 0]) for dW in dWs] == [512.0, 320.0, 192.0]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("residual", [
    [(1, 3)], [(0, 2), (2, 4)], [(1, 2), (1, 3)], [(1, 4)], [(0, 4)]],
    ids=["hidden", "from-input", "two-from-one", "into-output", "input-to-output"])
def test_forward_and_gradients_equal_reference(rng, dtype, residual):
    net = nbbp.Network([5, 5, 5, 5, 5], activation=["tanh", "relu", "sigmoid"], output="softmax",
                       dtype=dtype, residual=residual, seed=3)
    X = rng.normal(size=(11, 5)).astype(dtype)
    y = rng.integers(0, 5, size=11)
    W, b, acts, _, skips, _ = reference_args(net)
    _, a_list = reference.forward(W, b, X, acts, skips=skips)
    assert_equivalent(net.forward(X), a_list[-1], dtype)
    dWs, dbs = reference.backprop(W, b, None, X, np.eye(5, dtype=dtype)[y], acts, "cross_entropy",
                                  skips=skips)
    got = net.gradients(X, y)
    for l in range(net.n_layers):
        assert_equivalent(got[0][l], dWs[l], dtype)
        assert_equivalent(got[1][l], dbs[l], dtype)


@pytest.mark.parametrize("activation", [h for h in HIDDEN if h not in KINKED])
def test_gradients_match_central_differences(rng, activation):
    net = nbbp.Network([4, 4, 4, 4, 4, 4], activation=activation, output="identity",
                       loss="squared_error", residual=[(0, 2), (1, 3), (1, 5)], batch_norm=False,
                       seed=5)
    for b in net.biases:
        b[...] = rng.normal(scale=0.5, size=b.shape)
    net2 = nbbp.Network([4, 4, 4, 4], residual=[(1, 3), (0, 2)], activation="tanh",
                        output="softmax", seed=6)
    check_central_differences(net, rng.normal(size=(5, 4)), rng.normal(size=(5, 4)))
    check_central_differences(net2, rng.normal(size=(5, 4)), np.eye(4)[rng.integers(0, 4, 5)])


def test_skips_carry_gradient_through_a_deep_sigmoid_stack(rng):
    # What residual connections are for: with a skip every 2 layers, the first layer of a
    # 12-layer sigmoid network gets orders of magnitude more gradient than without.
    X, y = rng.normal(size=(64, 8)), rng.integers(0, 3, size=64)
    ratios = {}
    for residual in (None, 2):
        net = nbbp.Network([8] + [8] * 11 + [3], activation="sigmoid", residual=residual, seed=0)
        dWs, _ = net.gradients(X, y)
        ratios[residual] = np.linalg.norm(dWs[0]) / np.linalg.norm(dWs[-1])
    assert ratios[2] > 100 * ratios[None]


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_fit_equals_reference(rng, name):
    X, y = rng.normal(size=(30, 4)), rng.normal(size=(30, 4))
    net = nbbp.Network([4, 6, 6, 6, 4], activation="tanh", output="identity",
                       loss="squared_error", residual=[(1, 3), (0, 4)], seed=2)
    W, b, acts, _, skips, _ = reference_args(net)
    W_ref, b_ref, losses = reference.train(W, b, None, X, y, acts, "squared_error", epochs=3,
                                           batch_size=8, learning_rate=0.05, optimizer=name,
                                           skips=skips, **OPTIMIZERS[name])
    history = net.fit(X, y, epochs=3, batch_size=8, learning_rate=0.05, optimizer=name,
                      shuffle=False)
    assert_allclose(history.loss, losses, rtol=1e-10)
    for l in range(net.n_layers):
        assert_allclose(net.weights[l], W_ref[l], rtol=1e-9, atol=1e-12)
        assert_allclose(net.biases[l], b_ref[l], rtol=1e-9, atol=1e-12)
