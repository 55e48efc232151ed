"""fit and partial_fit: the whole-epoch kernel equals the reference training loop, the three
gradient-descent modes, History, early stopping, divergence, reproducibility, prediction."""

import sys

import numba
import numpy as np
import pytest
from conftest import worked_example_network
from numpy.testing import assert_allclose, assert_array_equal

import nbbp
from nbbp import reference

OPTIMIZERS = {
    "sgd": {},
    "momentum": {"momentum": 0.9},
    "nesterov": {"momentum": 0.9},
    "adagrad": {"eps": 1e-10},
    "rmsprop": {"rho": 0.99, "eps": 1e-8},
    "adam": {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8},
    "adamw": {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.01},
}


def snapshot(net):
    """Everything a failed call must leave untouched."""
    return (net._theta.copy(), net._opt.state.copy(), net._opt.steps, net.optimizer,
            net.rng.bit_generator.state)


def assert_unchanged(net, before):
    theta, state, steps, opt, rng_state = before
    assert_array_equal(net._theta, theta)
    assert_array_equal(net._opt.state, state)
    assert net._opt.steps == steps
    assert net.optimizer == opt
    assert net.rng.bit_generator.state == rng_state


def classification(rng, n=50, n_in=5, n_classes=3):
    return rng.normal(size=(n, n_in)), rng.integers(0, n_classes, size=n)


def reference_run(net, X, y, **kwargs):
    """reference.train from the network's current parameters."""
    Y = np.eye(net.sizes[-1])[y] if net.loss_name == "cross_entropy" and y.ndim == 1 else y
    Y = Y.reshape(len(X), -1)
    activations = [*net.activation, net.output]
    return reference.train(list(net.weights), list(net.biases), list(net.masks), X, Y,
                           activations, net.loss_name, **kwargs)


# ---------------------------------------------------------------- equivalence with the reference
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_three_epochs_of_each_optimizer_with_l2_equal_reference(rng, name):
    X, y = classification(rng)
    mask = rng.integers(0, 2, size=(7, 5))
    net = nbbp.Network([5, 7, 4, 3], activation=["tanh", "relu"], seed=1, masks=[mask, None, None],
                       bias=[True, False, True])
    W_ref, b_ref, losses = reference_run(net, X, y, epochs=3, batch_size=16, learning_rate=0.05,
                                         optimizer=name, l2=0.01, **OPTIMIZERS[name])
    history = net.fit(X, y, epochs=3, batch_size=16, learning_rate=0.05, optimizer=name, l2=0.01,
                      shuffle=False)
    for l in range(net.n_layers):
        assert_allclose(net.weights[l], W_ref[l], rtol=1e-10, atol=1e-10)
        if b_ref[l] is not None:
            assert_allclose(net.biases[l], b_ref[l], rtol=1e-10, atol=1e-10)
    assert_array_equal(net.weights[0][mask == 0], 0)  # masked weights stay exactly 0
    assert_allclose(history.loss, losses, rtol=1e-10)
    assert net._opt.steps == 3 * 4  # 50 samples in batches of 16: the last partial batch is used


@pytest.mark.parametrize("batch_size, steps_per_epoch", [(None, 1), (1, 10), (4, 3)])
def test_batch_stochastic_and_minibatch_equal_reference_step_for_step(rng, batch_size,
                                                                      steps_per_epoch):
    X = rng.normal(size=(10, 3))
    y = rng.normal(size=(10, 2))
    net = nbbp.Network([3, 6, 2], activation="sigmoid", output="identity", loss="squared_error")
    manual = nbbp.Network([3, 6, 2], activation="sigmoid", output="identity", loss="squared_error")
    seen = []
    net.fit(X, y, epochs=2, batch_size=batch_size, learning_rate=0.1, shuffle=False,
            callback=lambda epoch, h: seen.append(net._theta.copy()))
    size = 10 if batch_size is None else batch_size
    for epoch in range(2):
        # the same steps, one Network.step per batch
        for start in range(0, 10, size):
            manual.step(X[start:start + size], y[start:start + size], 0.1)
        assert_allclose(seen[epoch], manual._theta, rtol=1e-12, atol=1e-15)
        W_ref, _b_ref, _ = reference_run(
            nbbp.Network([3, 6, 2], activation="sigmoid", output="identity", loss="squared_error"),
            X, y, epochs=epoch + 1, batch_size=size, learning_rate=0.1)
        assert_allclose(net.weights[0] if epoch == 1 else seen[0][:18].reshape(6, 3), W_ref[0],
                        rtol=1e-12, atol=1e-15)
    assert net._opt.steps == 2 * steps_per_epoch


def test_shuffled_epochs_follow_the_networks_generator(rng):
    X, y = classification(rng)
    net = nbbp.Network([5, 8, 3], seed=7)
    orders_rng = np.random.Generator(np.random.PCG64())
    orders_rng.bit_generator.state = net.rng.bit_generator.state
    orders = [orders_rng.permutation(len(X)) for _ in range(2)]
    W_ref, _, _ = reference_run(net, X, y, epochs=2, batch_size=8, learning_rate=0.1, orders=orders)
    net.fit(X, y, epochs=2, batch_size=8, learning_rate=0.1, shuffle=True)
    assert_allclose(net.weights[1], W_ref[1], rtol=1e-10, atol=1e-12)


def test_large_batch_is_clipped_with_a_warning(rng):
    X, y = classification(rng, n=12)
    net = nbbp.Network([5, 4, 3])
    message = "batch_size=100 is larger than the 12 training samples"
    with pytest.warns(UserWarning, match=message) as record:
        net.fit(X, y, epochs=1, batch_size=100)
    assert record[0].filename == __file__  # it points at the caller's line
    assert net._opt.steps == 1


# ---------------------------------------------------------------------------- reproducibility
def train_twice(threads, dtype, batch_size):
    rng = np.random.default_rng(5)
    X, y = rng.normal(size=(300, 64)), rng.integers(0, 10, size=300)
    results = []
    saved = numba.get_num_threads()
    try:
        numba.set_num_threads(threads)
        for _ in range(2):
            net = nbbp.Network([64, 300, 520, 10], seed=3, dtype=dtype)
            h = net.fit(X, y, epochs=2, batch_size=batch_size, learning_rate=0.05,
                        optimizer="adam", validation_fraction=0.2)
            results.append((net._theta.copy(), h.as_arrays()))
    finally:
        numba.set_num_threads(saved)
    return results


# 150: every packed path (the strips of W from 64 samples, of A_prev from 64 neurons, and a
# last strip padded: 520 is not a whole number of strips)
@pytest.mark.parametrize("batch_size", [64, 150])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_same_seed_gives_bitwise_identical_runs_with_1_and_2_threads(dtype, batch_size):
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs 2 threads")
    runs = train_twice(1, dtype, batch_size) + train_twice(2, dtype, batch_size)
    theta0, hist0 = runs[0]
    for theta, hist in runs[1:]:
        assert_array_equal(theta, theta0)
        for key in hist0:
            assert_array_equal(hist[key], hist0[key])


def test_different_seeds_give_different_runs(rng):
    X, y = classification(rng)
    a, b = nbbp.Network([5, 8, 3], seed=1), nbbp.Network([5, 8, 3], seed=2)
    a.fit(X, y, epochs=1)
    b.fit(X, y, epochs=1)
    assert not np.array_equal(a._theta, b._theta)


# ------------------------------------------------------------------------------- partial_fit
@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_partial_fit_twice_equals_fit_for_two_epochs(rng, optimizer):
    X, y = classification(rng)
    a, b = nbbp.Network([5, 8, 3]), nbbp.Network([5, 8, 3])
    a.fit(X, y, epochs=2, batch_size=8, learning_rate=0.05, optimizer=optimizer, shuffle=False)
    for _ in range(2):
        b.partial_fit(X, y, batch_size=8, learning_rate=0.05, optimizer=optimizer, shuffle=False)
    assert_array_equal(a._theta, b._theta)
    assert_array_equal(a._opt.state, b._opt.state)
    assert a._opt.steps == b._opt.steps == 2 * 7


def test_partial_fit_with_another_optimizer_starts_fresh_state(rng):
    X, y = classification(rng)
    net = nbbp.Network([5, 8, 3])
    net.partial_fit(X, y, optimizer="adam")
    net.partial_fit(X, y, optimizer="momentum")
    assert net.optimizer == nbbp.SGD(momentum=0.9)
    assert net._opt.steps == 2  # one epoch of 50 samples in batches of 32, counted afresh


# ----------------------------------------------------------------------------------- History
def test_history_records_every_epoch(rng):
    X, y = classification(rng)
    net = nbbp.Network([5, 8, 6, 3])
    h = net.fit(X, y, epochs=4, validation_data=classification(rng, n=20))
    arrays = h.as_arrays()
    assert h.epochs == 4
    assert len(h.val_loss) == 4
    assert len(h.val_score) == 4
    assert arrays["grad_norm"].shape == arrays["delta_mean"].shape == (4, 3)
    assert np.all(arrays["grad_norm"] > 0)
    assert np.all(arrays["delta_mean"] > 0)
    assert all(0 <= s <= 1 for s in h.val_score)


@pytest.mark.parametrize("sizes, dtype, masked, rtol", [
    ([5, 4, 3], "float64", False, 1e-10),
    # strips of A_prev packed (70 neurons), ragged widths (37, 70), and with a mask the squares
    # summed again after it
    ([37, 70, 3], "float32", False, 1e-5),
    ([37, 70, 3], "float32", True, 1e-5)])
def test_history_grad_norm_is_the_mean_batch_gradient_norm(rng, sizes, dtype, masked, rtol):
    X, y = classification(rng, n=16, n_in=sizes[0])
    X = X.astype(dtype)
    masks = [rng.integers(0, 2, size=(sizes[1], sizes[0])), None] if masked else None
    net = nbbp.Network(sizes, dtype=dtype, masks=masks)
    probe = nbbp.Network(sizes, dtype=dtype, masks=masks)
    dWs, _ = probe.gradients(X[:8], y[:8])
    first = [np.linalg.norm(dW.astype(np.float64)) for dW in dWs]
    probe.step(X[:8], y[:8], 0.1)
    dWs, _ = probe.gradients(X[8:], y[8:])
    second = [np.linalg.norm(dW.astype(np.float64)) for dW in dWs]
    h = net.fit(X, y, epochs=1, batch_size=8, learning_rate=0.1, shuffle=False)
    assert_allclose(h.grad_norm[0], (np.array(first) + np.array(second)) / 2, rtol=rtol)


def test_history_shows_vanishing_gradients_in_a_deep_sigmoid_network(rng):
    X, y = classification(rng, n=64, n_in=8)
    net = nbbp.Network([8] + [16] * 6 + [3], activation="sigmoid")
    h = net.fit(X, y, epochs=1, batch_size=16, shuffle=False)
    delta = h.delta_mean[0]
    # sigmoid' <= 0.25: each layer back towards the input shrinks the deltas
    assert np.all(np.diff(delta[:-1]) > 0)
    assert delta[0] < delta[-2] / 50


def test_callback_can_stop_training(rng):
    X, y = classification(rng)
    net = nbbp.Network([5, 4, 3])
    calls = []
    h = net.fit(X, y, epochs=10, callback=lambda epoch, hist: calls.append(epoch) or epoch < 2)
    assert calls == [0, 1, 2]
    assert h.epochs == 3
    assert h.stopped_early


def test_verbose_without_tqdm_prints_one_line_per_epoch(rng, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # `import tqdm` raises ImportError
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    X, y = classification(rng)
    h = nbbp.Network([5, 4, 3]).fit(X, y, epochs=3, verbose=True, validation_fraction=0.25)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert lines[2] == (f"epoch 3/3  loss {h.loss[2]:.6g}  val_loss {h.val_loss[2]:.6g}  "
                        f"val_score {h.val_score[2]:.6g}")


def test_verbose_shows_a_tqdm_bar_with_the_loss(rng, capsys):
    pytest.importorskip("tqdm")
    X, y = classification(rng)
    h = nbbp.Network([5, 4, 3]).fit(X, y, epochs=3, verbose=True)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "3/3" in captured.err
    assert f"loss={h.loss[-1]:.4g}" in captured.err


def test_quiet_by_default(rng, capsys):
    X, y = classification(rng)
    nbbp.Network([5, 4, 3]).fit(X, y, epochs=2)
    assert capsys.readouterr().out == ""


# ---------------------------------------------------------------------------- early stopping
def test_early_stopping_restores_the_best_weights(rng):
    # Random labels: the network memorises the training set and the validation loss rises.
    X, y = classification(rng, n=40, n_in=10)
    validation = classification(rng, n=40, n_in=10)
    net = nbbp.Network([10, 64, 3], seed=0)
    per_epoch = []
    h = net.fit(X, y, epochs=200, batch_size=8, learning_rate=0.1, optimizer="momentum",
                validation_data=validation, patience=5,
                callback=lambda e, hist: per_epoch.append(net._theta.copy()))
    best = int(np.argmin(h.val_loss))
    assert h.stopped_early
    assert h.best_epoch == best
    assert h.epochs == best + 1 + 5
    assert_array_equal(net._theta, per_epoch[best])
    assert net.loss(*validation) == pytest.approx(h.val_loss[best], rel=1e-12)


def test_nan_validation_loss_is_never_an_improvement(rng):
    # Inputs of 1e308 through first-layer weights near 1 overflow every hidden z to inf; the
    # output logits become inf - inf = NaN, so the validation loss is NaN every epoch.
    X, y = classification(rng)
    X_val = np.full((5, 5), 1e308)
    net = nbbp.Network([5, 4, 3], activation="identity")
    net.weights[0][...] = 1.0
    h = net.fit(X, y, epochs=20, validation_data=(X_val, y[:5]), patience=3)
    assert np.isnan(h.val_loss).all()
    assert h.best_epoch is None
    assert h.stopped_early
    assert h.epochs == 3


def test_early_stopping_without_validation_holds_out_a_tenth(rng):
    X, y = classification(rng, n=100)
    h = nbbp.Network([5, 4, 3]).fit(X, y, epochs=2, early_stopping=True)
    assert len(h.val_loss) == 2


# --------------------------------------------------------------------------------- divergence
def test_divergence_raises_and_keeps_the_last_finite_epoch(rng):
    X = rng.normal(size=(64, 4)) * 10
    y = rng.normal(size=(64, 1)) * 100
    net = nbbp.Network([4, 32, 32, 1], activation="relu", output="identity", loss="squared_error")
    per_epoch = [net._theta.copy()]
    with pytest.raises(nbbp.DivergenceError, match="diverged in epoch") as info:
        net.fit(X, y, epochs=50, batch_size=8, learning_rate=0.5,
                callback=lambda e, hist: per_epoch.append(net._theta.copy()))
    assert np.isfinite(net._theta).all()
    assert_array_equal(net._theta, per_epoch[-1])
    assert info.value.history.epochs == len(per_epoch) - 1


# ---------------------------------------------------------------------------- bad arguments
@pytest.mark.parametrize("kwargs, error, match", [
    ({"optimizer": "lamb"}, ValueError,
     r"\['sgd', 'momentum', 'nesterov', 'adagrad', 'rmsprop', 'adam', 'adamw', 'lbfgs'\]"),
    ({"batch_size": 0}, ValueError, "batch_size must be an integer >= 1"),
    ({"batch_size": -4}, ValueError, "batch_size"),
    ({"batch_size": 2.5}, ValueError, "batch_size"),
    ({"learning_rate": 0}, ValueError, "learning_rate must be a finite number > 0"),
    ({"learning_rate": -0.1}, ValueError, "learning_rate"),
    ({"learning_rate": float("nan")}, ValueError, "learning_rate"),
    ({"l2": -0.1}, ValueError, "l2 must be a finite number >= 0"),
    ({"epochs": 0}, ValueError, "epochs must be an integer >= 1"),
    ({"patience": 3}, ValueError, "patience needs validation data"),
    ({"patience": 0, "validation_fraction": 0.2}, ValueError, "patience must be an integer >= 1"),
    ({"validation_fraction": 1.5}, ValueError, r"validation_fraction must be in \(0, 1\)"),
    ({"validation_fraction": 0.2, "validation_data": ([[0] * 5], [0])}, ValueError, "not both"),
    ({"validation_data": ([[0.0] * 4], [0])}, ValueError, "validation X has 4 features"),
    ({"validation_data": ([[0.0] * 5], [7])}, ValueError, "validation y has class label 7"),
    ({"validation_data": ([[np.nan] * 5], [0])}, ValueError, "validation X contains NaN"),
    ({"validation_data": "nope"}, ValueError, "validation_data must be a pair"),
    ({"callback": 3}, TypeError, "callback must be callable"),
    ({"early_stopping": "yes"}, TypeError, "early_stopping must be True or False"),
])
def test_bad_fit_arguments_raise_and_change_nothing(rng, kwargs, error, match):
    X, y = classification(rng)
    net = nbbp.Network([5, 4, 3])
    net.fit(X, y, epochs=1, optimizer="adam")  # some optimizer state to keep
    before = snapshot(net)
    with pytest.raises(error, match=match):
        net.fit(X, y, **{"epochs": 2, **kwargs})
    assert_unchanged(net, before)


def test_bad_partial_fit_arguments_change_nothing(rng):
    X, y = classification(rng)
    net = nbbp.Network([5, 4, 3])
    net.partial_fit(X, y, optimizer="adam")
    before = snapshot(net)
    with pytest.raises(ValueError, match="learning_rate"):
        net.partial_fit(X, y, optimizer="adam", learning_rate=-1)
    with pytest.raises(ValueError, match="X has 50 samples but y has 3"):
        net.partial_fit(X, y[:3], optimizer="adam")
    assert_unchanged(net, before)


# ------------------------------------------------------------------------- predict and score
def test_predict_and_score_for_cross_entropy(rng):
    X, y = classification(rng, n=200)
    net = nbbp.Network([5, 16, 3])
    net.fit(X, y, epochs=30, learning_rate=0.1, optimizer="momentum")
    proba = net.predict_proba(X)
    assert_allclose(proba.sum(axis=1), 1, rtol=1e-12)
    assert_array_equal(net.predict(X), np.argmax(proba, axis=1))
    assert net.score(X, y) == np.mean(net.predict(X) == y)
    assert net.score(X, np.eye(3)[y]) == net.score(X, y)


def test_predict_and_score_for_log_loss(rng):
    X = rng.normal(size=(40, 3))
    y = (X[:, 0] > 0).astype(float)
    net = nbbp.Network([3, 4, 1], activation="tanh", output="sigmoid", loss="log_loss")
    net.fit(X, y, epochs=50, learning_rate=0.5)
    predicted = net.predict(X)
    assert predicted.shape == (40,)
    assert_array_equal(predicted, (net.predict_proba(X)[:, 0] >= 0.5).astype(int))
    assert net.score(X, y) == np.mean(predicted == y) > 0.9


def test_predict_and_score_for_squared_error(rng):
    X = rng.uniform(-1, 1, size=(100, 1))
    y = np.sin(3 * X[:, 0])
    net = nbbp.Network([1, 32, 1], activation="tanh", output="identity", loss="squared_error")
    net.fit(X, y, epochs=300, batch_size=16, learning_rate=0.05, optimizer="adam")
    predicted = net.predict(X)
    r2 = 1 - np.sum((y - predicted) ** 2) / np.sum((y - y.mean()) ** 2)
    assert net.score(X, y) == pytest.approx(r2, rel=1e-12)
    assert r2 > 0.95
    with pytest.raises(ValueError, match="predict_proba needs a classification loss"):
        net.predict_proba(X)


# -------------------------------------------------------------------------- float32 end to end
@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_float32_training_stays_float32_and_close_to_float64(rng, optimizer):
    X, y = classification(rng, n=64)
    runs = {}
    for dtype in (np.float32, np.float64):
        net = nbbp.Network([5, 8, 3], dtype=dtype)
        h = net.fit(X, y, epochs=5, batch_size=16, learning_rate=0.01, optimizer=optimizer,
                    shuffle=False)
        assert all(a.dtype == dtype for a in net.weights + net.biases)
        assert net.forward(X).dtype == dtype
        runs[dtype] = h.loss
    assert_allclose(runs[np.float32], runs[np.float64], rtol=1e-4)


def test_worked_example_trains_with_masks_and_no_bias():
    net = worked_example_network()
    before_masked = [W[net.masks[l] == 0].copy() for l, W in enumerate(net.weights[:2])]
    net.fit(np.array([[1.0, 0.0]]), np.array([1.0]), epochs=20, batch_size=1, learning_rate=0.5,
            optimizer="adam", l2=0.1)
    for l in range(2):
        assert_array_equal(net.weights[l][net.masks[l] == 0], before_masked[l])
    assert net.biases[1] is None
    assert net.biases[2] is None


# ------------------------------------------------------------- optimizer lifecycle on failure
def test_a_training_call_that_fails_in_its_first_epoch_keeps_the_previous_optimizer(rng):
    X, y = classification(rng)
    net = nbbp.Network([5, 8, 3])
    net.fit(X, y, epochs=1, optimizer="adam")
    before = snapshot(net)
    history = net.history
    with pytest.raises(nbbp.DivergenceError):
        net.partial_fit(X, y, optimizer="sgd", learning_rate=1e200)
    assert_unchanged(net, before)
    assert net.history is history
    with pytest.raises(nbbp.DivergenceError):
        net.fit(X, y, epochs=3, optimizer="adam", learning_rate=1e200)
    assert_unchanged(net, before)


def test_optimizer_objects_are_checked_when_used(rng):
    X, y = classification(rng)
    net = nbbp.Network([5, 8, 3])
    adam = nbbp.Adam()
    adam.beta1 = 5.0  # changed after construction
    with pytest.raises(ValueError, match=r"beta1 must be in \[0.0, 1.0\)"):
        net.fit(X, y, epochs=1, optimizer=adam)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        net.fit(X, y, epochs=1, optimizer=nbbp.Optimizer())

    class Mine(nbbp.Adam):
        code = 99

    with pytest.raises(ValueError, match="optimizer must be one of"):
        net.fit(X, y, epochs=1, optimizer=Mine())
    mine = nbbp.Adam(beta1=0.8)
    net.fit(X, y, epochs=1, optimizer=mine)
    assert net.optimizer == mine
    assert net.optimizer is not mine


def test_an_eps_that_underflows_in_float32_is_refused(rng):
    X, y = classification(rng)
    with pytest.raises(ValueError, match="eps=1e-50 underflows to 0 in float32"):
        nbbp.Network([5, 8, 3], dtype=np.float32).fit(X, y, epochs=1,
                                                       optimizer=nbbp.Adam(eps=1e-50))
    with pytest.raises(ValueError, match=r"beta2=0\.99999999 rounds to 1 in float32"):
        nbbp.Network([5, 8, 3], dtype=np.float32).fit(X, y, epochs=1,
                                                       optimizer=nbbp.Adam(beta2=0.99999999))
    nbbp.Network([5, 8, 3], dtype=np.float64).fit(X, y, epochs=1, optimizer=nbbp.Adam(eps=1e-50))


@pytest.mark.parametrize("kwargs, match", [({"shuffle": "no"}, "shuffle must be True or False"),
                                           ({"verbose": 1}, "verbose must be True or False")])
def test_flags_must_be_booleans(rng, kwargs, match):
    X, y = classification(rng)
    with pytest.raises(TypeError, match=match):
        nbbp.Network([5, 8, 3]).fit(X, y, epochs=1, **kwargs)


def test_early_stopping_that_fires_on_the_last_epoch_is_not_an_early_stop(rng):
    X, y = classification(rng, n=40, n_in=10)
    validation = classification(rng, n=40, n_in=10)
    calls = []
    net = nbbp.Network([10, 64, 3])
    h = net.fit(X, y, epochs=2, batch_size=8, learning_rate=0.5, optimizer="momentum",
                validation_data=validation, patience=1,
                callback=lambda epoch, hist: calls.append(epoch))
    assert calls == list(range(h.epochs))  # the callback sees every epoch that ran
    assert h.stopped_early == (h.epochs < 2)


def test_patience_with_early_stopping_holds_out_validation_data(rng):
    X, y = classification(rng, n=100)
    h = nbbp.Network([5, 4, 3]).fit(X, y, epochs=2, early_stopping=True, patience=5)
    assert len(h.val_loss) == 2


@pytest.mark.parametrize("call", ["step", "fit", "partial_fit"])
def test_a_callback_that_trains_its_own_network_is_refused_and_changes_nothing(rng, call):
    # Before: allowed (a re-entrant lock), and a nested fit left the outer one running on with
    # the inner call's Adam state. Now a RuntimeError, and the network keeps its first epoch.
    X, y = classification(rng)
    net = nbbp.Network([5, 4, 3], seed=2)
    reference = nbbp.Network([5, 4, 3], seed=2)
    reference.fit(X, y, epochs=1, optimizer="adam", shuffle=False)
    nested = {"step": lambda: net.step(X[:4], y[:4], 0.01), "fit": lambda: net.fit(X, y),
              "partial_fit": lambda: net.partial_fit(X, y)}[call]
    with pytest.raises(RuntimeError, match=f"{call}: this network is in a training call already"):
        net.fit(X, y, epochs=3, optimizer="adam", shuffle=False,
                callback=lambda epoch, h: nested())
    assert_array_equal(net._theta, reference._theta)  # epoch 0 completed, nothing after it
    assert_array_equal(net._opt.state, reference._opt.state)
    assert net._opt.steps == reference._opt.steps
    assert net.history.epochs == 1
    net.fit(X, y, epochs=1)  # and the network trains again afterwards


@pytest.mark.parametrize("validation_fraction", [None, 0.2])
def test_labels_and_one_hot_rows_train_identically(rng, validation_fraction):
    # Integer labels stay labels (the epoch driver builds each batch's one-hot rows, so no
    # one-hot copy of the data set is made); one-hot rows are gathered. Same numbers either way.
    X, y = classification(rng, n=90)
    a, b = nbbp.Network([5, 8, 3], seed=4), nbbp.Network([5, 8, 3], seed=4)
    ha = a.fit(X, y, epochs=2, batch_size=16, validation_fraction=validation_fraction)
    hb = b.fit(X, np.eye(3)[y], epochs=2, batch_size=16, validation_fraction=validation_fraction)
    assert_array_equal(a._theta, b._theta)
    assert ha.loss == hb.loss
    assert ha.val_loss == hb.val_loss


# ------------------------------------------------------------- failures leave a consistent network
def test_an_exception_inside_an_epoch_leaves_the_network_as_after_the_last_complete_epoch(
        rng, monkeypatch):
    from nbbp import training as training_module

    X, y = classification(rng)
    net = nbbp.Network([5, 4, 3], seed=3)
    after = []
    real, calls = training_module.train_epoch, []

    def faulty(*args):
        calls.append(1)
        result = real(*args)  # the kernel has updated weights and Adam's state in place
        if len(calls) == 2:
            raise OverflowError("a fault inside epoch 1")
        return result

    monkeypatch.setattr(training_module, "train_epoch", faulty)
    with pytest.raises(OverflowError, match="a fault inside epoch 1"):
        net.fit(X, y, epochs=3, optimizer="adam", validation_fraction=0.2,
                callback=lambda epoch, h: after.append((*snapshot(net), h.as_arrays())))
    theta, state, steps, opt, rng_state, recorded = after[0]
    assert_unchanged(net, (theta, state, steps, opt, rng_state))
    for key, values in net.history.as_arrays().items():
        assert_array_equal(values, recorded[key])  # one epoch, as after epoch 0


def test_a_callback_of_the_wrong_signature_is_refused_before_training(rng):
    X, y = classification(rng)
    net = nbbp.Network([5, 4, 3])
    before = snapshot(net)
    with pytest.raises(TypeError,
                       match="callback must be callable as callback\\(epoch, history\\)"):
        net.fit(X, y, epochs=2, callback=lambda epoch: None)
    assert_unchanged(net, before)


@pytest.mark.parametrize("stop", [False, np.False_, np.bool_(0)])
def test_false_of_either_kind_from_a_callback_stops_training(rng, stop):
    X, y = classification(rng)
    h = nbbp.Network([5, 4, 3]).fit(X, y, epochs=5, callback=lambda epoch, hist: stop)
    assert h.epochs == 1
    assert h.stopped_early


def test_a_step_that_overflows_raises_and_keeps_the_weights():
    net = nbbp.Network([2, 3, 2], seed=0)
    before = net._theta.copy()
    with pytest.raises(nbbp.DivergenceError, match="step diverged"):
        net.step(np.array([[1e308, -1e308], [1e308, 1e308]]), np.array([0, 1]), 0.1)
    assert_array_equal(net._theta, before)


@pytest.mark.parametrize("dtype, rate", [(np.float32, 1e-46), (np.float32, 1e-300)])
def test_a_learning_rate_that_rounds_to_0_in_the_dtype_is_refused(rng, dtype, rate):
    X, y = classification(rng)
    net = nbbp.Network([5, 4, 3], dtype=dtype)
    before = snapshot(net)
    with pytest.raises(ValueError,
                       match=f"learning_rate={rate!r} is too small for a .* it rounds to 0"):
        net.fit(X, y, epochs=1, learning_rate=rate)
    assert_unchanged(net, before)


@pytest.mark.parametrize("sizes, batch, expected", [
    ([64, 32, 10], 32, False),        # W1: 32 x 2,368 multiply-adds a batch, 2,410 parameters
    ([64, 32, 10], 256, True),        # the same in batches of 256: run in chunks on the pool
    ([784, 128, 64, 10], 32, True),   # W2: 32 x 109,184 multiply-adds
    ([100, 100, 10], 128, True),      # 128 x 11,000 multiply-adds, over the cut-off alone
    ([100, 100, 10], 64, False),      # 64 x 11,000: under it, 11,110 parameters, no chunks
    ([200, 200, 10], 1, True),        # 42,210 parameters: a parallel optimizer step
])
def test_trains_on_threads_where_a_kernel_of_the_fit_runs_on_the_pool(sizes, batch, expected):
    from nbbp.training import trains_on_threads

    net = nbbp.Network(sizes)
    assert trains_on_threads(net._layout, net._theta.size, batch) is expected


def test_a_tiny_networks_fit_checks_its_inputs_on_one_thread(rng, monkeypatch):
    # W1's 20,000 x 64 is over the check's own cut-off (2^20 elements): a fit that trains on one
    # thread checks X on one thread too (waking the pool for it alone left its threads spinning
    # through the epoch), while predict, whose kernels use the pool, checks X on it. The spy
    # records the kernel's calls and runs the kernel itself.
    from nbbp import _validation

    calls = []
    kernel = _validation._first_non_finite_row

    def spy(arr, parallel):
        calls.append((arr.shape, bool(parallel)))
        return kernel(arr, parallel)

    monkeypatch.setattr(_validation, "_first_non_finite_row", spy)
    X = rng.normal(size=(20_000, 64)).astype(np.float32)
    y = rng.integers(0, 10, size=20_000)
    net = nbbp.Network([64, 32, 10], dtype=np.float32, seed=0)
    net.fit(X, y, epochs=1, batch_size=32, shuffle=False)
    assert ((20_000, 64), False) in calls
    assert ((20_000, 64), True) not in calls
    calls.clear()
    net.predict(X)  # checks X, then each chunk's layer outputs
    assert calls[0] == ((20_000, 64), True)
    X[12_345, 7] = np.nan  # and the check on one thread finds what the pool's finds
    before = snapshot(net)
    with pytest.raises(ValueError, match=r"X contains NaN or inf \(first at row 12345\)"):
        net.fit(X, y, epochs=1, batch_size=32)
    assert_unchanged(net, before)
