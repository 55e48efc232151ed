"""Residual connections in both forms, a(t) = f(z(t) + a(s)) and the identity form
a(t) = a(s) + f(z(t)): the arguments, the kernels against their reference twins, hand-worked
networks, gradients against the reference, central differences and PyTorch, fit against
reference.train, and the identity form's remedy for vanishing gradients."""

import numpy as np
import pytest
from conftest import DTYPES, HIDDEN, OUTPUTS, assert_equivalent
from numpy.testing import assert_allclose, assert_array_equal
from test_batchnorm import check_central_differences, reference_args
from test_gradcheck import KINKED
from test_training import OPTIMIZERS

import nbbp
from nbbp import reference
from nbbp._layout import SKIP_AFTER_F, SKIP_FROM
from nbbp.activations import ACTIVATIONS, times_derivative_of_z_rows, times_derivative_rows
from nbbp.datasets import spirals
from nbbp.deltas import residual_delta, split_skip_delta
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
    targets = {t: s for s, t in expected}
    assert ([int(v) for v in net._layout[:, SKIP_FROM]]
            == [targets.get(l + 1, -1) for l in range(net.n_layers)])
    assert f"residual={list(expected)}, skip='activation'" in repr(net)


def test_identity_form_is_marked_on_the_layers_it_joins():
    net = nbbp.Network([4, 4, 4, 4, 4, 2], residual=[(1, 3), (0, 2)], skip="identity")
    net_before_f = nbbp.Network([3, 4, 4, 4, 4, 2], residual=[(1, 3)])
    assert net.skip == "identity"
    assert net_before_f.skip == "activation"
    assert [int(v) for v in net._layout[:, SKIP_AFTER_F]] == [0, 1, 1, 0, 0]
    assert [int(v) for v in net_before_f._layout[:, SKIP_AFTER_F]] == [0] * 5
    assert "skip='identity'" in repr(net)


@pytest.mark.parametrize("residual, error, message", [
    (0, ValueError, "residual must be an int >= 1"),
    (5, ValueError, r"residual=5 adds no skip: sizes \[2, 8, 8, 8, 3\] have no hidden layers"),
    ([(1, 4)], ValueError, r"joins layers of different widths: sizes\[1\] = 8, sizes\[4\] = 3"),
    ([(3, 1)], ValueError, r"residual pair \(3, 1\) must have 0 <= from < to <= 4"),
    ([(2, 2)], ValueError, r"residual pair \(2, 2\) must have"),
    ([(1, 5)], ValueError, r"residual pair \(1, 5\) must have"),
    ([(-1, 2)], ValueError, r"residual pair \(-1, 2\) must have"),
    ([(1, 3), (2, 3)], ValueError, "two skips into layer 3; at most one per layer"),
    ([(1, 2, 3)], TypeError,
     r"list of \(from, to\) pairs of layer indices; got the entry \(1, 2, 3\)"),
    ([(1.0, 2)], TypeError, "got the entry"),
    ("2", TypeError, "residual must be None, an int or a list of"),
    (True, TypeError, "residual must be None, an int or a list of"),
])
def test_bad_residual_argument(residual, error, message):
    with pytest.raises(error, match=message):
        nbbp.Network([2, 8, 8, 8, 3], residual=residual)


@pytest.mark.parametrize("skip, residual, message", [
    ("Identity", 1, r"skip must be one of \['activation', 'identity'\]; got 'Identity'"),
    (None, 1, "skip must be one of"),
    ("identity", [(1, 3), (2, 4)],
     (r"cannot join the output layer: residual pair \(2, 4\) ends at layer 4, the output "
      r"\(skip='activation' can\)")),
])
def test_bad_skip_argument(skip, residual, message):
    with pytest.raises(ValueError, match=message):
        nbbp.Network([2, 8, 8, 8, 8], residual=residual, skip=skip)


# ------------------------------------------------------------------------------ kernels
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("has_skip, after_f", [(True, False), (True, True), (False, False),
                                               (False, True)])
@pytest.mark.parametrize("name", OUTPUTS)
@pytest.mark.parametrize("n, width", SHAPES)
def test_add_skip_and_activate_equals_reference(rng, n, width, name, has_skip, after_f, dtype):
    Z = rng.normal(size=(n, width)).astype(dtype)
    A_skip = rng.normal(size=(n, width)).astype(dtype)
    expected_z = Z + A_skip if has_skip and not after_f else Z.copy()
    expected_a = reference.activation(name, expected_z)
    if has_skip and after_f:
        expected_a = expected_a + A_skip
    A = np.empty_like(Z)
    add_skip_and_activate(Z, A_skip, has_skip, after_f, ACTIVATIONS[name], A)
    assert_equivalent(Z, expected_z, dtype)
    assert_equivalent(A, expected_a, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", HIDDEN)
@pytest.mark.parametrize("n, width", SHAPES)
def test_split_skip_delta_equals_reference(rng, n, width, name, dtype):
    # delta holds dE/da of a layer a = a(s) + f(z): dE_da keeps it, delta becomes f'(z) dE/da.
    Z = rng.normal(size=(n, width)).astype(dtype)
    dE_da = rng.normal(size=(n, width)).astype(dtype)
    delta, kept = dE_da.copy(), np.full_like(dE_da, np.nan)
    split_skip_delta(delta, kept, Z, ACTIVATIONS[name])
    assert_array_equal(kept, dE_da)
    f_z = reference.activation(name, Z)
    assert_equivalent(delta, reference.activation_derivative(name, Z, f_z) * dE_da, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", HIDDEN)
def test_derivative_of_z_alone_equals_the_one_from_f_z(rng, name, dtype):
    # times_derivative_of_z_rows computes f(z) again; given a = f(z), times_derivative_rows
    # reads it: the two agree (to rounding: sigmoid and tanh are evaluated once more).
    Z = rng.normal(scale=3, size=(9, 13)).astype(dtype)
    D = rng.normal(size=Z.shape).astype(dtype)
    from_z, from_a = D.copy(), D.copy()
    times_derivative_of_z_rows(Z, np.int64(2), np.int64(7), ACTIVATIONS[name], from_z)
    A = reference.activation(name, Z).astype(dtype)
    times_derivative_rows(Z, A, np.int64(2), np.int64(7), ACTIVATIONS[name], from_a)
    assert_array_equal(from_z[:2], D[:2])
    assert_array_equal(from_z[7:], D[7:])
    assert_equivalent(from_z, from_a, dtype)


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


# ------------------------------------------------------------------------- the identity form
IDENTITY_NETWORKS = {  # (sizes, residual, Network keywords): no skip into the output layer
    "hidden": ([5, 5, 5, 5, 4], [(1, 3)], {}),
    "from the input": ([5, 5, 5, 5, 4], [(0, 2)], {}),
    "two from one": ([5, 5, 5, 5, 5, 4], [(1, 2), (1, 4)], {}),
    "chained, both forms' paths": ([5, 5, 5, 5, 5, 4], [(0, 2), (2, 4), (1, 3)], {}),
    "batch-normalised": ([5, 5, 5, 5, 5, 4], [(1, 3), (2, 4)], dict(batch_norm=True)),
}


def test_identity_skip_by_hand():
    # 1-1-1-1 network, relu hidden layers, identity output, W = 2, -3, 5, no biases, a skip
    # from a1 into layer 2 in the identity form. At x = 1: a1 = relu(2) = 2, z2 = -3 a1 = -6,
    # a2 = a1 + relu(z2) = 2, o = 5 a2 = 10. E = (o - y)^2 / 2 with y = 0: delta3 = 10;
    # dE/da2 = 5 * 10 = 50, delta2 = relu'(-6) * 50 = 0; dE/da1 = -3 * delta2 + dE/da2 = 50
    # (the skip's path has no relu' on it), delta1 = relu'(2) * 50 = 50.
    # dE/dW3 = delta3 a2 = 20, dE/dW2 = delta2 a1 = 0, dE/dW1 = delta1 x = 50.
    # Joining before f instead, z2 = -6 + 2 = -4 and a2 = 0: o = 0 and every gradient is 0.
    nets = {skip: nbbp.Network([1, 1, 1, 1], activation="relu", output="identity",
                               loss="squared_error", bias=False, residual=[(1, 2)], skip=skip)
            for skip in ("identity", "activation")}
    for net in nets.values():
        for W, value in zip(net.weights, (2.0, -3.0, 5.0)):
            W[...] = value
    assert_array_equal(nets["identity"].forward([[1.0]]), [[10.0]])
    dWs, _ = nets["identity"].gradients([[1.0]], [0.0])
    assert [float(dW[0, 0]) for dW in dWs] == [50.0, 0.0, 20.0]
    assert_array_equal(nets["activation"].forward([[1.0]]), [[0.0]])
    dWs, _ = nets["activation"].gradients([[1.0]], [0.0])
    assert [float(dW[0, 0]) for dW in dWs] == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", IDENTITY_NETWORKS)
def test_identity_form_forward_and_gradients_equal_reference(rng, dtype, kind):
    sizes, residual, extra = IDENTITY_NETWORKS[kind]
    activations = ["tanh", "relu", "sigmoid", "leaky_relu"][:len(sizes) - 2]
    net = nbbp.Network(sizes, activation=activations, dtype=dtype, residual=residual,
                       skip="identity", seed=3, **extra)
    X = rng.normal(size=(11, sizes[0])).astype(dtype)
    y = rng.integers(0, sizes[-1], size=11)
    W, b, acts, norm, skips, _ = reference_args(net)
    norm = norm if any(net.batch_norm) else None
    _, a_list = reference.forward(W, b, X, acts, norm, skips, skip="identity")
    assert_equivalent(net.forward(X, training=True), a_list[-1], dtype)
    ref = reference.backprop(W, b, None, X, np.eye(sizes[-1], dtype=dtype)[y], acts,
                             "cross_entropy", 0.0, norm, skips, "identity")
    got = net.gradients(X, y)
    for l in range(net.n_layers):
        assert_equivalent(got[0][l], ref[0][l], dtype)
        assert_equivalent(got[1][l], ref[1][l], dtype)
        if norm is not None and norm[l] is not None:
            assert_equivalent(got.gammas[l], ref[2][l], dtype)
            assert_equivalent(got.betas[l], ref[3][l], dtype)


@pytest.mark.parametrize("activation", [h for h in HIDDEN if h not in KINKED])
def test_identity_form_gradients_match_central_differences(rng, activation):
    net = nbbp.Network([4, 4, 4, 4, 4, 4], activation=activation, output="identity",
                       loss="squared_error", residual=[(0, 2), (1, 3), (1, 4), (2, 4)][:3],
                       skip="identity", seed=5)
    for b in net.biases:
        b[...] = rng.normal(scale=0.5, size=b.shape)
    net2 = nbbp.Network([4, 4, 4, 4], residual=[(0, 2)], activation=activation,
                        output="softmax", skip="identity", batch_norm=[True, False], seed=6)
    check_central_differences(net, rng.normal(size=(5, 4)), rng.normal(size=(5, 4)))
    check_central_differences(net2, rng.normal(size=(5, 4)), np.eye(4)[rng.integers(0, 4, 5)])


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_identity_form_fit_equals_reference(rng, name):
    X, y = rng.normal(size=(30, 4)), rng.normal(size=(30, 4))
    net = nbbp.Network([4, 6, 6, 6, 4], activation="sigmoid", output="identity",
                       loss="squared_error", residual=[(1, 3)], skip="identity", seed=2)
    W, b, acts, _, skips, _ = reference_args(net)
    W_ref, b_ref, losses = reference.train(W, b, None, X, y, acts, "squared_error", epochs=3,
                                           batch_size=8, learning_rate=0.05, optimizer=name,
                                           skips=skips, skip="identity", **OPTIMIZERS[name])
    history = net.fit(X, y, epochs=3, batch_size=8, learning_rate=0.05, optimizer=name,
                      shuffle=False)
    assert_allclose(history.loss, losses, rtol=1e-10)
    for l in range(net.n_layers):
        assert_allclose(net.weights[l], W_ref[l], rtol=1e-9, atol=1e-12)
        assert_allclose(net.biases[l], b_ref[l], rtol=1e-9, atol=1e-12)


def deep_remedies_network(skip, activation="sigmoid"):
    """The network of examples/deep_remedies.py: 20 layers, hidden width 32, a skip every 2."""
    return nbbp.Network([2] + [32] * 19 + [3], activation=activation, init="xavier",
                        residual=2, skip=skip, seed=0)


def test_deep_identity_form_gradients_equal_torch_autograd():
    torch = pytest.importorskip("torch")
    X, y = spirals(n_samples=64, n_classes=3, seed=1)
    net = deep_remedies_network("identity")
    skips = {t: s for s, t in net.residual}
    Ws = [torch.tensor(W, requires_grad=True) for W in net.weights]
    bs = [torch.tensor(b, requires_grad=True) for b in net.biases]
    a = [torch.from_numpy(X)]
    for l in range(net.n_layers):
        z = a[-1] @ Ws[l].T + bs[l]
        if l == net.n_layers - 1:
            a.append(z)
        else:
            a.append(torch.sigmoid(z) + (a[skips[l + 1]] if l + 1 in skips else 0))
    torch.nn.functional.cross_entropy(a[-1], torch.from_numpy(y)).backward()
    dWs, dbs = net.gradients(X, y)
    for l in range(net.n_layers):
        assert_allclose(dWs[l], Ws[l].grad.numpy(), rtol=1e-10, atol=1e-14)
        assert_allclose(dbs[l], bs[l].grad.numpy(), rtol=1e-10, atol=1e-14)


def test_identity_form_carries_gradient_to_every_hidden_layer():
    # Joining before f, each skip still passes a sigmoid': the hidden layers' gradients fall by
    # 1e-7 from the last hidden layer to the second. In the identity form the skips' path has
    # no f' on it: every hidden layer's gradient is of the same order (0.14 to 0.93 here).
    X, y = spirals(n_samples=256, n_classes=3, seed=0)
    spread = {}
    for skip in ("activation", "identity"):
        dWs, _ = deep_remedies_network(skip).gradients(X, y)
        norms = [np.linalg.norm(dW) for dW in dWs[1:-1]]
        spread[skip] = min(norms) / max(norms)
    assert spread["activation"] < 1e-5
    assert spread["identity"] > 0.05


@pytest.mark.xfail(strict=True, reason="issue 18's target for sigmoid (first/last >= 0.1, loss "
                   "clearly below ln 3) is not met: measured 2.3e-3 and 1.158; each sigmoid "
                   "block adds its mean 0.5 to the skips' sum, which inflates the last layer's "
                   "input and gradient (see examples/deep_remedies.py)")
def test_identity_form_meets_the_deep_sigmoid_target():
    X, y = spirals(n_samples=1500, n_classes=3, seed=0)
    history = deep_remedies_network("identity").fit(X, y, epochs=30, batch_size=32,
                                                    learning_rate=0.01, optimizer="momentum")
    norms = history.grad_norm[0]
    assert norms[0] / norms[-1] >= 0.1
    assert history.loss[-1] < np.log(3) - 0.1


def test_identity_form_with_tanh_meets_the_deep_target():
    # With a branch of mean 0 the same 20-layer network, skip every 2, learns the spirals.
    X, y = spirals(n_samples=1500, n_classes=3, seed=0)
    history = deep_remedies_network("identity", "tanh").fit(
        X, y, epochs=30, batch_size=32, learning_rate=0.01, optimizer="momentum")
    norms = history.grad_norm[0]
    assert norms[0] / norms[-1] >= 0.1  # 0.30
    assert history.loss[-1] < np.log(3) / 2  # 0.0015
