"""asv: one kernel per benchmark, nbbp against its NumPy reference twin."""

import numba
import numpy as np

from nbbp import reference
from nbbp.activations import ACTIVATIONS
from nbbp.deltas import hidden_delta
from nbbp.forward import forward_layer
from nbbp.gradients import weight_gradients

# (n_samples, n_in, n_out): W2's first layer, W4's hidden layer.
SHAPES = {"W2 784x128 b32": (32, 784, 128), "W4 1024x1024 b256": (256, 1024, 1024)}


class LayerKernels:
    params = (list(SHAPES), ["nbbp", "reference"], ["float32", "float64"], [1, 2])
    param_names = ["shape", "lib", "dtype", "threads"]
    timer = __import__("timeit").default_timer  # wall clock: the kernels are parallel

    def setup(self, shape, lib, dtype, threads):
        if threads > numba.config.NUMBA_NUM_THREADS:
            raise NotImplementedError("fewer cores than threads")
        self.saved_threads = numba.get_num_threads()
        numba.set_num_threads(threads)
        n, n_in, n_out = SHAPES[shape]
        rng = np.random.default_rng(0)
        self.A_prev = rng.normal(size=(n, n_in)).astype(dtype)
        self.W = rng.normal(size=(n_out, n_in)).astype(dtype)
        self.b = rng.normal(size=n_out).astype(dtype)
        self.Z = np.empty((n, n_out), dtype)
        self.A = np.empty_like(self.Z)
        self.delta = rng.normal(size=(n, n_out)).astype(dtype)
        self.delta_prev = np.empty((n, n_in), dtype)
        self.Z_prev = rng.normal(size=(n, n_in)).astype(dtype)
        self.dW = np.empty_like(self.W)
        self.db = np.empty_like(self.b)
        self.no_mask = np.zeros((0, 0), dtype)
        self.relu = ACTIVATIONS["relu"]
        for method in (self.time_forward, self.time_hidden_delta, self.time_gradients):
            method(shape, lib, dtype, threads)  # compile (or load from cache) before timing

    def teardown(self, shape, lib, dtype, threads):
        numba.set_num_threads(self.saved_threads)

    def time_forward(self, shape, lib, dtype, threads):
        if lib == "nbbp":
            forward_layer(self.A_prev, self.W, self.b, True, self.relu, self.Z, self.A, True)
        else:
            reference.forward([self.W], [self.b], self.A_prev, ["relu"])

    def time_hidden_delta(self, shape, lib, dtype, threads):
        if lib == "nbbp":
            hidden_delta(self.delta, self.W, self.Z_prev, self.A_prev, self.relu, self.delta_prev,
                         True)
        else:
            reference.hidden_delta(self.delta, self.W, self.Z_prev, self.A_prev, "relu")

    def time_gradients(self, shape, lib, dtype, threads):
        if lib == "nbbp":
            weight_gradients(self.delta, self.A_prev, self.W, self.W.dtype.type(0), self.no_mask, False,
                             self.dW, self.db, True, True)
        else:
            reference.gradients(self.delta, self.A_prev)
