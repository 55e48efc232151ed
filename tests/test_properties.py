"""Property-based tests (hypothesis): for random architectures, batch sizes, activations,
losses, dtypes, masks and bias switches, with bounded inputs, the kernels equal the NumPy
reference, their gradients pass a central-difference check in float64, nothing is NaN, and
fit equals reference.train.

Array data come from ``np.random.default_rng(seed)`` with the seed drawn by hypothesis, so an
example is small to store and replays exactly; hypothesis draws the shapes and switches, and
``derandomize=True`` makes every run test the same examples. Numba compiles per dtype and
signature, not per size, so after the first example of each dtype an example costs
milliseconds.
"""

import numpy as np
from conftest import HIDDEN, OUTPUT_LOSS_PAIRS, assert_equivalent, random_targets, tol
from hypothesis import assume, event, given, note, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.testing import assert_allclose, assert_array_equal

import nbbp
from nbbp import reference
from nbbp.activations import ACTIVATIONS
from nbbp.deltas import hidden_delta
from nbbp.forward import forward_layer
from nbbp.gradients import scratch_size, weight_gradients
from nbbp.initializers import INITIALIZERS
from nbbp.optimizers import OPTIMIZERS

X_BOUND = 10.0  # |x| <= 10 everywhere
KINKED = ("relu", "leaky_relu")
SMOOTH = ("identity", "sigmoid", "tanh")
# Output/loss pairs whose loss is smooth in z away from the clip at eps and 1 - eps (no relu).
SMOOTH_PAIRS = [(o, loss) for o, loss in OUTPUT_LOSS_PAIRS if o not in KINKED]


def _settings(n):
    # deadline=None: the first example of each dtype compiles (or loads) the kernels. No health
    # check is suppressed: generation takes milliseconds, and assume() rejects about 5%.
    # database=None: derandomized runs replay the same examples, so nothing is worth storing.
    return settings(max_examples=n, deadline=None, derandomize=True, database=None)


# ------------------------------------------------------------------------------ strategies
# Widths around the kernels' tiles: forward 48 neurons (and 32 samples), gradients 16 neurons,
# the register blocks of 3 and 4; plus any width up to 40.
TILE_WIDTHS = [1, 2, 3, 4, 5, 15, 16, 17, 31, 32, 33, 47, 48, 49, 50]
# Batches around the forward's 32-sample tiles, the deltas' 16, the blocks of 4, and the
# transposed gradient path from 128 samples.
TILE_BATCHES = [1, 2, 3, 4, 5, 15, 16, 17, 31, 32, 33, 127, 128, 129, 131, 160]


def widths(low=1, high=40):
    return st.one_of(st.integers(low, high),
                     st.sampled_from([w for w in TILE_WIDTHS if w >= low]))


def batch_sizes(high=160):
    # hypothesis favours small integers: the second branch keeps the transposed path common
    return st.one_of(st.integers(1, high), st.integers(128, high),
                     st.sampled_from([n for n in TILE_BATCHES if n <= high]))


@st.composite
def architectures(draw, max_layers=4, width=widths, hidden=HIDDEN, pairs=OUTPUT_LOSS_PAIRS,
                  dtypes=(np.float64, np.float32)):
    """Keyword arguments of a valid ``nbbp.Network``, masks drawn from a seeded generator."""
    n_layers = draw(st.integers(1, max_layers))
    output, loss = draw(st.sampled_from(pairs))
    min_out = 2 if output == "softmax" or loss == "cross_entropy" else 1
    sizes = [draw(width()) for _ in range(n_layers)] + [draw(width(low=min_out))]
    activation = [draw(st.sampled_from(hidden)) for _ in range(n_layers - 1)]
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    masks = []
    for l in range(n_layers):
        # None (dense), or 0/1 with a density that includes all-masked and all-ones layers
        density = draw(st.one_of(st.none(), st.sampled_from([0.0, 0.3, 0.7, 1.0])))
        shape = (sizes[l + 1], sizes[l])
        masks.append(None if density is None else (rng.random(shape) < density).astype(np.int8))
    return dict(sizes=sizes, activation=activation, output=output, loss=loss,
                dtype=draw(st.sampled_from(dtypes)), masks=masks,
                bias=draw(st.lists(st.booleans(), min_size=n_layers, max_size=n_layers)),
                seed=draw(st.integers(0, 2**32 - 1)))


def activations_of(net):
    return list(net.activation) + [net.output]


def with_random_biases(net, rng):
    # Biases start at 0; nonzero ones make their gradient and their part of z show.
    for b in net.biases:
        if b is not None:
            b[...] = rng.uniform(-1, 1, size=b.shape)
    return net


def data(rng, net, n, scale=X_BOUND):
    X = rng.uniform(-scale, scale, size=(n, net.sizes[0])).astype(net.dtype)
    Y = random_targets(rng, n, net.sizes[-1], net.loss_name, net.dtype)
    return X, Y


def tile_events(n, widths):
    """Label the tile boundaries an example crosses (see --hypothesis-show-statistics)."""
    if n >= 128:
        event("transposed gradient path (n >= 128)")
    if n > 32:
        event("several 32-sample forward tiles")
    if max(widths) > 48:
        event("several 48-neuron forward tiles")
    if max(widths) > 16:
        event("several 16-neuron gradient tiles")


def off_the_kinks(net, X):
    """True when no relu-like pre-activation is within rounding distance of 0 (64 n_in eps of
    sum_j |w_ij a_kj| + |b_i|), so the kernels and the reference, summing in different orders,
    take the same side of the kink. An exact 0 (every term 0) is the same in both."""
    eps = np.finfo(net.dtype).eps
    a = X.astype(np.float64)
    for W, b, name in zip(net.weights, net.biases, activations_of(net)):
        W = W.astype(np.float64)
        bias = 0.0 if b is None else b.astype(np.float64)
        z = a @ W.T + bias
        size = np.abs(a) @ np.abs(W).T + np.abs(bias)
        if name in KINKED and np.any((np.abs(z) <= 64 * W.shape[1] * eps * size) & (size > 0)):
            return False
        a = reference.activation(name, z)
    return True


def softmax_log_loss_condition(net, O):
    """How far rounding is amplified in the output delta: 1 / (1 - max_i o_ki), the worst
    sample, for softmax with log_loss, else 1.

    That pair goes through g_i = (o_i - y_i) / (o_i (1 - o_i)), which grows like 1 / (1 - o_max),
    and the softmax Jacobian cancels it back to O(1): the kernels and the reference (the same
    formula, summed in other orders) agree to about eps / (1 - o_max), not to eps. A float32
    logit gap of 10 (1 - o = 4.5e-5) already costs 3 of its 7 digits. Other pairs have no such
    cancellation.
    """
    if (net.output, net.loss_name) != ("softmax", "log_loss"):
        return 1.0
    eps = np.finfo(net.dtype).eps
    return 1.0 / max(float(np.min(1 - O.max(axis=1).astype(np.float64))), eps)


def assert_equivalent_widened(got, expected, dtype, widen):
    """assert_equivalent with the tolerances ``widen`` times wider, and normwise (atol scaled by
    the largest entry): the error of a cancellation is absolute, not relative per entry."""
    if widen == 1:
        assert_equivalent(got, expected, dtype)
        return
    rtol = widen * tol(dtype)["rtol"]
    atol = max(widen * tol(dtype)["atol"], rtol * float(np.max(np.abs(expected), initial=0)))
    assert_allclose(got, expected, rtol=rtol, atol=atol)


# ------------------------------------------------------------- 1. the kernels equal the reference
@_settings(300)
@given(arch=architectures(), n=batch_sizes(), seed=st.integers(0, 2**32 - 1),
       labels=st.booleans())
def test_forward_loss_and_gradients_equal_reference(arch, n, seed, labels):
    """Forward: every layer's z and a equal reference.forward's. Loss and gradients: equal the
    reference's from the same forward values, the kernels' (reference.backward is the second
    half of reference.backprop).

    Why not reference.backprop from X: with |x| <= 10 units saturate, and f'(z) is computed
    from a (1 - a^2, a (1 - a)), so a one-ulp difference in a tanh output a = 1 - 2.5e-5 moves
    its f' by eps / 2.5e-5, a relative 2.4e-3 in float32; a layer whose gradient comes from
    saturated units then differs by that much between two correct implementations (found here:
    a 2-1 tanh network, dW off by 3.1e-3). Given the same forward values, the backward passes
    must agree to the conftest tolerances.
    """
    rng = np.random.default_rng(seed)
    net = with_random_biases(nbbp.Network(**arch), rng)
    X, Y = data(rng, net, n)
    tile_events(n, net.sizes)
    dtype, acts = net.dtype, activations_of(net)
    # cross_entropy also takes integer labels: one-hot rows for the reference
    y = Y
    if labels and net.loss_name == "cross_entropy":
        y = rng.integers(0, net.sizes[-1], size=n)
        Y = np.eye(net.sizes[-1], dtype=dtype)[y]
    weights, biases, masks = list(net.weights), list(net.biases), list(net.masks)

    zs_ref, a_ref = reference.forward(weights, biases, X, acts)
    zs, a_list = net._forward(X)
    for l in range(net.n_layers):
        assert zs[l].dtype == a_list[l + 1].dtype == dtype
        assert_equivalent(zs[l], zs_ref[l], dtype)
        assert_equivalent(a_list[l + 1], a_ref[l + 1], dtype)
    assert_array_equal(net.forward(X), a_list[-1])

    # Softmax with log_loss: widened by the cancellation its output delta carries
    widen = max(1.0, 8 * np.finfo(dtype).eps * softmax_log_loss_condition(net, a_list[-1])
                / tol(dtype)["rtol"])
    E = net.loss(X, y)
    E_same = reference.loss(zs[-1], a_list[-1], Y, net.output, net.loss_name)
    assert_allclose(E, E_same, rtol=10 * tol(dtype)["rtol"], atol=0)
    E_ref = reference.loss(zs_ref[-1], a_ref[-1], Y, net.output, net.loss_name)
    assert_allclose(E, E_ref, rtol=10 * widen * tol(dtype)["rtol"], atol=0)

    dWs, dbs = net.gradients(X, y)
    dWs_ref, dbs_ref = reference.backward(weights, biases, masks, zs, a_list, Y, acts,
                                          net.loss_name)
    for l in range(net.n_layers):
        assert dWs[l].dtype == dtype
        assert_equivalent_widened(dWs[l], dWs_ref[l], dtype, widen)
        if masks[l] is not None:
            assert_array_equal(dWs[l][masks[l] == 0], 0)
        assert (dbs[l] is None) == (biases[l] is None)
        if dbs[l] is not None:
            assert_equivalent_widened(dbs[l], dbs_ref[l], dtype, widen)


@_settings(300)
@given(n=batch_sizes(), n_in=widths(), n_out=widths(), hidden=st.sampled_from(HIDDEN),
       dtype=st.sampled_from([np.float64, np.float32]), parallel=st.booleans(),
       has_bias=st.booleans(), masked=st.booleans(), l2=st.sampled_from([0.0, 0.25]),
       seed=st.integers(0, 2**32 - 1))
def test_layer_kernels_serial_or_parallel_equal_reference(n, n_in, n_out, hidden, dtype, parallel,
                                                          has_bias, masked, l2, seed):
    # Through Network these sizes always run on one thread (below PARALLEL_MIN_WORK): call the
    # kernels with both values of ``parallel``.
    tile_events(n, [n_in, n_out])
    rng = np.random.default_rng(seed)
    A_prev = rng.uniform(-X_BOUND, X_BOUND, size=(n, n_in)).astype(dtype)
    W = rng.uniform(-1, 1, size=(n_out, n_in)).astype(dtype)
    b = rng.uniform(-1, 1, size=n_out).astype(dtype)
    mask = (rng.random((n_out, n_in)) < 0.5).astype(dtype) if masked else np.zeros((0, 0), dtype)
    if masked:
        W[mask == 0] = 0

    Z = np.full((n, n_out), np.nan, dtype)
    A = np.full_like(Z, np.nan)
    forward_layer(A_prev, W, b, has_bias, ACTIVATIONS[hidden], Z, A, parallel)
    Z_ref = A_prev @ W.T + (b if has_bias else 0)
    assert_equivalent(Z, Z_ref, dtype)
    if hidden in KINKED:
        size = np.abs(A_prev) @ np.abs(W).T + (np.abs(b) if has_bias else 0)
        assume(not np.any((np.abs(Z_ref) <= 64 * n_in * np.finfo(dtype).eps * size) & (size > 0)))
    assert_equivalent(A, reference.activation(hidden, Z_ref), dtype)

    # the delta rule back through this layer: W is W_next, A_prev and Z_prev its layer's a, z
    delta_next = rng.normal(size=(n, n_out)).astype(dtype)
    Z_prev = rng.uniform(-3, 3, size=(n, n_in)).astype(dtype)
    A_act = reference.activation(hidden, Z_prev)
    delta = np.full((n, n_in), np.nan, dtype)
    hidden_delta(delta_next, W, Z_prev, A_act, ACTIVATIONS[hidden], delta, parallel)
    assert_equivalent(delta, reference.hidden_delta(delta_next, W, Z_prev, A_act, hidden), dtype)

    dW = np.full((n_out, n_in), np.nan, dtype)
    db = np.full(n_out, np.nan, dtype)
    scratch = np.full(scratch_size(n, n_in, n_out), np.nan, dtype)
    weight_gradients(delta_next, A_prev, W, dtype(l2), mask, masked, dW, db, has_bias, parallel,
                     scratch)
    dW_ref, db_ref = reference.gradients(delta_next, A_prev, mask if masked else None, W, l2)
    assert_equivalent(dW, dW_ref, dtype)
    if has_bias:
        assert_equivalent(db, db_ref, dtype)
    else:
        assert np.isnan(db).all()  # untouched when the layer has no bias


# --------------------------------------------------- 2. gradients pass a central-difference check
H = 1e-5
MAX_RELATIVE_ERROR = 1e-6


def relative_error(numeric, analytic):
    scale = np.linalg.norm(numeric) + np.linalg.norm(analytic)
    return np.linalg.norm(numeric - analytic) / scale if scale > 0 else 0.0


def central_differences(net, X, y):
    """dE/dtheta for every parameter by (E(p + h) - E(p - h)) / 2h, in the layout of
    ``gradients``; a masked weight is no parameter, so its entry stays 0."""
    dWs = [np.zeros_like(W) for W in net.weights]
    dbs = [None if b is None else np.zeros_like(b) for b in net.biases]
    pairs = [(W, dW, M) for W, dW, M in zip(net.weights, dWs, net.masks)]
    pairs += [(b, db, None) for b, db in zip(net.biases, dbs) if b is not None]
    for param, grad, mask in pairs:
        for idx in np.ndindex(param.shape):
            if mask is not None and mask[idx] == 0:
                continue
            saved = param[idx]
            param[idx] = saved + H
            up = net.loss(X, y)
            param[idx] = saved - H
            down = net.loss(X, y)
            param[idx] = saved
            grad[idx] = (up - down) / (2 * H)
    return dWs, dbs


def flat(dWs, dbs):
    return np.concatenate([g.ravel() for g in dWs] + [g for g in dbs if g is not None])


@_settings(100)
@given(arch=architectures(max_layers=3, width=lambda low=1: st.integers(low, 5),
                          hidden=SMOOTH, pairs=SMOOTH_PAIRS, dtypes=(np.float64,)),
       n=st.integers(1, 8), scale=st.sampled_from([0.5, 2.0, X_BOUND]),
       seed=st.integers(0, 2**32 - 1))
def test_gradients_pass_central_differences(arch, n, scale, seed):
    rng = np.random.default_rng(seed)
    net = with_random_biases(nbbp.Network(**arch), rng)
    X, Y = data(rng, net, n, scale)
    numeric = flat(*central_differences(net, X, Y))
    analytic = flat(*net.gradients(X, Y))
    note(f"numeric {numeric}\nanalytic {analytic}")
    assert relative_error(numeric, analytic) < MAX_RELATIVE_ERROR


# ----------------------------------------------------------------------------- 3. nothing NaN
@st.composite
def bounded_inputs(draw, n_in, dtype):
    """(n, n_in) inputs in [-10, 10], drawn by hypothesis: 0, +-10, tiny and subnormal values
    included."""
    n = draw(st.integers(1, 40))
    elements = st.floats(-X_BOUND, X_BOUND, width=32 if dtype == np.float32 else 64)
    return draw(hnp.arrays(dtype, (n, n_in), elements=elements))


@_settings(200)
@given(arch=architectures(max_layers=3, width=lambda low=1: widths(low, 20)),
       init=st.sampled_from([None, *INITIALIZERS]), optimizer=st.sampled_from(list(OPTIMIZERS)),
       l2=st.sampled_from([0.0, 1e-3]), batch_size=st.one_of(st.none(), st.integers(1, 8)),
       seed=st.integers(0, 2**32 - 1), data_=st.data())
def test_nothing_is_nan_for_finite_bounded_inputs(arch, init, optimizer, l2, batch_size, seed,
                                                  data_):
    net = nbbp.Network(**arch, init=init)
    X = data_.draw(bounded_inputs(net.sizes[0], net.dtype), label="X")
    n = X.shape[0]
    Y = random_targets(np.random.default_rng(seed), n, net.sizes[-1], net.loss_name, net.dtype)

    assert np.isfinite(net.forward(X)).all()
    assert np.isfinite(net.loss(X, Y))
    dWs, dbs = net.gradients(X, Y)
    assert np.isfinite(flat(dWs, dbs)).all()
    E = net.step(X, Y, 1e-3)
    assert np.isfinite(E) and np.isfinite(net._theta).all()
    # fit raises DivergenceError on a non-finite loss or parameter; check its results anyway
    batch_size = None if batch_size is None else min(batch_size, n)
    history = net.fit(X, Y, epochs=1, batch_size=batch_size, learning_rate=1e-3,
                      optimizer=optimizer, l2=l2)
    assert np.isfinite(history.loss).all() and np.isfinite(net._theta).all()
    assert all(np.isfinite(g).all() for g in history.grad_norm + history.delta_mean)
    assert np.isfinite(net.forward(X)).all()


# ------------------------------------------------------------------ 4. fit equals reference.train
@_settings(150)
@given(arch=architectures(max_layers=3, width=lambda low=1: widths(low, 9), dtypes=(np.float64,)),
       n=st.integers(1, 40), batch_size=st.one_of(st.none(), st.integers(1, 40)),
       epochs=st.integers(1, 2), optimizer=st.sampled_from(list(OPTIMIZERS)),
       l2=st.sampled_from([0.0, 1e-3, 0.05]), learning_rate=st.sampled_from([1e-3, 0.01, 0.05]),
       seed=st.integers(0, 2**32 - 1))
def test_fit_equals_reference_train(arch, n, batch_size, epochs, optimizer, l2, learning_rate,
                                    seed):
    rng = np.random.default_rng(seed)
    net = with_random_biases(nbbp.Network(**arch), rng)
    X, Y = data(rng, net, n)
    assume(off_the_kinks(net, X))
    batch_size = None if batch_size is None else min(batch_size, n)
    W_ref, b_ref, losses = reference.train(
        list(net.weights), list(net.biases), list(net.masks), X, Y, activations_of(net),
        net.loss_name, epochs=epochs, batch_size=n if batch_size is None else batch_size,
        learning_rate=learning_rate, optimizer=optimizer, l2=l2)
    history = net.fit(X, Y, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                      optimizer=optimizer, l2=l2, shuffle=False)
    assert_allclose(history.loss, losses, rtol=1e-9, atol=1e-9)
    for l in range(net.n_layers):
        assert_allclose(net.weights[l], W_ref[l], rtol=1e-9, atol=1e-9)
        if net.masks[l] is not None:
            assert_array_equal(net.weights[l][net.masks[l] == 0], 0)
        if b_ref[l] is not None:
            assert_allclose(net.biases[l], b_ref[l], rtol=1e-9, atol=1e-9)
