"""Saving and loading: a round trip keeps everything bitwise (outputs, parameters, masks,
optimizer and its state, the random generator), training resumes as if never interrupted, the
file is a plain pickle-free .npz written atomically, and every kind of bad file is refused with
a ValueError that names the file and the problem."""

import gc
import io
import json
import os
import re
import struct
import warnings
import zipfile

import numpy as np
import pytest
from conftest import DTYPES, random_targets
from numpy.testing import assert_array_equal

import nbbp
from nbbp import persistence

# Output activation for each loss (every loss must survive the round trip).
LOSS_OUTPUT = {"cross_entropy": "softmax", "log_loss": "sigmoid", "squared_error": "identity"}
N_IN, N_OUT = 5, 3


def architecture(kind, rng):
    """Network keyword arguments for one kind of architecture; output and loss come later."""
    if kind == "dense":
        return dict(sizes=[N_IN, 7, N_OUT], activation="tanh")
    if kind == "no hidden layer":
        return dict(sizes=[N_IN, N_OUT])
    if kind == "mixed activations":
        return dict(sizes=[N_IN, 6, 7, 4, 6, 5, N_OUT],
                    activation=["relu", "sigmoid", "leaky_relu", "identity", "tanh"])
    if kind == "masks":
        return dict(sizes=[N_IN, 6, N_OUT], activation="relu",
                    masks=[rng.integers(0, 2, size=(6, N_IN)), None])
    if kind == "no bias":
        return dict(sizes=[N_IN, 6, 4, N_OUT], activation="sigmoid", bias=False)
    if kind == "batch norm":
        return dict(sizes=[N_IN, 7, 6, N_OUT], activation="tanh", batch_norm=True)
    if kind == "residual":
        return dict(sizes=[N_IN, 6, 6, 6, N_OUT], activation="relu", residual=1)
    if kind == "identity residual":
        return dict(sizes=[N_IN, 6, 6, 6, N_OUT], activation="sigmoid", residual=[(1, 3)],
                    skip="identity", batch_norm=[True, False, False])
    if kind == "everything":
        return dict(sizes=[N_IN, 6, 6, N_OUT], activation=["leaky_relu", "tanh"],
                    bias=[True, False, True], batch_norm=[False, True], residual=[(1, 2)],
                    masks=[rng.integers(0, 2, size=(6, N_IN)), None,
                           rng.integers(0, 2, size=(N_OUT, 6))])
    raise AssertionError(kind)


ARCHITECTURES = ["dense", "no hidden layer", "mixed activations", "masks", "no bias",
                 "batch norm", "residual", "identity residual", "everything"]


def trained_network(rng, kind="dense", loss="cross_entropy", dtype=np.float64, optimizer="adam",
                    epochs=2):
    """A network trained a little (so weights, optimizer state and generator have all moved)."""
    net = nbbp.Network(**architecture(kind, rng), output=LOSS_OUTPUT[loss], loss=loss,
                       dtype=dtype, seed=int(rng.integers(2**31)))
    X, Y = data(rng, loss, dtype)
    if optimizer is not None:
        net.fit(X, Y, epochs=epochs, batch_size=8, learning_rate=0.05, optimizer=optimizer)
    return net


def data(rng, loss, dtype, n=24):
    X = rng.normal(size=(n, N_IN)).astype(dtype)
    return X, random_targets(rng, n, N_OUT, loss, dtype)


def snapshot(net):
    """Everything a round trip must keep, arrays as (dtype, shape, bytes) so == is bitwise."""
    def raw(a):
        return None if a is None else (a.dtype.str, a.shape, a.tobytes())
    opt = net.optimizer
    return dict(
        sizes=net.sizes, activation=net.activation, output=net.output, loss=net.loss_name,
        init=net.init, dtype=net.dtype, n_parameters=net.n_parameters,
        weights=tuple(raw(W) for W in net.weights), biases=tuple(raw(b) for b in net.biases),
        masks=tuple(raw(M) for M in net.masks), mask_theta=raw(net._mask_theta),
        batch_norm=net.batch_norm, residual=net.residual, skip=net.skip,
        layout=raw(net._layout),
        gammas=tuple(raw(g) for g in net.gammas), betas=tuple(raw(b) for b in net.betas),
        stats=raw(net._stats),
        optimizer=None if opt is None else (type(opt), vars(opt)),
        opt_state=raw(net._opt.state), opt_steps=net._opt.steps,
        rng=net.rng.bit_generator.state)


def saved(net, tmp_path, name="model.npz"):
    path = tmp_path / name
    net.save(path)
    return path


def round_trip(net, tmp_path):
    return nbbp.load(saved(net, tmp_path))


# ------------------------------------------------------------------------------------------------
# Round trips
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ARCHITECTURES)
@pytest.mark.parametrize("loss", list(LOSS_OUTPUT))
@pytest.mark.parametrize("dtype", DTYPES)
def test_loaded_network_predicts_bitwise_the_same(tmp_path, rng, kind, loss, dtype):
    net = trained_network(rng, kind, loss, dtype)
    X, _ = data(rng, loss, dtype, n=17)
    loaded = round_trip(net, tmp_path)
    out = loaded.forward(X)
    assert out.dtype == dtype
    assert_array_equal(out, net.forward(X))
    assert_array_equal(loaded.predict(X), net.predict(X))
    if loss != "squared_error":
        assert_array_equal(loaded.predict_proba(X), net.predict_proba(X))


@pytest.mark.parametrize("kind", ARCHITECTURES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_round_trip_keeps_architecture_and_parameters(tmp_path, rng, kind, dtype):
    net = trained_network(rng, kind, "cross_entropy", dtype)
    loaded = round_trip(net, tmp_path)
    assert loaded.sizes == net.sizes
    assert loaded.activation == net.activation
    assert (loaded.output, loaded.loss_name, loaded.init) == (net.output, net.loss_name, net.init)
    assert loaded.dtype == net.dtype
    assert [b is None for b in loaded.biases] == [b is None for b in net.biases]
    assert [m is None for m in loaded.masks] == [m is None for m in net.masks]
    for name in ("weights", "biases", "masks"):
        for got, want in zip(getattr(loaded, name), getattr(net, name)):
            if want is not None:
                assert got.dtype == want.dtype
                assert got.shape == want.shape
                assert_array_equal(got, want)
    # Masked weights stay masked in the loaded network: they are 0 and the masks are enforced.
    for W, M in zip(loaded.weights, loaded.masks):
        if M is not None:
            assert np.all(W[M == 0] == 0)
    assert snapshot(loaded) == snapshot(net)


def test_version_1_files_load(tmp_path, rng):
    # A file of nbbp before batch normalisation and residual connections: no batch_norm,
    # residual and stats entries.
    net = trained_network(rng, "masks")
    path = saved(net, tmp_path)
    rewritten(path, version=np.array(1), batch_norm=None, residual=None, stats=None)
    loaded = nbbp.load(path)
    assert snapshot(loaded) == snapshot(net)
    assert loaded.batch_norm == (False,)
    assert loaded.residual == ()


def test_version_2_files_load_with_skips_before_f(tmp_path, rng):
    # A file of nbbp before skip="identity": no skip entry; its skips join before f.
    net = trained_network(rng, "residual")
    path = saved(net, tmp_path)
    rewritten(path, version=np.array(2), skip=None)
    loaded = nbbp.load(path)
    assert snapshot(loaded) == snapshot(net)
    assert loaded.skip == "activation"


def test_a_network_pickled_before_skip_forms_unpickles(rng):
    # Its layout had 9 columns and it had no skip attribute.
    import copy

    net = trained_network(rng, "residual")
    old = net.__getstate__()
    old["_layout"] = old["_layout"][:, :9].copy()
    del old["skip"]
    revived = nbbp.Network.__new__(nbbp.Network)
    revived.__setstate__(copy.deepcopy(old))
    assert revived.skip == "activation"
    assert snapshot(revived) == snapshot(net)
    X = rng.normal(size=(6, N_IN))
    assert_array_equal(revived.forward(X), net.forward(X))


@pytest.mark.parametrize("dtype", DTYPES)
def test_predict_after_load_is_the_same_with_and_without_batch_norm(tmp_path, rng, dtype):
    # Inference normalises with the running averages, which the file keeps: trained with and
    # without batch normalisation, each network predicts the same after a round trip.
    X, y = rng.normal(size=(40, N_IN)).astype(dtype), rng.integers(0, N_OUT, size=40)
    for batch_norm in (False, True):
        net = nbbp.Network([N_IN, 16, 16, N_OUT], batch_norm=batch_norm, residual=1, dtype=dtype)
        net.fit(X, y, epochs=5, batch_size=8, learning_rate=0.05, optimizer="momentum")
        loaded = round_trip(net, tmp_path)
        assert_array_equal(loaded.forward(X), net.forward(X))
        assert_array_equal(loaded.predict(X), net.predict(X))
        assert_array_equal(loaded._stats, net._stats)
        if batch_norm:
            assert not np.array_equal(net.running_means[0], 0)  # training moved them


def test_round_trip_keeps_a_hand_set_network_exactly(tmp_path):
    # Values chosen to be awkward in text: subnormal, -0.0, the largest float, 1/3.
    net = nbbp.Network([2, 2], output="identity", loss="squared_error", dtype=np.float64)
    W = np.array([[5e-324, -0.0], [np.finfo(np.float64).max, 1 / 3]])
    net.weights[0][...] = W
    net.biases[0][...] = [-1e-300, 2.5]
    loaded = round_trip(net, tmp_path)
    assert loaded.weights[0].tobytes() == W.tobytes()
    assert loaded.biases[0].tobytes() == np.array([-1e-300, 2.5]).tobytes()


@pytest.mark.parametrize("optimizer", [
    "sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw",
    nbbp.SGD(momentum=0.5, nesterov=True), nbbp.AdaGrad(eps=1e-6), nbbp.RMSProp(rho=0.9, eps=1e-7),
    nbbp.Adam(beta1=0.8, beta2=0.95, eps=1e-6),
    nbbp.AdamW(beta1=0.8, beta2=0.95, eps=1e-6, weight_decay=0.1),
], ids=repr)
@pytest.mark.parametrize("dtype", DTYPES)
def test_round_trip_keeps_optimizer_and_its_state(tmp_path, rng, optimizer, dtype):
    net = trained_network(rng, "masks", "cross_entropy", dtype, optimizer=optimizer)
    if net.optimizer.n_state:  # the state has moved, so losing it would show
        assert np.any(net._opt.state != 0)
    assert net._opt.steps > 0
    loaded = round_trip(net, tmp_path)
    assert type(loaded.optimizer) is type(net.optimizer)
    assert vars(loaded.optimizer) == vars(net.optimizer)
    assert loaded.optimizer == net.optimizer
    assert loaded._opt.state.dtype == net._opt.state.dtype
    assert loaded._opt.state.shape == net._opt.state.shape
    assert_array_equal(loaded._opt.state, net._opt.state)
    assert loaded._opt.steps == net._opt.steps


def test_untrained_network_loads_without_optimizer(tmp_path, rng):
    net = trained_network(rng, "everything", optimizer=None)
    loaded = round_trip(net, tmp_path)
    assert loaded.optimizer is None
    assert loaded._opt.steps == 0
    assert snapshot(loaded) == snapshot(net)


def test_round_trip_keeps_the_random_generator(tmp_path, rng):
    # Plain SGD has no state, so only the generator (which shuffles) can make the runs differ.
    net = trained_network(rng, "dense", "squared_error", optimizer="sgd")
    X, Y = data(rng, "squared_error", np.float64)
    loaded = round_trip(net, tmp_path)
    assert loaded.rng.bit_generator.state == net.rng.bit_generator.state
    reseeded = round_trip(net, tmp_path)
    reseeded.rng = np.random.default_rng(int(rng.integers(2**31)))
    for n in (net, loaded, reseeded):
        n.partial_fit(X, Y, batch_size=4, learning_rate=0.05, optimizer="sgd", shuffle=True)
    assert_array_equal(loaded._theta, net._theta)
    assert loaded.rng.bit_generator.state == net.rng.bit_generator.state
    # Another shuffling order gives other weights: the equality above is not a coincidence.
    assert not np.array_equal(reseeded._theta, net._theta)


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam"])
@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
def test_training_resumes_after_load_as_if_never_saved(tmp_path, rng, optimizer, shuffle, dtype):
    seed = int(rng.integers(2**31))
    X, Y = data(rng, "cross_entropy", dtype)
    kwargs = dict(batch_size=5, learning_rate=0.05, optimizer=optimizer, shuffle=shuffle)

    def fresh():
        return nbbp.Network(**architecture("everything", np.random.default_rng(seed)),
                            dtype=dtype, seed=seed)

    straight = fresh()
    straight.partial_fit(X, Y, **kwargs)
    halfway = straight._theta.copy()
    straight.partial_fit(X, Y, **kwargs)
    assert not np.array_equal(straight._theta, halfway)

    interrupted = fresh()
    interrupted.partial_fit(X, Y, **kwargs)
    assert_array_equal(interrupted._theta, halfway)
    resumed = round_trip(interrupted, tmp_path)
    resumed.partial_fit(X, Y, **kwargs)
    assert_array_equal(resumed._theta, straight._theta)
    assert_array_equal(resumed._opt.state, straight._opt.state)
    assert resumed._opt.steps == straight._opt.steps
    assert snapshot(resumed) == snapshot(straight)


# ------------------------------------------------------------------------------------------------
# The file
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_file_is_a_plain_npz_without_pickle(tmp_path, rng, dtype):
    net = trained_network(rng, "everything", dtype=dtype)
    path = saved(net, tmp_path)
    assert zipfile.is_zipfile(path)
    with np.load(path, allow_pickle=False) as npz:
        assert set(npz.files) >= {"format", "version", "theta"}
        assert str(npz["format"]) == "nbbp.Network"
        for name in npz.files:
            # Reading every entry with allow_pickle=False proves none holds pickled objects.
            assert npz[name].dtype.kind != "O", name
        assert_array_equal(npz["theta"], net._theta)
    with zipfile.ZipFile(path) as zf:
        assert all(name.endswith(".npy") for name in zf.namelist())


def test_save_writes_exactly_the_given_path(tmp_path, rng):
    # np.savez given a name appends ".npz"; the network's own file name must be kept as given.
    net = trained_network(rng)
    path = tmp_path / "model.weights"
    net.save(str(path))
    assert os.listdir(tmp_path) == ["model.weights"]
    assert snapshot(nbbp.load(str(path))) == snapshot(net)


def test_save_leaves_no_temporary_file(tmp_path, rng):
    net = trained_network(rng)
    saved(net, tmp_path)
    assert os.listdir(tmp_path) == ["model.npz"]


def test_save_over_an_existing_file_replaces_it(tmp_path, rng):
    first, second = trained_network(rng), trained_network(rng)
    assert not np.array_equal(first._theta, second._theta)
    path = saved(first, tmp_path)
    saved(second, tmp_path)
    assert os.listdir(tmp_path) == ["model.npz"]
    assert snapshot(nbbp.load(path)) == snapshot(second)


class DiskFull(OSError):
    pass


def fail_in(stage, monkeypatch, seen):
    """Make save fail at ``stage``; ``seen`` records the folder's entries at that moment."""
    real_savez = np.savez

    def failing_savez(file, **arrays):
        buf = io.BytesIO()
        real_savez(buf, **arrays)
        file.write(buf.getvalue()[:len(buf.getvalue()) // 2])  # half the archive, then fail
        file.flush()
        seen.append(os.fstat(file.fileno()).st_size)
        raise DiskFull(28, "No space left on device")

    def failing_fsync(fd):
        seen.append(os.fstat(fd).st_size)
        raise DiskFull(5, "Input/output error")

    def failing_replace(src, dst):
        seen.append(os.path.getsize(src))
        raise DiskFull(1, "Operation not permitted")

    def interrupted_savez(file, **arrays):
        real_savez(file, **{k: arrays[k] for k in list(arrays)[:3]})
        file.flush()
        seen.append(os.fstat(file.fileno()).st_size)
        raise KeyboardInterrupt

    # save calls these through the numpy and os modules, so patching the modules reaches it.
    assert persistence.np is np
    assert persistence.os is os
    if stage == "savez midway":
        monkeypatch.setattr(np, "savez", failing_savez)
    elif stage == "interrupted savez":
        monkeypatch.setattr(np, "savez", interrupted_savez)
    elif stage == "fsync":
        monkeypatch.setattr(os, "fsync", failing_fsync)
    elif stage == "rename":
        monkeypatch.setattr(os, "replace", failing_replace)
    else:
        raise AssertionError(stage)
    return KeyboardInterrupt if stage == "interrupted savez" else DiskFull


@pytest.mark.parametrize("stage", ["savez midway", "interrupted savez", "fsync", "rename"])
def test_failed_save_keeps_the_previous_file_and_leaves_no_temporary(tmp_path, rng, monkeypatch,
                                                                   stage):
    old, new = trained_network(rng), trained_network(rng)
    path = saved(old, tmp_path)
    before = path.read_bytes()
    X, _ = data(rng, "cross_entropy", np.float64)
    seen = []
    exc = fail_in(stage, monkeypatch, seen)
    with pytest.raises(exc):
        new.save(path)
    monkeypatch.undo()
    assert seen
    assert seen[0] > 0  # the failure came after bytes were written to a temporary file
    assert os.listdir(tmp_path) == ["model.npz"]
    assert path.read_bytes() == before
    loaded = nbbp.load(path)
    assert snapshot(loaded) == snapshot(old)
    assert_array_equal(loaded.forward(X), old.forward(X))


@pytest.mark.parametrize("stage", ["savez midway", "interrupted savez", "fsync", "rename"])
def test_failed_first_save_leaves_nothing(tmp_path, rng, monkeypatch, stage):
    net = trained_network(rng)
    seen = []
    exc = fail_in(stage, monkeypatch, seen)
    with pytest.raises(exc):
        net.save(tmp_path / "model.npz")
    monkeypatch.undo()
    assert seen
    assert seen[0] > 0
    assert os.listdir(tmp_path) == []


def test_save_into_a_missing_folder_raises_and_leaves_nothing(tmp_path, rng):
    net = trained_network(rng)
    with pytest.raises(OSError, match="no folder"):  # FileNotFoundError is an OSError
        net.save(tmp_path / "missing" / "model.npz")
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------------------------------------
# Bad files
# ------------------------------------------------------------------------------------------------
def test_load_of_a_missing_path_raises_file_not_found(tmp_path):
    path = tmp_path / "nothing.npz"
    with pytest.raises(FileNotFoundError, match=re.escape(str(path))):
        nbbp.load(path)


def arrays_of(path):
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def rewritten(path, **changes):
    """The entries of a real save with ``changes`` (None deletes an entry), saved over it."""
    arrays = arrays_of(path)
    for key, value in changes.items():
        if value is None:
            del arrays[key]
        else:
            arrays[key] = value
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def npy_bytes(array):
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def theta_with(path, index, value):
    theta = arrays_of(path)["theta"].copy()
    theta[index] = value
    return theta


# (id, how to spoil a real save at `path`, the problem the message must name). Every message
# must also name the file.
def with_header(path, key, shape, descr=None):
    """The file with entry ``key``'s .npy header claiming ``shape`` (and ``descr``), its data left
    as it was (a small file whose header lies about its size)."""
    members = {}
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            members[info.filename] = archive.read(info)
    data = np.load(io.BytesIO(members[key + ".npy"]), allow_pickle=False)
    header = io.BytesIO()
    descr = descr or np.lib.format.dtype_to_descr(data.dtype)
    np.lib.format.write_array_header_1_0(header, {"descr": descr, "fortran_order": False,
                                                  "shape": shape})
    members[key + ".npy"] = header.getvalue() + data.tobytes()  # the header holds the magic
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)


def huge_architecture(path, widths):
    """A real file rewritten to claim a two-layer network of ``widths``, its arrays unchanged."""
    rewritten(path, sizes=np.array(widths, dtype=np.int64), activation=np.array(["relu"]),
              bias=np.array([True, True]), has_mask=np.array([False, False]),
              batch_norm=np.array([False]), residual=np.zeros((0, 2), np.int64))


def rng_state_with(path, value):
    state = json.loads(str(arrays_of(path)["rng_state"]))
    state["state"]["state"] = value
    rewritten(path, rng_state=np.array(json.dumps(state)))


def negative_second_moment(path):
    state = arrays_of(path)["optimizer_state"].copy()
    state[1, 3] = -1e-3  # Adam's v: a running mean of squares
    rewritten(path, optimizer_state=state)


def with_lying_directory(path):
    """theta's header claiming 10^8 float64 values, and the zip directory claiming as many
    bytes for it (both stated by the file, neither backed by its bytes)."""
    with_header(path, "theta", (10**8,))
    raw = bytearray(path.read_bytes())
    claimed = 8 * 10**8 + 128
    for signature, size_at, name_len_at, name_at in ((b"PK\x01\x02", 24, 28, 46),
                                                      (b"PK\x03\x04", 22, 26, 30)):
        start = 0
        while (start := raw.find(signature, start)) >= 0:
            name_len = struct.unpack_from("<H", raw, start + name_len_at)[0]
            if raw[start + name_at:start + name_at + name_len] == b"theta.npy":
                struct.pack_into("<I", raw, start + size_at, claimed)
                if signature == b"PK\x01\x02":
                    struct.pack_into("<I", raw, start + 20, claimed)  # and the stored size
            start += 4
    path.write_bytes(bytes(raw))


def deflated_and_corrupted(path):
    members = {}
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            members[info.filename] = archive.read(info)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("theta.npy")
    data_start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    for k in range(data_start + 40, data_start + 48):
        raw[k] ^= 0xFF
    path.write_bytes(bytes(raw))


BAD_FILES = [
    # found by a review: sizes the zip directory states, 0-byte elements, nested JSON, zlib
    ("directory and header lying together", with_lying_directory,
     "its entry 'theta' claims 800,000,000 bytes of data"),
    ("bias of 0-byte strings", lambda p: with_header(p, "bias", (3_000_000,), "<U0"),
     "its entry 'bias' has dtype <U0 of 0-byte elements"),
    ("rng_state nested 100,000 deep", lambda p: rewritten(p, rng_state=np.array("[" * 100_000)),
     "rng_state|not a valid nbbp model file"),
    ("optimizer_args nested 100,000 deep",
     lambda p: rewritten(p, optimizer_args=np.array("[" * 100_000)), "not a valid nbbp model file"),
    ("a deflated theta corrupted", deflated_and_corrupted, "truncated or corrupted"),
    # hostile files: sizes and headers that would allocate far more than the file holds
    ("theta header claiming 10^12 values", lambda p: with_header(p, "theta", (10**12,)),
     "its entry 'theta' claims 8,000,000,000,000 bytes of data"),
    ("sizes 10^6 x 10^6 with the file's small theta",
     lambda p: huge_architecture(p, [10**6, 10**6, 3]),
     (r"parameters do not match its architecture: its theta has shape \(\d+,\), and sizes "
      r"\[1000000, 1000000, 3\] need \(1000004000003,\)")),  # 10^12 + 10^6 + 3 10^6 + 3
    ("sizes 20000 x 20000 with the file's small theta",
     lambda p: huge_architecture(p, [20000, 20000, 3]), "parameters do not match its architecture"),
    ("float sizes", lambda p: rewritten(p, sizes=np.array([5.0, 6.7, 6.0, 3.0])),
     "sizes are not a list of 2 or more positive integers"),
    ("rng_state with a 2^200 integer", lambda p: rng_state_with(p, 2**200),
     "its rng_state is not a random generator's state"),
    ("optimizer steps 2^63 - 3", lambda p: rewritten(p, optimizer_steps=np.array(2**63 - 3)),
     r"optimizer step count 9223372036854775805 is past 2\^53"),
    ("negative Adam second moments", negative_second_moment,
     r"negative sums of squared gradients \(Adam\)"),
    ("truncated to half", lambda p: p.write_bytes(p.read_bytes()[:len(p.read_bytes()) // 2]),
     "truncated or corrupted"),
    ("truncated by the last byte", lambda p: p.write_bytes(p.read_bytes()[:-1]),
     "truncated or corrupted"),
    ("truncated to 1 byte", lambda p: p.write_bytes(p.read_bytes()[:1]),
     "truncated or corrupted"),
    ("empty", lambda p: p.write_bytes(b""), "truncated or corrupted"),
    ("text file", lambda p: p.write_text("sizes = [5, 7, 3]\nweights = 0.1 0.2\n"),
     "not .*nbbp model file"),
    ("foreign npz", lambda p: np.savez(str(p), a=np.arange(3), b=np.eye(2)),
     "not an nbbp model file: it has no 'format' entry"),
    ("lone npy", lambda p: p.write_bytes(npy_bytes(np.arange(3.0))),
     "not .*nbbp model file"),
    ("version 1 with batch normalisation", lambda p: rewritten(
        p, version=np.array(1), batch_norm=None, residual=None, stats=None),
     "parameters do not match its architecture"),
    ("no stats entry", lambda p: rewritten(p, stats=None), "has no 'stats' entry"),
    ("stats too short", lambda p: rewritten(p, stats=arrays_of(p)["stats"][:-1]),
     "running statistics do not match its architecture"),
    ("stats holding NaN", lambda p: rewritten(p, stats=np.full_like(arrays_of(p)["stats"], np.nan)),
     "running statistics hold NaN or inf"),
    ("negative running variance", lambda p: rewritten(p, stats=-arrays_of(p)["stats"] - 1),
     "running variances hold negative values"),
    ("batch_norm of the wrong length", lambda p: rewritten(p, batch_norm=np.array([True])),
     "batch_norm must be one value or a list of 2"),
    ("residual not pairs", lambda p: rewritten(p, residual=np.array([1, 2])),
     "residual connections are not a list of \\(from, to\\) pairs"),
    ("residual across widths", lambda p: rewritten(p, residual=np.array([[0, 1]])),
     "residual pair \\(0, 1\\) joins layers of different widths"),
    ("version 4", lambda p: rewritten(p, version=np.array(4)),
     "version 4; this nbbp reads versions 1, 2, 3"),
    ("version 0", lambda p: rewritten(p, version=np.array(0)),
     "version 0; this nbbp reads versions 1, 2, 3"),
    ("version 3 without its skip form", lambda p: rewritten(p, skip=None),
     "has no 'skip' entry"),
    ("dropout as text", lambda p: rewritten(p, dropout=np.array(["0.5"])),
     "its dropout is not a list of probabilities"),
    ("dropout of probability 1", lambda p: rewritten(p, dropout=np.ones(
        len(arrays_of(p)["dropout"]))), "dropout must be a probability in \\[0, 1\\)"),
    ("unknown skip form", lambda p: rewritten(p, skip=np.array("both")),
     "skip must be one of \\['activation', 'identity'\\]; got 'both'"),
    ("other format", lambda p: rewritten(p, format=np.array("sklearn.MLPClassifier")),
     "not an nbbp model file \\(format 'sklearn.MLPClassifier'\\)"),
    ("no theta entry", lambda p: rewritten(p, theta=None), "has no 'theta' entry"),
    ("theta too short", lambda p: rewritten(p, theta=arrays_of(p)["theta"][:-1]),
     "parameters do not match its architecture"),
    ("theta too long", lambda p: rewritten(p, theta=np.append(arrays_of(p)["theta"], 0.0)),
     "parameters do not match its architecture"),
    ("theta float32 in a float64 file",
     lambda p: rewritten(p, theta=arrays_of(p)["theta"].astype(np.float32)),
     "parameters do not match its architecture"),
    ("theta holding NaN", lambda p: rewritten(p, theta=theta_with(p, 3, np.nan)),
     "parameters hold NaN or inf"),
    ("theta holding inf", lambda p: rewritten(p, theta=theta_with(p, -1, -np.inf)),
     "parameters hold NaN or inf"),
    ("mask_theta holding 0.5",
     lambda p: rewritten(p, mask_theta=np.where(arrays_of(p)["mask_theta"] == 1, 1.0, 0.5)),
     "masks hold values other than 0 and 1"),
    ("mask_theta holding 2", lambda p: rewritten(p, mask_theta=2 * arrays_of(p)["mask_theta"]),
     "masks hold values other than 0 and 1"),
    ("unknown optimizer", lambda p: rewritten(p, optimizer=np.array("Rprop")),
     "unknown optimizer 'Rprop'"),
    ("optimizer state too short",
     lambda p: rewritten(p, optimizer_state=arrays_of(p)["optimizer_state"][:, :-1]),
     "optimizer state does not match its parameters"),
    ("unknown activation", lambda p: rewritten(p, activation=np.array(["swish", "tanh"])),
     "activation must be one of"),
    ("version not a scalar", lambda p: rewritten(p, version=np.array([1, 1])),
     "not a readable nbbp model file"),
    ("negative optimizer steps", lambda p: rewritten(p, optimizer_steps=np.array(-3)),
     "optimizer step count is negative"),
    ("optimizer state holding NaN",
     lambda p: rewritten(p, optimizer_state=np.full_like(arrays_of(p)["optimizer_state"], np.nan)),
     "optimizer state holds NaN or inf"),
    ("masked bias",
     lambda p: rewritten(p, mask_theta=np.where(
         np.arange(arrays_of(p)["mask_theta"].size) == arrays_of(p)["mask_theta"].size - 1, 0.0,
         arrays_of(p)["mask_theta"])),
     "masks disagree with which layers"),
]


def load_error(path):
    """(message of the ValueError that load raises, ResourceWarnings of files it left open).

    A file object that nobody closed warns when it is freed. Dropping the traceback (which holds
    it) here, with those warnings recorded rather than raised, pins the warning on this load."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        with pytest.raises(ValueError, match=re.escape(os.fspath(path))) as info:
            nbbp.load(path)
        message = str(info.value)
        del info  # the traceback holds numpy's frames, and a file those left open
    return message, [w for w in caught if issubclass(w.category, ResourceWarning)]


@pytest.mark.parametrize("spoil, problem", [
    pytest.param(*case[1:], id=case[0]) for case in BAD_FILES])
def test_bad_file_raises_value_error_naming_file_and_problem(tmp_path, rng, spoil, problem):
    path = saved(trained_network(rng, "everything"), tmp_path)
    spoil(path)
    message, _ = load_error(path)  # files left open: see test_load_of_a_bad_file_closes_it
    assert str(path) in message
    assert re.search(problem, message), message


@pytest.mark.parametrize("spoil", [
    pytest.param(case[1], id=case[0]) for case in BAD_FILES])
def test_load_of_a_bad_file_closes_it(tmp_path, rng, spoil):
    path = saved(trained_network(rng, "everything"), tmp_path)
    spoil(path)
    _, left_open = load_error(path)
    assert [str(w.message) for w in left_open] == []


def zip_entry_offsets(raw, entry):
    """(offset of the central-directory record of ``entry``, offset of its data)."""
    eocd = raw.rfind(b"PK\x05\x06")
    n_entries, = struct.unpack_from("<H", raw, eocd + 10)
    pos, = struct.unpack_from("<I", raw, eocd + 16)
    for _ in range(n_entries):
        assert raw[pos:pos + 4] == b"PK\x01\x02"
        name_len, extra_len, comment_len = struct.unpack_from("<HHH", raw, pos + 28)
        local, = struct.unpack_from("<I", raw, pos + 42)
        if raw[pos + 46:pos + 46 + name_len] == entry.encode():
            assert raw[local:local + 4] == b"PK\x03\x04"
            local_name, local_extra = struct.unpack_from("<HH", raw, local + 26)
            return pos, local + 30 + local_name + local_extra
        pos += 46 + name_len + extra_len + comment_len
    raise AssertionError(f"no {entry} in the archive")


@pytest.mark.parametrize("xor, n_bytes", [(0x01, 1), (0xFF, 1), (0xFF, 8), (0x5A, 64)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_flipped_bytes_in_the_parameters_are_caught_by_the_crc(tmp_path, rng, xor, n_bytes, dtype):
    # A larger network, so theta's data (> 4 kB) sits in the middle of the file. Flipping the
    # lowest bit of one weight gives a plausible network: only the zip CRC can tell.
    net = nbbp.Network([20, 30, 10], dtype=dtype, seed=int(rng.integers(2**31)))
    path = saved(net, tmp_path)
    raw = bytearray(path.read_bytes())
    _, start = zip_entry_offsets(bytes(raw), "theta.npy")
    with zipfile.ZipFile(path) as zf:
        member_size = zf.getinfo("theta.npy").file_size
    data = start + member_size - net._theta.nbytes  # the .npy header, then the array's bytes
    assert raw[data:data + net._theta.nbytes] == net._theta.tobytes()
    middle = data + net._theta.nbytes // 2
    assert len(raw) // 4 < middle < 3 * len(raw) // 4
    for i in range(middle, middle + n_bytes):
        raw[i] ^= xor
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*corrupted.*CRC"):
        nbbp.load(path)


# Central-directory fields of the theta entry, and how each is spoiled. Corrupting the first
# four makes zipfile raise NotImplementedError or RuntimeError rather than BadZipFile.
ZIP_FIELDS = [  # (id, offset in the record, struct format, new value from old)
    ("version needed 9.9", 6, "<H", lambda v: 99),
    ("encrypted flag", 8, "<H", lambda v: v | 0x01),
    ("compressed-patch flag", 8, "<H", lambda v: v | 0x20),
    ("unknown compression method", 10, "<H", lambda v: 99),
    ("signature", 0, "<I", lambda v: v ^ 0xFFFFFFFF),
    ("compression method deflate", 10, "<H", lambda v: 8),
    ("crc", 16, "<I", lambda v: v ^ 1),
    ("compressed size halved", 20, "<I", lambda v: v // 2),
    ("uncompressed size halved", 24, "<I", lambda v: v // 2),
    ("name length", 28, "<H", lambda v: v - 1),
    ("local header offset", 42, "<I", lambda v: v + 1),
    ("file name", 46, "B", lambda v: v ^ 0x01),
]


@pytest.mark.parametrize("offset, fmt, change", [
    pytest.param(*case[1:4], id=case[0]) for case in ZIP_FIELDS])
def test_corrupted_zip_directory_raises_value_error(tmp_path, rng, offset, fmt, change):
    path = saved(trained_network(rng, "masks"), tmp_path)
    raw = bytearray(path.read_bytes())
    record, _ = zip_entry_offsets(bytes(raw), "theta.npy")
    old, = struct.unpack_from(fmt, raw, record + offset)
    struct.pack_into(fmt, raw, record + offset, change(old))
    path.write_bytes(bytes(raw))
    message, _ = load_error(path)  # files left open: see test_load_of_a_bad_file_closes_it
    assert str(path) in message


def test_no_flipped_byte_loads_as_a_different_network(tmp_path, rng):
    """Flip one byte at a time across a whole file: load refuses it with a ValueError, or (the
    byte was one zip does not use: a timestamp, an attribute) loads the network unchanged."""
    net = trained_network(rng, "masks", optimizer="adam")
    path = saved(net, tmp_path)
    raw = path.read_bytes()
    expected = snapshot(net)
    refused = unchanged = 0
    spoiled = tmp_path / "spoiled.npz"
    for i in range(0, len(raw), 17):
        spoiled.write_bytes(raw[:i] + bytes([raw[i] ^ 0xFF]) + raw[i + 1:])
        try:
            loaded = nbbp.load(spoiled)
        except ValueError:
            refused += 1
            continue
        assert snapshot(loaded) == expected, f"byte {i} flipped loads another network"
        unchanged += 1
    gc.collect()  # a file load left open would warn here, and warnings are errors
    assert refused > 0.8 * (refused + unchanged)


@pytest.mark.parametrize("spoil", [
    lambda p: with_header(p, "theta", (10**12,)),
    lambda p: huge_architecture(p, [20000, 20000, 3]),
    lambda p: huge_architecture(p, [10**6, 10**6, 3])])
def test_a_hostile_file_is_refused_without_allocating_what_it_claims(tmp_path, rng, spoil):
    import tracemalloc

    path = saved(trained_network(rng, "everything"), tmp_path)
    spoil(path)
    tracemalloc.start()
    try:
        load_error(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20  # the file is a few KB; 20000x20000 float64 alone is 3.2 GB


def test_parameters_and_optimizer_state_stay_aligned_after_load_and_unpickling(rng, tmp_path):
    # the kernels' buffers start on a 64-byte cache line (the README's promise): so do a loaded
    # or unpickled network's parameters and optimizer state
    import pickle

    net = nbbp.Network([5, 7, 3], seed=1)
    net.fit(rng.normal(size=(40, 5)), rng.integers(0, 3, 40), epochs=1, optimizer="adam")
    net.save(tmp_path / "m.npz")
    for copy in (nbbp.load(tmp_path / "m.npz"), pickle.loads(pickle.dumps(net))):
        assert copy._theta.ctypes.data % 64 == 0
        assert copy._opt.state.ctypes.data % 64 == 0
        assert copy._opt.state.shape == (2, net._theta.size)
        assert_array_equal(copy._opt.state, net._opt.state)


def test_a_network_pickled_before_optimizer_state_was_one_object_unpickles(rng):
    # nbbp 0.1.0 pickled the optimizer, its state and its steps as three fields
    import copy

    net = nbbp.Network([5, 7, 3], seed=1)
    net.fit(rng.normal(size=(40, 5)), rng.integers(0, 3, 40), epochs=1, optimizer="adam")
    old = net.__getstate__()
    opt = old.pop("_opt")
    old.update(_optimizer=opt.optimizer, _opt_state=opt.state.copy(), _opt_steps=opt.steps)
    revived = nbbp.Network.__new__(nbbp.Network)
    revived.__setstate__(copy.deepcopy(old))
    assert revived.optimizer == net.optimizer
    assert revived._opt.steps == net._opt.steps
    assert_array_equal(revived._opt.state, net._opt.state)
    X = rng.normal(size=(6, 5))
    assert_array_equal(revived.forward(X), net.forward(X))
