"""optimizer="lbfgs" (nbbp.LBFGS) in Network.fit: scipy's L-BFGS-B on the compiled loss and
gradient, full batch, an iteration an epoch. Against scikit-learn's lbfgs from the same weights
(through the drop-ins, in test_sklearn.py) and against SciPy driven by the reference here;
its history, validation, early stopping, callback, rollback, file round trip and refusals."""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from test_batchnorm import reference_args

import nbbp
from nbbp import reference

optimize = pytest.importorskip("scipy.optimize")


def data(rng, n=60):
    return rng.normal(size=(n, 4)), rng.integers(0, 3, size=n)


def snapshot(net):
    return (net._theta.copy(), net._opt.state.copy(), net._opt.steps, net.optimizer,
            net.rng.bit_generator.state, net.history)


def assert_unchanged(before, after):
    for a, b in zip(before, after):
        if isinstance(a, np.ndarray):
            assert_array_equal(a, b)
        else:
            assert a == b or a is b


@pytest.mark.parametrize("weighted", [False, True])
def test_lbfgs_follows_scipy_on_the_reference_loss(rng, weighted):
    # The same L-BFGS-B run, driven by the NumPy reference's loss and gradient: the same
    # iterates to rounding.
    X, y = data(rng)
    w = rng.uniform(0.2, 2, size=len(X)) if weighted else None
    net = nbbp.Network([4, 6, 3], activation="tanh", seed=1)
    W, b, acts, _, _, _ = reference_args(net)
    shapes = [M.shape for M in W] + [v.shape for v in b]
    sizes = [int(np.prod(s)) for s in shapes]
    Y, l2 = np.eye(3)[y], 1e-3

    def unpack(x):
        parts = np.split(x, np.cumsum(sizes)[:-1])
        return [p.reshape(s) for p, s in zip(parts, shapes)]

    def objective(x):
        params = unpack(x)
        Ws, bs = params[:2], params[2:]
        zs, a_list = reference.forward(Ws, bs, X, acts)
        E = reference.loss(zs[-1], a_list[-1], Y, acts[-1], "cross_entropy", w)
        E += 0.5 * l2 * sum(float(np.sum(M ** 2)) for M in Ws)
        dWs, dbs = reference.backward(Ws, bs, None, zs, a_list, Y, acts, "cross_entropy", l2,
                                      sample_weight=w)
        return E, np.concatenate([g.ravel() for g in dWs + dbs])

    x0 = np.concatenate([p.ravel() for p in W + b])
    expected = optimize.minimize(objective, x0, jac=True, method="L-BFGS-B",
                                 options=dict(maxiter=30, gtol=1e-5, maxcor=10, maxfun=15000))
    history = net.fit(X, y, epochs=30, optimizer="lbfgs", l2=l2, sample_weight=w)
    assert history.epochs == expected.nit == 30
    assert net._opt.steps == 30
    assert history.loss[-1] == pytest.approx(expected.fun, rel=1e-9)
    got = np.concatenate([M.ravel() for M in net.weights] + [v.ravel() for v in net.biases])
    assert_allclose(got, expected.x, rtol=1e-6, atol=1e-9)
    assert history.result.nit == 30
    assert np.all(np.diff(history.loss) <= 1e-12)  # L-BFGS's line search never goes up
    assert all(np.isnan(rate) for rate in history.learning_rate)
    assert len(history.grad_norm) == 30
    assert history.grad_norm[-1].shape == (2,)


def test_lbfgs_trains_float32_masked_and_residual_networks(rng):
    X, y = data(rng, 80)
    mask = (np.arange(6 * 4).reshape(6, 4) % 3 != 0).astype(float)
    net = nbbp.Network([4, 6, 6, 3], activation="tanh", dtype=np.float32, masks=[mask, None, None],
                       residual=[(1, 2)], skip="identity", seed=2)
    before = net.loss(X, y)
    history = net.fit(X, y, epochs=40, optimizer="lbfgs")
    assert history.loss[-1] < 0.7 * before
    assert np.all(net.weights[0][mask == 0] == 0)
    assert net.weights[0].dtype == np.float32


def test_lbfgs_validation_and_early_stopping(rng):
    X, y = data(rng, 80)
    net = nbbp.Network([4, 16, 3], seed=1)
    history = net.fit(X, y, epochs=300, optimizer="lbfgs", validation_fraction=0.25, patience=3)
    assert history.stopped_early
    assert history.epochs < 300
    best = history.best_epoch
    assert history.val_loss[best] == min(history.val_loss)
    assert len(history.val_score) == history.epochs
    # the network keeps the best iterate: its validation loss is the best one
    split = np.random.Generator(type(net.rng.bit_generator)())
    fresh = nbbp.Network([4, 16, 3], seed=1)
    split.bit_generator.state = fresh.rng.bit_generator.state
    val = np.sort(split.permutation(80)[:20])
    assert net.loss(X[val], y[val]) == pytest.approx(history.val_loss[best], rel=1e-12)


def test_a_callback_stops_lbfgs_and_an_error_puts_back_the_last_iterate(rng):
    X, y = data(rng)
    net = nbbp.Network([4, 6, 3], seed=1)
    history = net.fit(X, y, epochs=50, optimizer="lbfgs", callback=lambda e, h: e < 4)
    assert history.epochs == 5
    assert history.stopped_early
    kept = net._theta.copy()
    assert net.loss(X, y) == pytest.approx(history.loss[-1], rel=1e-12)

    def fail_at_3(epoch, history):
        if epoch == 3:
            raise RuntimeError("stop here")

    net2 = nbbp.Network([4, 6, 3], seed=1)
    with pytest.raises(RuntimeError, match="stop here"):
        net2.fit(X, y, epochs=50, optimizer="lbfgs", callback=fail_at_3)
    assert net2.history.epochs == 4
    assert net2.loss(X, y) == pytest.approx(net2.history.loss[-1], rel=1e-12)
    assert not np.array_equal(kept, net2._theta)


def test_lbfgs_saves_and_loads(rng, tmp_path):
    X, y = data(rng)
    net = nbbp.Network([4, 6, 3], seed=1)
    net.fit(X, y, epochs=5, optimizer=nbbp.LBFGS(max_fun=100, tol=1e-6, memory=5))
    net.save(tmp_path / "m.npz")
    loaded = nbbp.load(tmp_path / "m.npz")
    assert loaded.optimizer == nbbp.LBFGS(max_fun=100, tol=1e-6, memory=5)
    assert loaded._opt.steps == 5
    assert_array_equal(loaded.forward(X), net.forward(X))


def changed_after_it_was_made():
    optimizer = nbbp.LBFGS()
    optimizer.max_fun = 0
    return optimizer


@pytest.mark.parametrize("kwargs, message", [
    (lambda: dict(learning_rate=nbbp.schedules.StepLR(0.1, step_size=2)),
     "takes no learning-rate"),
    (lambda: dict(clip_norm=1.0), "clip_norm is for the gradient-descent optimizers"),
    (lambda: dict(optimizer=changed_after_it_was_made()), "max_fun must be an int >= 1"),
])
def test_lbfgs_refusals_change_nothing(rng, kwargs, message):
    X, y = data(rng)
    net = nbbp.Network([4, 6, 3], seed=1)
    net.fit(X, y, epochs=1, batch_size=8)
    before = snapshot(net)
    with pytest.raises(ValueError, match=message):
        net.fit(X, y, epochs=3, **{"optimizer": "lbfgs", **kwargs()})
    assert_unchanged(before, snapshot(net))


def test_lbfgs_refuses_batch_norm_and_partial_fit(rng):
    X, y = data(rng)
    net = nbbp.Network([4, 6, 3], batch_norm=True, seed=1)
    with pytest.raises(ValueError, match="does not train batch-normalised networks"):
        net.fit(X, y, optimizer="lbfgs")
    with pytest.raises(ValueError, match="partial_fit takes a gradient-descent optimizer"):
        nbbp.Network([4, 6, 3]).partial_fit(X, y, optimizer="lbfgs")
    with pytest.raises(ValueError, match="tol must be"):
        nbbp.LBFGS(tol=-1)
    assert repr(nbbp.LBFGS()) == "LBFGS(max_fun=15000, memory=10, tol=1e-05)"


def test_lbfgs_refuses_l2_per_batch_prints_when_verbose_and_needs_no_batch_size(rng, capsys):
    X, y = data(rng, n=20)  # fewer samples than the default batch_size: no warning for L-BFGS
    net = nbbp.Network([4, 6, 3], seed=1)
    with pytest.raises(ValueError, match="l2_per_batch is for mini-batches"):
        net.fit(X, y, optimizer="lbfgs", l2_per_batch=True)
    net.fit(X, y, epochs=2, optimizer="lbfgs", verbose=True)
    assert "L-BFGS iteration 2/2: loss" in capsys.readouterr().out
