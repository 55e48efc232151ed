"""Tiny networks, chunk by chunk (nbbp.passes.chunk_rows, training.chunked_batch): a batch whose
matrix kernels would all run on one thread is split into chunks of CHUNK_ROWS samples, each run
through both passes on one thread, and the chunks' gradients are added in chunk order. The
gradient is still dE/dtheta of the whole batch (reference, central differences, the unchunked
driver), the compiled driver and the Python twin agree bit for bit, and a fit gives the same bits
on 1 and 2 threads."""

import numba
import numpy as np
import pytest
from conftest import COMPILE_LISTENER
from numpy.testing import assert_array_equal
from test_gradcheck import central_difference, relative_error

import nbbp
from nbbp import passes, reference, training
from nbbp._layout import CODE, N_OUT, rows_of
from nbbp.passes import CHUNK_ROWS, chunk_rows, n_weights

SIZES = [6, 9, 4]  # 90 weights: any batch of up to 11,650 samples is tiny
N = 2 * CHUNK_ROWS + 22  # three chunks, the last short


def tiny(dtype=np.float64, **spec):
    net = nbbp.Network(SIZES, seed=2, dtype=dtype, **spec)
    rng = np.random.default_rng(9)
    for b in net.biases:
        if b is not None:
            b[...] = rng.normal(scale=0.5, size=b.shape)
    return net


def data(rng, n=N, dtype=np.float64):
    X = rng.normal(size=(n, SIZES[0])).astype(dtype)
    return X, np.eye(SIZES[-1], dtype=dtype)[rng.integers(0, SIZES[-1], n)]


def test_which_batches_are_chunked():
    weights = n_weights(tiny()._layout)
    assert weights == 6 * 9 + 9 * 4
    assert chunk_rows(N, weights, True) == CHUNK_ROWS
    assert chunk_rows(CHUNK_ROWS, weights, True) == CHUNK_ROWS  # one chunk: the batch itself
    assert chunk_rows(CHUNK_ROWS + 1, weights, True) == CHUNK_ROWS
    assert chunk_rows(N, weights, False) == N  # batch norm, skips or dropout: never
    big = nbbp.Network([784, 128, 64, 10])._layout  # W2: its first layer is on the pool
    assert chunk_rows(256, n_weights(big), True) == 256
    # the largest tiny batch of W1 (64-32-10) is chunked, the next is not
    w1 = n_weights(nbbp.Network([64, 32, 10])._layout)
    last = ((1 << 20) - 1) // w1
    assert chunk_rows(last, w1, True) == CHUNK_ROWS
    assert chunk_rows(last + 1, w1, True) == last + 1


def driver_pass(net, X, Y, sample_weight=None):
    """The epoch driver on one batch of a dense network at learning rate 0: (its gradients, its
    sum of (weighted) J, its Epochs, whose buffers hold the chunks' passes)."""
    n = X.shape[0]
    epochs = training.Epochs(net._layout, net.sizes, net.dtype, n, None, False)
    assert epochs.chunks is not None
    grad, theta = np.zeros_like(net._theta), net._theta.copy()
    total, steps, used, _ = epochs.run(
        X, Y, np.zeros(0, np.int64), np.arange(n), theta, grad, net._mask_theta, net._layout,
        net._loss_code, net._eps, 0.0, nbbp.SGD(), np.zeros((0, theta.size), net.dtype), 0.0, 0,
        np.zeros(net.n_layers), np.zeros(net.n_layers), 0.0, sample_weight)
    assert (steps, used) == (1, n)
    assert_array_equal(theta, net._theta)
    return grad, total, epochs


def chunks(n):
    """The rows of each chunk of a batch of n samples."""
    return [slice(r0, min(r0 + CHUNK_ROWS, n)) for r0 in range(0, n, CHUNK_ROWS)]


def chunk_forward(net, X):
    """(zs, [X] + activations) of one chunk, by the Python forward. (A row's z_k need not be
    the same bits in a batch of another size: the kernels sum in another order from
    PACK_MIN_ROWS rows up.)"""
    zs, a_list, _ = passes.forward_layers(X, net._theta, net._stats, net._layout)
    return zs, a_list


def chunk_layer_rows(buffer, layout, n, l):
    """Layer l's rows of a batch run chunk by chunk: each chunk's in its own slice of buffer."""
    units = int(layout[:, N_OUT].sum())
    return np.concatenate([rows_of(buffer[r0 * units:min(r0 + CHUNK_ROWS, n) * units], layout,
                                   min(CHUNK_ROWS, n - r0), l) for r0 in range(0, n, CHUNK_ROWS)])


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_compiled_and_python_chunks_agree_bit_for_bit(rng, dtype, masked, weighted):
    spec = dict(masks=[np.arange(54).reshape(9, 6) % 4 != 1, None]) if masked else {}
    net = tiny(dtype, bias=[True, False], **spec)
    X, Y = data(rng, dtype=dtype)
    w = rng.uniform(0, 2, size=N) if weighted else None
    grad_c, total_c, _ = driver_pass(net, X, Y, w)
    grad, E = passes.backprop(X, Y, net._theta, net._stats, net._mask_theta, net._layout,
                              net._loss_code, net._eps, sample_weight=w)
    assert_array_equal(grad_c, grad)
    J = np.empty(N)
    for rows in chunks(N):
        zs, a_list = chunk_forward(net, X[rows])
        nbbp.losses.sample_losses(zs[-1], a_list[-1], Y[rows], net._layout[-1, CODE],
                                  net._loss_code, net._eps, J[rows])
    assert float(np.average(J, weights=w)) == E
    terms = J if w is None else w * J
    # each J_k is computed in the network's dtype, by a function that the driver compiles into
    # its own code and fastmath may reassociate there: a few roundings of the dtype each
    assert abs(total_c - terms.sum()) <= 8 * np.finfo(dtype).eps * np.abs(terms).sum()


def test_the_driver_keeps_each_chunks_layers_in_its_own_slice(rng):
    net = tiny()
    X, Y = data(rng)
    _, _, epochs = driver_pass(net, X, Y)
    forwards = [chunk_forward(net, X[rows]) for rows in chunks(N)]
    for l in range(net.n_layers):
        assert_array_equal(chunk_layer_rows(epochs.z_buf, net._layout, N, l),
                           np.concatenate([zs[l] for zs, _ in forwards]))
        assert_array_equal(chunk_layer_rows(epochs.a_buf, net._layout, N, l),
                           np.concatenate([a_list[l + 1] for _, a_list in forwards]))


@pytest.mark.parametrize("output, loss", [("softmax", "cross_entropy"),
                                          ("identity", "squared_error")])
def test_chunked_gradients_equal_the_reference_and_central_differences(rng, output, loss):
    net = nbbp.Network(SIZES, activation="tanh", output=output, loss=loss, seed=1)
    X = rng.normal(size=(N, SIZES[0]))
    Y = data(rng)[1] if loss == "cross_entropy" else rng.normal(size=(N, SIZES[-1]))
    dWs, dbs = net.gradients(X, Y)
    ref_W, ref_b = reference.backprop(list(net.weights), list(net.biases), list(net.masks), X, Y,
                                      ["tanh", output], loss)
    for l in range(net.n_layers):
        np.testing.assert_allclose(dWs[l], ref_W[l], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(dbs[l], ref_b[l], rtol=1e-12, atol=1e-15)
        numeric = central_difference(lambda: net.loss(X, Y), net.weights[l])
        assert relative_error(numeric, dWs[l]) < 1e-7, f"weights[{l}]"
        numeric = central_difference(lambda: net.loss(X, Y), net.biases[l])
        assert relative_error(numeric, dbs[l]) < 1e-7, f"biases[{l}]"


def fit_run(net, X, y, **options):
    history = net.fit(X, y, epochs=2, learning_rate=0.05, optimizer="adam", **options)
    return net._theta.copy(), history.as_arrays()


OPTIONS = {"plain": {}, "l2, clipping, a mask": dict(l2=0.01, clip_norm=0.05),
           "sample weights": dict(sample_weight=True),
           "l2 per batch, sample weights": dict(l2=0.01, l2_per_batch=True, sample_weight=True)}


@pytest.mark.parametrize("options", list(OPTIONS))
def test_chunked_fit_equals_the_unchunked_driver(rng, monkeypatch, options):
    # the same epochs with every batch run whole (no chunk buffers): the same training, in
    # another order of the sums
    X = rng.normal(size=(300, SIZES[0]))
    y = rng.integers(0, SIZES[-1], 300)
    spec = dict(OPTIONS[options])
    if spec.pop("sample_weight", False):
        spec["sample_weight"] = rng.uniform(0.5, 2, 300)
    masks = [np.arange(54).reshape(9, 6) % 4 != 1, None] if "mask" in options else None
    runs = []
    for chunked in (True, False):
        if not chunked:
            monkeypatch.setattr(training, "chunk_buffers", lambda *args: None)
        runs.append(fit_run(tiny(masks=masks), X, y, batch_size=150, shuffle=False, **spec))
    (theta, history), (theta_whole, history_whole) = runs
    assert not np.array_equal(theta, theta_whole)  # the sums' order differs
    np.testing.assert_allclose(theta, theta_whole, rtol=1e-9, atol=1e-12)
    for key in history:
        np.testing.assert_allclose(history[key], history_whole[key], rtol=1e-9, atol=1e-12,
                                   err_msg=key)


@pytest.mark.parametrize("batch_size", [N, 256])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_chunked_fit_is_bitwise_identical_on_1_and_2_threads(rng, dtype, batch_size):
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs 2 threads")
    X = rng.normal(size=(600, 64)).astype(dtype)
    y = rng.integers(0, 10, 600)
    runs = []
    saved = numba.get_num_threads()
    try:
        for threads in (1, 2, 1, 2):
            numba.set_num_threads(threads)
            net = nbbp.Network([64, 32, 10], seed=3, dtype=dtype)
            runs.append(fit_run(net, X, y, batch_size=batch_size, l2=1e-3, clip_norm=1.0,
                                validation_fraction=0.2))
    finally:
        numba.set_num_threads(saved)
    theta0, history0 = runs[0]
    for theta, history in runs[1:]:
        assert_array_equal(theta, theta0)
        for key in history0:
            assert_array_equal(history[key], history0[key], err_msg=key)


def drivers_called(monkeypatch):
    """A list that gets (chunks given, pool) for each epoch driver call from here on."""
    seen = []
    real = training.train_epoch

    def spy(*args):
        seen.append((args[-2] is not None, args[-1]))  # the chunks, and the pool (last)
        return real(*args)

    monkeypatch.setattr(training, "train_epoch", spy)
    return seen


@pytest.mark.parametrize("spec, chunked", [({}, True), (dict(batch_norm=True), False),
                                           (dict(sizes=[6, 9, 9, 4], residual=[(1, 2)]), False),
                                           (dict(dropout=0.3), False)])
def test_only_dense_networks_without_dropout_get_chunks(rng, monkeypatch, spec, chunked):
    net = nbbp.Network(seed=0, **{"sizes": SIZES, **spec})
    X = rng.normal(size=(N, net.sizes[0]))
    y = rng.integers(0, net.sizes[-1], N)
    seen = drivers_called(monkeypatch)
    net.fit(X, y, epochs=1, batch_size=N, shuffle=False)
    # chunked or not, no layer kernel of a network this small runs on threads: its driver calls
    # their specialisations without a parallel loop alone (pool None)
    assert seen == [(chunked, None)]


@pytest.mark.parametrize("batch_size, pool", [(442, None), (443, np.bool_(True))])
def test_the_kernels_of_a_chunked_driver_use_threads_only_over_the_cut_off(rng, monkeypatch,
                                                                           batch_size, pool):
    # W1's network: a batch of 442 (442 x 2,368 < 2^20) runs in chunks, each chunk's kernels
    # on its thread, and so does any smaller one; from 443 up a whole batch's kernels may use
    # the pool, and the driver gets a bool (the last batch, short, still runs in chunks)
    net = nbbp.Network([64, 32, 10], seed=0)
    seen = drivers_called(monkeypatch)
    X = rng.normal(size=(batch_size + 300, 64))
    net.fit(X, rng.integers(0, 10, X.shape[0]), epochs=1, batch_size=batch_size, shuffle=False)
    assert seen == [(True, pool)]
    assert training.trains_on_threads(net._layout, net._theta.size, batch_size)


def test_a_batch_size_over_the_cut_off_chunks_only_its_tiny_batches(rng, monkeypatch):
    # W1's network: a batch of 1,000 is not tiny (1,000 x 2,368 >= 2^20) and runs whole; the
    # last batch of an epoch of 1,300, 300 samples, is, and runs in chunks of 128, 128 and 44
    net = nbbp.Network([64, 32, 10], seed=0)
    weights = n_weights(net._layout)
    assert chunk_rows(1000, weights, True) == 1000
    assert chunk_rows(300, weights, True) == 128
    chunks = training.chunk_buffers(net._layout, net.sizes, net.dtype, 1000)
    assert ((1 << 20) - 1) // weights == 442  # the largest tiny batch: 4 chunks, the last short
    assert chunks[0].shape[0] == 4
    X = rng.normal(size=(1300, 64))
    y = rng.integers(0, 10, 1300)
    runs = []
    for chunked in (True, False):
        if not chunked:
            monkeypatch.setattr(training, "chunk_buffers", lambda *args: None)
        runs.append(fit_run(nbbp.Network([64, 32, 10], seed=0), X, y, batch_size=1000,
                            shuffle=False))
    assert not np.array_equal(runs[0][0], runs[1][0])
    np.testing.assert_allclose(runs[0][0], runs[1][0], rtol=1e-9, atol=1e-12)


def test_lbfgs_gradients_are_whole(rng):
    # backprop(chunked=False), as L-BFGS calls it, is the whole batch's gradient: equal to the
    # chunked one in value, not in bits
    net = tiny()
    X, Y = data(rng)
    args = (X, Y, net._theta, net._stats, net._mask_theta, net._layout, net._loss_code, net._eps)
    whole, E_whole = passes.backprop(*args, chunked=False)
    chunked, E = passes.backprop(*args)
    assert not np.array_equal(whole, chunked)
    np.testing.assert_allclose(whole, chunked, rtol=1e-12, atol=1e-15)
    assert E_whole == pytest.approx(E, rel=1e-14)
    for l, (W, b) in enumerate(zip(*nbbp._layout.views(net._layout, whole))):
        ref_W, ref_b = reference.backprop(list(net.weights), list(net.biases), list(net.masks),
                                          X, Y, [*net.activation, "softmax"], net.loss_name)
        np.testing.assert_allclose(W, ref_W[l], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(b, ref_b[l], rtol=1e-12, atol=1e-15)


CHUNKED_FIT = """
import json
import numpy as np
from numba.core import event
import nbbp

""" + COMPILE_LISTENER + """

rng = np.random.default_rng(3)
X, y = rng.normal(size=(278, 6)), rng.integers(0, 4, size=278)
runs = []
with event.install_listener("numba:compile", Compiles()):
    for options in ({}, {"clip_norm": 0.05, "l2": 1e-3}):  # the norms' sums, the clip's scale
        net = nbbp.Network([6, 9, 4], seed=2)
        net.fit(X, y, epochs=3, batch_size=278, shuffle=False, **options)  # 3 chunks a batch
        runs.append([net._theta.tobytes().hex(), np.asarray(net.history.grad_norm).tobytes().hex()])
print(json.dumps([runs, compiled]))
"""


def test_a_driver_loaded_from_the_cache_trains_to_the_bits_of_one_compiled_in_the_process(
        tmp_path):
    # The epoch driver links a copy of every function it calls, and LLVM optimises the copies
    # again inside it: a process that compiles the driver runs what it compiled, one that loads
    # it from the cache the driver's copies. The chunks' sum (passes.add_chunks), compiled with
    # reassociation allowed, was summed in another order in the copy: 1e-17 apart in float64
    # after one batch. Without reassociation in any kernel, or without fastmath in that sum,
    # the two agreed.
    import json
    import subprocess
    import sys

    env = {"NUMBA_CACHE_DIR": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin",
           "NBBP_COMPILE_HELPER": "0"}
    runs = [subprocess.run([sys.executable, "-c", CHUNKED_FIT], env=env, capture_output=True,
                           text=True, timeout=900, check=False) for _ in range(2)]
    for run in runs:
        assert run.returncode == 0, run.stderr[-3000:]
    (compiling, compiled), (loading, recompiled) = (json.loads(run.stdout) for run in runs)
    assert "nbbp.training.train_epoch" in compiled
    assert not [name for name in recompiled if name.startswith("nbbp.")]  # all from the cache
    assert loading == compiling
