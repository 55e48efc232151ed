"""Sample and class weights: E = sum_k w_k J_k / sum_k w_k per batch (scikit-learn's definition),
in fit, partial_fit, loss, score and gradients; against duplicated samples, reference.train,
reference.backprop, central differences and scikit-learn's compute_class_weight and metrics;
and bad weights refused with nothing changed."""

import numpy as np
import pytest
from conftest import DTYPES
from numpy.testing import assert_allclose, assert_array_equal
from test_batchnorm import reference_args
from test_gradcheck import central_difference, relative_error
from test_training import OPTIMIZERS

import nbbp
from nbbp import reference
from nbbp._validation import class_weights


def data(rng, n=24, n_in=4, n_out=3):
    return rng.normal(size=(n, n_in)), rng.integers(0, n_out, size=n)


def snapshot(net):
    return (net._theta.copy(), net._stats.copy(), net._opt.state.copy(), net._opt.steps,
            net.rng.bit_generator.state, net.history)


# ------------------------------------------------------------------------- what weights mean
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("loss, output", [("cross_entropy", "softmax"),
                                          ("squared_error", "identity")])
def test_integer_weights_equal_duplicated_samples_in_full_batch(rng, optimizer, loss, output):
    X, y = data(rng)
    if loss == "squared_error":
        y = rng.normal(size=(len(X), 3))
    w = rng.integers(0, 4, size=len(X))
    w[0] = 2
    keep = np.repeat(np.arange(len(X)), w)
    nets = [nbbp.Network([4, 6, 3], activation="tanh", output=output, loss=loss, seed=1)
            for _ in range(2)]
    weighted = nets[0].fit(X, y, epochs=4, batch_size=None, learning_rate=0.1,
                           optimizer=optimizer, sample_weight=w)
    duplicated = nets[1].fit(X[keep], y[keep], epochs=4, batch_size=None, learning_rate=0.1,
                             optimizer=optimizer)
    assert_allclose(weighted.loss, duplicated.loss, rtol=1e-13)
    assert_allclose(nets[0]._theta, nets[1]._theta, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", ["sgd", "momentum", "adam"])
@pytest.mark.parametrize("batch_norm", [False, True])
def test_weighted_fit_equals_reference(rng, name, batch_norm):
    X, y = data(rng, n=30)
    w = rng.uniform(0, 2, size=30)
    w[8:16] = 0  # the second batch weighs nothing: it takes no step
    # (a normalised layer's bias has gradient 0 up to rounding, which Adam would amplify)
    net = nbbp.Network([4, 6, 5, 3], activation="tanh", batch_norm=batch_norm, seed=2,
                       bias=[not batch_norm, not batch_norm, True])
    W, b, acts, norm, _, _ = reference_args(net)
    Y = np.eye(3)[y]
    ref = reference.train(W, b, None, X, Y, acts, "cross_entropy", epochs=3, batch_size=8,
                          learning_rate=0.05, optimizer=name, l2=0.01,
                          batch_norm=norm if batch_norm else None, sample_weight=w,
                          **OPTIMIZERS[name])
    history = net.fit(X, y, epochs=3, batch_size=8, learning_rate=0.05, optimizer=name, l2=0.01,
                      shuffle=False, sample_weight=w)
    assert net._opt.steps == 3 * 3  # 4 batches an epoch, one of weight 0
    assert_allclose(history.loss, ref[2], rtol=1e-10)
    for l in range(net.n_layers):
        assert_allclose(net.weights[l], ref[0][l], rtol=1e-9, atol=1e-12)
        if net.biases[l] is not None:
            assert_allclose(net.biases[l], ref[1][l], rtol=1e-9, atol=1e-12)
    if batch_norm:
        for l in range(net.n_layers - 1):
            assert_allclose(net.gammas[l], ref[3][l][0], rtol=1e-9, atol=1e-12)
            assert_allclose(net.running_means[l], ref[4][l][0], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_weighted_gradients_equal_reference_and_central_differences(rng, dtype):
    X, y = data(rng, n=9)
    X = X.astype(dtype)
    w = rng.uniform(0, 3, size=9)
    net = nbbp.Network([4, 5, 3], activation="sigmoid", dtype=dtype, seed=3)
    W, b, acts, _, _, _ = reference_args(net)
    dWs, dbs = reference.backprop(W, b, None, X, np.eye(3, dtype=dtype)[y], acts,
                                  "cross_entropy", sample_weight=w)
    got = net.gradients(X, y, sample_weight=w)
    tolerance = dict(rtol=1e-4, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12,
                                                                              atol=1e-15)
    for l in range(net.n_layers):
        assert_allclose(got[0][l], dWs[l], **tolerance)
        assert_allclose(got[1][l], dbs[l], **tolerance)
    assert net.loss(X, y, sample_weight=w) == pytest.approx(
        reference.loss(*(lambda zs, a: (zs[-1], a[-1]))(*reference.forward(W, b, X, acts)),
                       np.eye(3)[y], "softmax", "cross_entropy", w), rel=1e-5)
    if dtype == np.float64:
        for param, grad in zip(net.weights + net.biases, got[0] + got[1]):
            numeric = central_difference(lambda: net.loss(X, y, sample_weight=w), param)
            assert relative_error(numeric, grad) < 1e-6


def test_weights_scale_free_and_one_is_unweighted(rng):
    # Only the ratios of the weights count, and weights of 1 are no weights, bit for bit.
    X, y = data(rng)
    w = rng.uniform(0.5, 2, size=len(X))
    runs = {}
    for key, weights in (("none", None), ("ones", np.ones(len(X))), ("w", w), ("4w", 4 * w)):
        net = nbbp.Network([4, 6, 3], seed=1)
        runs[key] = (net.fit(X, y, epochs=2, batch_size=8, sample_weight=weights).loss,
                     net._theta.copy())
    assert runs["none"][0] == runs["ones"][0]
    assert_array_equal(runs["none"][1], runs["ones"][1])
    assert_allclose(runs["w"][1], runs["4w"][1], rtol=1e-12, atol=1e-15)
    assert not np.allclose(runs["w"][1], runs["none"][1])


def test_partial_fit_takes_sample_weight(rng):
    X, y = data(rng)
    w = rng.uniform(0, 2, size=len(X))
    a, b = nbbp.Network([4, 6, 3], seed=1), nbbp.Network([4, 6, 3], seed=1)
    a.fit(X, y, epochs=1, batch_size=8, optimizer="adam", sample_weight=w, shuffle=False)
    b.partial_fit(X, y, batch_size=8, optimizer="adam", sample_weight=w, shuffle=False)
    assert_array_equal(a._theta, b._theta)


def test_a_held_out_split_keeps_its_weights(rng):
    X, y = data(rng, n=40)
    w = rng.uniform(0.1, 2, size=40)
    net = nbbp.Network([4, 6, 3], seed=1)
    split = np.random.Generator(type(net.rng.bit_generator)())
    split.bit_generator.state = net.rng.bit_generator.state
    val = np.sort(split.permutation(40)[:10])
    history = net.fit(X, y, epochs=1, batch_size=8, validation_fraction=0.25, sample_weight=w)
    # fit's validation ran after the epoch, at the weights it left
    assert history.val_loss[0] == pytest.approx(net.loss(X[val], y[val], sample_weight=w[val]),
                                                rel=1e-14)
    assert history.val_score[0] == net.score(X[val], y[val], sample_weight=w[val])


# ------------------------------------------------------------------------------ class weights
def test_balanced_class_weights_are_scikit_learns(rng):
    utils = pytest.importorskip("sklearn.utils")
    y = np.array([0, 0, 0, 1, 3, 3, 0, 1, 3, 0])  # class 2 absent
    present = np.unique(y)
    expected = utils.compute_class_weight("balanced", classes=present, y=y)
    got = class_weights("balanced", y, 4)
    for c, weight in zip(present, expected):
        assert_allclose(got[y == c], weight, rtol=1e-15)


@pytest.mark.parametrize("class_weight", ["balanced", {0: 2.0, 2: 0.5}])
def test_class_weight_is_the_matching_sample_weight(rng, class_weight):
    X, y = data(rng)
    s = rng.uniform(0.5, 2, size=len(X))
    per_class = class_weights(class_weight, y, 3)
    a, b = nbbp.Network([4, 6, 3], seed=1), nbbp.Network([4, 6, 3], seed=1)
    a.fit(X, y, epochs=2, batch_size=8, class_weight=class_weight, sample_weight=s)
    b.fit(X, y, epochs=2, batch_size=8, sample_weight=s * per_class)
    assert_array_equal(a._theta, b._theta)
    if isinstance(class_weight, dict):
        assert_array_equal(per_class, np.array([2.0, 1.0, 0.5])[y])


def test_class_weight_for_one_sigmoid_output_and_probability_rows(rng):
    X = rng.normal(size=(20, 4))
    y = (rng.uniform(size=20) < 0.25).astype(float)
    a, b = (nbbp.Network([4, 5, 1], output="sigmoid", loss="log_loss", seed=1) for _ in range(2))
    a.fit(X, y, epochs=2, batch_size=8, class_weight={1: 3.0})
    b.fit(X, y, epochs=2, batch_size=8, sample_weight=np.where(y == 1, 3.0, 1.0))
    assert_array_equal(a._theta, b._theta)
    labels = rng.integers(0, 3, size=20)
    c, d = nbbp.Network([4, 5, 3], seed=1), nbbp.Network([4, 5, 3], seed=1)
    c.fit(X, labels, epochs=1, batch_size=8, class_weight="balanced")
    # a row's class: its argmax
    d.fit(X, np.eye(3)[labels], epochs=1, batch_size=8, class_weight="balanced")
    assert_array_equal(c._theta, d._theta)


def test_class_weighting_moves_the_decision_towards_the_rare_class(rng):
    # 90% of the samples are class 0; "balanced" makes a miss on class 1 cost 9 times more
    X = rng.normal(size=(400, 2))
    y = (X[:, 0] + 0.5 * rng.normal(size=400) > 1.3).astype(int)
    recall = {}
    for class_weight in (None, "balanced"):
        net = nbbp.Network([2, 8, 2], seed=0)
        net.fit(X, y, epochs=30, learning_rate=0.1, class_weight=class_weight)
        recall[class_weight] = np.mean(net.predict(X[y == 1]) == 1)
    assert recall["balanced"] > recall[None] + 0.1


# ----------------------------------------------------------------------------- loss and score
def test_weighted_score_is_scikit_learns(rng):
    metrics = pytest.importorskip("sklearn.metrics")
    X, y = data(rng, n=50)
    w = rng.uniform(0, 2, size=50)
    net = nbbp.Network([4, 6, 3], seed=1)
    assert net.score(X, y, sample_weight=w) == pytest.approx(
        metrics.accuracy_score(y, net.predict(X), sample_weight=w), rel=1e-14)
    Y = rng.normal(size=(50, 2))
    reg = nbbp.Network([4, 6, 2], output="identity", loss="squared_error", seed=1)
    assert reg.score(X, Y, sample_weight=w) == pytest.approx(
        metrics.r2_score(Y, reg.predict(X), sample_weight=w), rel=1e-12)
    assert reg.score(X, Y) == pytest.approx(metrics.r2_score(Y, reg.predict(X)), rel=1e-12)
    binary = nbbp.Network([4, 6, 1], output="sigmoid", loss="log_loss", seed=1)
    b = (y == 1).astype(float)
    assert binary.score(X, b, sample_weight=w) == pytest.approx(
        metrics.accuracy_score(b, binary.predict(X), sample_weight=w), rel=1e-14)


# ------------------------------------------------------------------------------- bad weights
@pytest.mark.parametrize("weights, error, message", [
    (lambda n: np.ones(n - 1), ValueError,
     r"one weight per sample, shape \(24,\); got shape \(23,\)"),
    (lambda n: np.ones((n, 1)), ValueError, r"got shape \(24, 1\)"),
    (lambda n: -np.ones(n), ValueError, r"finite and >= 0; sample_weight\[0\] is -1.0"),
    (lambda n: np.r_[np.ones(n - 1), np.nan], ValueError, r"sample_weight\[23\] is nan"),
    (lambda n: np.r_[np.inf, np.ones(n - 1)], ValueError, r"sample_weight\[0\] is inf"),
    (np.zeros, ValueError, "0 for every sample"),
    (lambda n: np.ones(n, bool), TypeError, "numbers, not booleans"),
    (lambda n: ["a"] * n, TypeError, "sample_weight"),
])
def test_bad_sample_weight_is_refused_and_changes_nothing(rng, weights, error, message):
    X, y = data(rng)
    net = nbbp.Network([4, 6, 3], seed=1)
    net.fit(X, y, epochs=1, batch_size=8)
    before = snapshot(net)
    for call in (lambda: net.fit(X, y, batch_size=8, sample_weight=weights(len(X))),
                 lambda: net.partial_fit(X, y, batch_size=8, sample_weight=weights(len(X))),
                 lambda: net.loss(X, y, sample_weight=weights(len(X))),
                 lambda: net.score(X, y, sample_weight=weights(len(X))),
                 lambda: net.gradients(X, y, sample_weight=weights(len(X)))):
        with pytest.raises(error, match=message):
            call()
    after = snapshot(net)
    for a, b in zip(before, after):
        if isinstance(a, np.ndarray):
            assert_array_equal(a, b)
        else:
            assert a == b or a is b


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(class_weight="balance"), ValueError, "class_weight must be 'balanced', a dict or None"),
    (dict(class_weight=[1, 2, 3]), TypeError, "class_weight must be 'balanced', a dict or None"),
    (dict(class_weight={3: 1.0}), ValueError, "names the class 3; the classes are 0 to 2"),
    (dict(class_weight={True: 1.0}), ValueError, "names the class True"),
    (dict(class_weight={"a": 1.0}), ValueError, "names the class 'a'"),
    (dict(class_weight={0: -1}), ValueError, r"class_weight\[0\] must be a finite number >= 0"),
    (dict(class_weight={0: np.nan}), ValueError, r"class_weight\[0\] must be"),
    (dict(class_weight={0: 0, 1: 0, 2: 0}), ValueError, "every sample the weight 0"),
    (dict(sample_weight=np.r_[np.zeros(23), np.ones(1)], validation_fraction=0.5),
     ValueError, "whose weights are all 0"),
])
def test_bad_class_weight_is_refused_and_changes_nothing(rng, kwargs, error, message):
    X, y = data(rng)
    y[-4:] = 2  # the last 4 samples, all of class 2
    net = nbbp.Network([4, 6, 3], seed=1)
    before = snapshot(net)
    with pytest.raises(error, match=message):
        net.fit(X, y, batch_size=8, **kwargs)
    for a, b in zip(before, snapshot(net)):
        if isinstance(a, np.ndarray):
            assert_array_equal(a, b)
        else:
            assert a == b or a is b


@pytest.mark.parametrize("spec", [dict(sizes=[4, 5, 2], output="identity", loss="squared_error"),
                                  dict(sizes=[4, 5, 2], output="sigmoid", loss="log_loss")])
def test_class_weight_needs_one_class_per_sample(rng, spec):
    net = nbbp.Network(**spec)
    with pytest.raises(ValueError, match="class_weight needs one class per sample"):
        net.fit(rng.normal(size=(10, 4)), rng.integers(0, 2, size=(10, 2)), class_weight="balanced")


@pytest.mark.parametrize("weighted", [False, True])
def test_l2_per_batch_is_scikit_learns_penalty_batch_by_batch(rng, weighted):
    # l2_per_batch: each batch minimises (sum w J + l2/2 ||W||^2) / sum w, so one call equals a
    # partial_fit per batch with l2 / (that batch's sum of weights)
    X, y = data(rng, n=30)
    w = rng.uniform(0.2, 3, size=30) if weighted else np.ones(30)
    one = nbbp.Network([4, 6, 3], seed=1)
    history = one.fit(X, y, epochs=1, batch_size=8, learning_rate=0.1, optimizer="adam", l2=0.3,
                      shuffle=False, sample_weight=w if weighted else None, l2_per_batch=True)
    each = nbbp.Network([4, 6, 3], seed=1)
    losses = []
    for start in range(0, 30, 8):
        rows = slice(start, start + 8)
        h = each.partial_fit(X[rows], y[rows], batch_size=None, learning_rate=0.1,
                             optimizer="adam",
                             l2=0.3 / w[rows].sum(), shuffle=False,
                             sample_weight=w[rows] if weighted else None)
        losses.append(h.loss[0] * len(w[rows]))
    assert_allclose(one._theta, each._theta, rtol=1e-13, atol=1e-16)
    assert history.loss[0] == pytest.approx(sum(losses) / 30, rel=1e-13)
    with pytest.raises(TypeError, match="l2_per_batch must be True or False"):
        one.fit(X, y, l2_per_batch="yes")
