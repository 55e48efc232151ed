"""Data larger than memory: fit, partial_fit, predict, score, forward and loss read a read-only
memmap (``np.load(path, mmap_mode="r")``) in place, through a copy-on-write mapping of the same
file (one compiled driver, no copy), train the same network bit for bit as on the array in
memory, and infer chunk by chunk so that activations take O(chunk) memory."""

import tracemalloc

import numpy as np
import pytest
from numpy.testing import assert_array_equal

import nbbp
from nbbp import passes


@pytest.fixture
def on_disk(tmp_path):
    """X (12,000 x 48 float32), labels and targets, saved as .npy and opened read-only."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(12_000, 48)).astype(np.float32)
    labels = rng.integers(0, 5, size=12_000)
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", labels)
    Xm = np.load(tmp_path / "X.npy", mmap_mode="r")
    ym = np.load(tmp_path / "y.npy", mmap_mode="r")
    assert not Xm.flags.writeable
    assert not ym.flags.writeable
    return X, labels, Xm, ym, tmp_path


def twins():
    return [nbbp.Network([48, 24, 5], dtype=np.float32, seed=4) for _ in range(2)]


@pytest.mark.parametrize("options", [
    dict(epochs=2, optimizer="adam", batch_size=64),
    dict(epochs=2, optimizer="momentum", batch_size=50, shuffle=False, validation_fraction=0.2),
    dict(epochs=3, optimizer="sgd", batch_size=32, early_stopping=True, patience=1,
         sample_weight=np.linspace(0.5, 2, 12_000)),
], ids=["adam", "no shuffle, validation split", "early stopping, weights"])
def test_fit_on_a_read_only_memmap_equals_fit_in_memory(on_disk, options):
    X, labels, Xm, ym, path = on_disk
    a, b = twins()
    history_a = a.fit(X, labels, **options)
    history_b = b.fit(Xm, ym, **options)
    assert_array_equal(a._theta, b._theta)
    assert history_a.loss == history_b.loss
    assert history_a.val_loss == history_b.val_loss
    assert_array_equal(np.load(path / "X.npy"), X)  # the file is untouched


def test_partial_fit_and_inference_on_a_memmap(on_disk):
    X, labels, Xm, ym, _ = on_disk
    a, b = twins()
    a.partial_fit(X[2000:9000], labels[2000:9000], batch_size=100)
    b.partial_fit(Xm[2000:9000], ym[2000:9000], batch_size=100)  # a view of the mapping
    assert_array_equal(a._theta, b._theta)
    assert_array_equal(a.forward(X), b.forward(Xm))
    assert_array_equal(a.predict(X), b.predict(Xm))
    assert a.score(X, labels) == b.score(Xm, ym)
    assert a.loss(X, labels) == b.loss(Xm, ym)


def test_training_and_inference_on_a_memmap_copy_nothing(on_disk, monkeypatch):
    _, _, Xm, ym, _ = on_disk
    monkeypatch.setattr(passes, "INFERENCE_CHUNK_ROWS", 500)  # chunks much smaller than X
    net = twins()[0]
    net.fit(Xm[:10], ym[:10], epochs=1, batch_size=5)  # compiled outside the measurement
    net.predict(Xm[:600])
    for call in (lambda: net.fit(Xm, ym, epochs=1, batch_size=64, validation_fraction=0.05),
                 lambda: net.predict(Xm), lambda: net.score(Xm, ym)):
        tracemalloc.start()
        try:
            call()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        # X is 2.3 MB: a copy of it would be all of that. What there is: the 5% validation
        # rows (115 kB), the labels (96 kB), score's one-hot targets (240 kB), the outputs' z
        # and o (480 kB) and one chunk's activations: 0.64, 0.73 and 0.97 MB measured.
        assert peak < 0.5 * Xm.nbytes, peak


def test_inference_by_chunks_equals_one_pass(rng, monkeypatch):
    net = nbbp.Network([7, 9, 4], batch_norm=True, residual=None, seed=0)
    net.fit(rng.normal(size=(64, 7)), rng.integers(0, 4, size=64), epochs=1, batch_size=16)
    X = rng.normal(size=(1_000, 7))
    whole = net.forward(X)
    monkeypatch.setattr(passes, "INFERENCE_CHUNK_ROWS", 64)
    assert_array_equal(net.forward(X), whole)
    assert net.score(X, net.predict(X)) == 1.0


def test_an_overflow_in_a_later_chunk_names_its_sample(rng, monkeypatch):
    monkeypatch.setattr(passes, "INFERENCE_CHUNK_ROWS", 100)
    net = nbbp.Network([3, 4, 2], activation="identity", output="identity",
                       loss="squared_error", dtype=np.float32)
    X = rng.normal(size=(350, 3)).astype(np.float32)
    X[257] = 3e38
    with pytest.raises(FloatingPointError, match="first at sample 257"):
        net.forward(X)


def test_other_read_only_arrays_are_still_taken(rng):
    X = np.broadcast_to(rng.normal(size=(1, 4)), (30, 4))
    net = nbbp.Network([4, 3, 2])
    net.fit(X, np.arange(30) % 2, epochs=1, batch_size=10)
    assert net.forward(X).shape == (30, 2)


def test_a_file_replaced_since_it_was_mapped_is_not_read(on_disk):
    # the memmap holds the old bytes; reopening its path would read the new file
    X, labels, Xm, ym, path = on_disk
    np.save(path / "new.npy", -X)
    (path / "new.npy").replace(path / "X.npy")
    a, b = twins()
    a.fit(X, labels, epochs=1, batch_size=100)
    b.fit(Xm, ym, epochs=1, batch_size=100)
    assert_array_equal(a._theta, b._theta)
    assert_array_equal(a.forward(X), b.forward(Xm))


def test_a_private_mapping_changed_in_memory_is_read_as_changed(on_disk):
    X, labels, _, _, path = on_disk
    changed = np.load(path / "X.npy", mmap_mode="c")
    changed *= 2  # in this process only: the file keeps X
    changed.flags.writeable = False
    a, b = twins()
    a.fit(2 * X, labels, epochs=1, batch_size=100)
    b.fit(changed, labels, epochs=1, batch_size=100)
    assert_array_equal(a._theta, b._theta)
