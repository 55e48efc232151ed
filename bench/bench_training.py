"""asv: whole-epoch training through ``Network.fit``, one cost per benchmark.

Steady state (``TrainEpoch.time_epoch``; ``BatchNormEpoch.time_epoch`` for the deep
batch-normalised D1), memory (``FitMemory.peakmem_fit``), quality
(``TrainingLoss.track_loss_after_5_epochs``, ``BatchNormEpoch.track_loss_after_3_epochs``) and
cold start (``ColdStart.timeraw_import_and_first_fit``). Workloads are those of bench/README.md
(ReLU hidden layers, softmax output, cross-entropy, plain SGD, no shuffling); the peer comparison
lives in bench/compare.py.
"""

import functools
import os
import subprocess
import sys
import timeit
from typing import ClassVar

import numba
import numpy as np

import nbbp
from nbbp import reference

# name: (sizes, batch, samples). W4 runs on 1,024 samples (4 batches of 256) instead of
# bench/README.md's 4,096, to keep asv runs short: an epoch's time is proportional to its batches,
# and bench/compare.py runs the full size.
WORKLOADS = {
    "W1": ((64, 32, 10), 32, 20_000),
    "W2": ((784, 128, 64, 10), 32, 20_000),
    "W3": ((784, 128, 64, 10), 128, 20_000),
    "W4": ((1024, 1024, 1024, 10), 256, 1_024),
    "D1": ((256,) * 20 + (10,), 128, 1_024),
}
LEARNING_RATE = 0.01


@functools.lru_cache(maxsize=4)
def make_data(workload, dtype):
    """Standard-normal inputs and uniform integer labels, seed 0. Cached: this asv re-runs setup
    before every sample, and W2's inputs take a while to draw."""
    sizes, _, n_samples = WORKLOADS[workload]
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n_samples, sizes[0]), dtype=np.dtype(dtype))
    y = rng.integers(0, sizes[-1], size=n_samples)
    return X, y


def check_threads(threads):
    if threads > numba.config.NUMBA_NUM_THREADS:
        raise NotImplementedError(f"{threads} threads, but NUMBA_NUM_THREADS is "
                                  f"{numba.config.NUMBA_NUM_THREADS}")


class TrainEpoch:
    """One epoch of ``fit(epochs=1, shuffle=False)``, against ``reference.train`` on W1 and W2
    (the NumPy reference takes minutes on W3/W4 at asv's sample counts)."""

    params = (list(WORKLOADS), ["float32", "float64"], [1, 2], ["nbbp", "reference"])
    param_names: ClassVar[list[str]] = ["workload", "dtype", "threads", "lib"]
    timer = timeit.default_timer  # wall clock: the kernels are parallel
    timeout = 300

    def setup(self, workload, dtype, threads, lib):
        check_threads(threads)
        if lib == "reference" and workload not in ("W1", "W2"):
            raise NotImplementedError("the reference runs W1 and W2 only (too slow for W3/W4)")
        self.blas_limits = None
        if lib == "reference":
            # The reference's time is NumPy's matmul: its BLAS is what `threads` must limit.
            try:
                from threadpoolctl import threadpool_limits
            except ImportError:
                raise NotImplementedError("threadpoolctl is not installed: cannot set the "
                                          "reference's BLAS thread count") from None
            self.blas_limits = threadpool_limits(limits=threads, user_api="blas")
        self.saved_threads = numba.get_num_threads()
        numba.set_num_threads(threads)

        sizes, self.batch, _ = WORKLOADS[workload]
        self.X, self.y = make_data(workload, dtype)
        self.net = nbbp.Network(sizes, activation="relu", output="softmax", loss="cross_entropy",
                                dtype=dtype, seed=0)
        self.Y = np.zeros((len(self.y), sizes[-1]), dtype=dtype)
        self.Y[np.arange(len(self.y)), self.y] = 1
        self.activations = ["relu"] * (len(sizes) - 2) + ["softmax"]
        self.time_epoch(workload, dtype, threads, lib)  # compile (or load from cache) first

    def teardown(self, workload, dtype, threads, lib):
        if hasattr(self, "saved_threads"):
            numba.set_num_threads(self.saved_threads)
        if getattr(self, "blas_limits", None) is not None:
            self.blas_limits.restore_original_limits()

    def time_epoch(self, workload, dtype, threads, lib):
        if lib == "nbbp":
            self.net.fit(self.X, self.y, epochs=1, batch_size=self.batch,
                         learning_rate=LEARNING_RATE, shuffle=False)
        else:
            reference.train(list(self.net.weights), list(self.net.biases), None, self.X, self.Y,
                            self.activations, "cross_entropy", epochs=1, batch_size=self.batch,
                            learning_rate=LEARNING_RATE)


class OptionsEpoch:
    """One W2 epoch (float32, batch 32, ``fit(epochs=1, shuffle=False)``) with the per-batch
    training options, each inside the compiled epoch: none, dropout 0.2 on both hidden layers,
    gradient clipping to norm 1, both, and sample weights. bench/README.md's target: dropout
    and clipping add at most 10% to the plain epoch."""

    params = (["plain", "dropout", "clip_norm", "dropout+clip_norm", "sample_weight"], [1, 2])
    param_names: ClassVar[list[str]] = ["option", "threads"]
    timer = timeit.default_timer
    timeout = 300

    def setup(self, option, threads):
        check_threads(threads)
        self.saved_threads = numba.get_num_threads()
        numba.set_num_threads(threads)
        sizes, self.batch, _ = WORKLOADS["W2"]
        self.X, self.y = make_data("W2", "float32")
        self.net = nbbp.Network(sizes, activation="relu", dtype=np.float32, seed=0,
                                dropout=0.2 if "dropout" in option else 0.0)
        self.options = {}
        if "clip_norm" in option:
            self.options["clip_norm"] = 1.0
        if option == "sample_weight":
            self.options["sample_weight"] = np.random.default_rng(1).uniform(0.5, 2, len(self.y))
        self.time_epoch(option, threads)  # compile (or load from cache) first

    def teardown(self, option, threads):
        if hasattr(self, "saved_threads"):
            numba.set_num_threads(self.saved_threads)

    def time_epoch(self, option, threads):
        self.net.fit(self.X, self.y, epochs=1, batch_size=self.batch, learning_rate=LEARNING_RATE,
                     shuffle=False, **self.options)


class BatchNormEpoch:
    """One epoch of D1, 20 layers of width 256 with every hidden layer batch-normalised
    (``fit(epochs=1, shuffle=False)``, float32, batch 128), on 1,024 samples (bench/compare.py
    runs the full 8,192 against PyTorch's BatchNorm1d). The loss after 3 epochs guards the
    numerics, and must not depend on the thread count."""

    params: ClassVar[list[int]] = [1, 2]
    param_names: ClassVar[list[str]] = ["threads"]
    timer = timeit.default_timer
    timeout = 300

    def setup(self, threads):
        check_threads(threads)
        self.saved_threads = numba.get_num_threads()
        numba.set_num_threads(threads)
        self.sizes, self.batch, _ = WORKLOADS["D1"]
        self.X, self.y = make_data("D1", "float32")
        self.net = self.network()
        self.time_epoch(threads)  # compile (or load from cache) first

    def teardown(self, threads):
        if hasattr(self, "saved_threads"):
            numba.set_num_threads(self.saved_threads)

    def network(self):
        return nbbp.Network(self.sizes, activation="relu", output="softmax",
                            loss="cross_entropy", dtype=np.float32, seed=0, batch_norm=True)

    def time_epoch(self, threads):
        self.net.fit(self.X, self.y, epochs=1, batch_size=self.batch, learning_rate=LEARNING_RATE,
                     shuffle=False)

    def track_loss_after_3_epochs(self, threads):
        history = self.network().fit(self.X, self.y, epochs=3, batch_size=self.batch,
                                     learning_rate=LEARNING_RATE, shuffle=False)
        return history.loss[-1]

    track_loss_after_3_epochs.unit = "loss"


class FitMemory:
    """Peak resident memory of a W2 float32 epoch. asv reports the process's peak, so imports,
    the data and the warm-up call (which compiles if the on-disk cache is cold) count too."""

    timeout = 300

    def setup(self):
        sizes, self.batch, _ = WORKLOADS["W2"]
        self.X, self.y = make_data("W2", "float32")
        self.net = nbbp.Network(sizes, dtype=np.float32, seed=0)
        self.peakmem_fit()

    def peakmem_fit(self):
        self.net.fit(self.X, self.y, epochs=1, batch_size=self.batch, learning_rate=LEARNING_RATE,
                     shuffle=False)


class TrainingLoss:
    """Training loss after 5 epochs of W1 (float32, learning rate 0.05): a speed-up that breaks
    the numerics shows here. Results must be bitwise identical for 1 and 2 threads."""

    params: ClassVar[list[int]] = [1, 2]
    param_names: ClassVar[list[str]] = ["threads"]
    unit = "loss"
    timeout = 300

    def setup(self, threads):
        check_threads(threads)
        self.saved_threads = numba.get_num_threads()
        numba.set_num_threads(threads)
        self.X, self.y = make_data("W1", "float32")

    def teardown(self, threads):
        if hasattr(self, "saved_threads"):
            numba.set_num_threads(self.saved_threads)

    def track_loss_after_5_epochs(self, threads):
        sizes, batch, _ = WORKLOADS["W1"]
        net = nbbp.Network(sizes, dtype=np.float32, seed=0)
        history = net.fit(self.X, self.y, epochs=5, batch_size=batch, learning_rate=0.05,
                          shuffle=False)
        return history.loss[-1]


# The timed statement of ColdStart: import nbbp and one small fit (W1's network, 256 samples).
FIRST_FIT = """
import nbbp
net = nbbp.Network([64, 32, 10], dtype=np.float32, seed=0)
net.fit(X, y, epochs=1, batch_size=32, learning_rate=0.01, shuffle=False)
"""

# Untimed set-up of the child: the data (NumPy's import is the user's, not nbbp's).
DATA = """
import numpy as np
rng = np.random.default_rng(0)
X = rng.standard_normal((256, 64), dtype=np.float32)
y = rng.integers(0, 10, size=256)
"""

# An empty on-disk cache for the child. Numba tries its cache locators in order, and the first,
# UserProvidedCacheLocator, takes every cache=True function as soon as NUMBA_CACHE_DIR is set,
# even when the source's __pycache__ is writable (numba/core/caching.py, _CacheImpl). Checked with
# numba 0.68.1: a cache=True, parallel=True function in a writable folder wrote its .nbi/.nbc to
# NUMBA_CACHE_DIR and nothing to its __pycache__ (and in-tree without the variable); this first
# fit wrote its 49 cache files to the fresh directory and took 38 s on a loaded 2-core machine.
# numba reads the variable once, at import, and each dispatcher picks its locator when nbbp's
# modules are imported: it must be set before `import nbbp`, so no copy of the package is needed.
EMPTY_CACHE = """
import atexit, os, shutil, tempfile
cache_dir = tempfile.mkdtemp(prefix="nbbp-asv-numba-cache-")
atexit.register(shutil.rmtree, cache_dir, True)
os.environ["NUMBA_CACHE_DIR"] = cache_dir
"""


class ColdStart:
    """``import nbbp`` plus the first ``fit`` in a fresh interpreter (interpreter start-up and the
    child's set-up are not timed). "warm cache": the on-disk Numba cache is filled first, so this
    is loading, not compiling (target: at most 1 s). "empty cache": a fresh NUMBA_CACHE_DIR, so
    every kernel the epoch driver calls compiles (target: at most 30 s)."""

    params: ClassVar[list[str]] = ["warm cache", "empty cache"]
    param_names: ClassVar[list[str]] = ["cache"]
    # One sample is one interpreter; an empty-cache sample compiles everything: no discarded
    # warm-up runs, one round, and few samples.
    number = 1
    warmup_time = 0
    rounds = 1
    repeat = (1, 3, 20.0)
    min_run_count = 1
    timeout = 600

    def setup(self, cache):
        if cache == "warm cache":
            subprocess.run([sys.executable, "-c", DATA + FIRST_FIT], check=True,
                           env=dict(os.environ))

    def timeraw_import_and_first_fit(self, cache):
        setup = DATA + (EMPTY_CACHE if cache == "empty cache" else "")
        return FIRST_FIT, setup
