"""asv: one kernel per benchmark at the shapes of bench/README.md's W2 and W4, nbbp against its
NumPy reference twin.

``LayerKernels`` times one layer's forward pass, delta rule and gradients; ``NetworkKernels``
times each kernel over every layer of one mini-batch of W2 or W4 (the output delta with the
deltas), and the SGD update of the workload's whole parameter vector. nbbp's kernels get the
``parallel`` flag the library would pass (``use_threads``). ``threads`` is Numba's thread count
for nbbp and the BLAS thread count for the reference, whose time is NumPy's matmul.
"""

import itertools
import os
import timeit
from typing import ClassVar

import numba
import numpy as np

from nbbp import reference
from nbbp._jit import use_threads
from nbbp.activations import ACTIVATIONS
from nbbp.deltas import hidden_delta, output_delta
from nbbp.forward import forward_layer
from nbbp.gradients import scratch_size, weight_gradients
from nbbp.losses import LOSSES
from nbbp.optimizers import SGD_CODE, optimizer_update, update_in_parallel

# (n_samples, n_in, n_out): W2's first layer, W4's hidden layer.
SHAPES = {"W2 784x128 b32": (32, 784, 128), "W4 1024x1024 b256": (256, 1024, 1024)}

# name: (sizes, batch), as in bench/README.md (ReLU hidden layers, softmax, cross-entropy).
NETWORKS = {"W2": ((784, 128, 64, 10), 32), "W4": ((1024, 1024, 1024, 10), 256)}

LEARNING_RATE = 0.01
RELU, SOFTMAX = ACTIVATIONS["relu"], ACTIVATIONS["softmax"]
CROSS_ENTROPY = LOSSES["cross_entropy"]


class _Threads:
    """Sets the thread count in ``setup`` and restores it in ``teardown``: Numba's pool for nbbp,
    BLAS through threadpoolctl for the reference."""

    def set_threads(self, lib, threads):
        if threads > numba.config.NUMBA_NUM_THREADS:
            raise NotImplementedError(f"{threads} threads, but NUMBA_NUM_THREADS is "
                                      f"{numba.config.NUMBA_NUM_THREADS}")
        self.blas_limits = None
        if lib == "reference":
            try:
                from threadpoolctl import threadpool_limits
            except ImportError:
                # Without it BLAS runs on its default, every core: right only for threads = cores.
                if threads != os.cpu_count():
                    raise NotImplementedError("threadpoolctl is not installed: cannot limit the "
                                              "reference's BLAS threads") from None
            else:
                self.blas_limits = threadpool_limits(limits=threads, user_api="blas")
        self.saved_threads = numba.get_num_threads()
        numba.set_num_threads(threads)

    def teardown(self, *params):
        if hasattr(self, "saved_threads"):
            numba.set_num_threads(self.saved_threads)
        if getattr(self, "blas_limits", None) is not None:
            self.blas_limits.restore_original_limits()


class LayerKernels(_Threads):
    """One layer: z = a_prev W^T + b with ReLU, the delta rule into a ReLU layer, and dE/dW,
    dE/db."""

    params = (list(SHAPES), ["nbbp", "reference"], ["float32", "float64"], [1, 2])
    param_names: ClassVar[list[str]] = ["shape", "lib", "dtype", "threads"]
    timer = timeit.default_timer  # wall clock: the kernels are parallel

    def setup(self, shape, lib, dtype, threads):
        self.set_threads(lib, threads)
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
        self.l2 = self.W.dtype.type(0)
        self.no_mask = np.zeros((0, 0), dtype)
        self.parallel = use_threads(n * n_in * n_out)
        self.scratch = np.empty(scratch_size(n, n_in, n_out), dtype)
        for method in (self.time_forward, self.time_hidden_delta, self.time_gradients):
            method(shape, lib, dtype, threads)  # compile (or load from cache) before timing

    def time_forward(self, shape, lib, dtype, threads):
        if lib == "nbbp":
            forward_layer(self.A_prev, self.W, self.b, True, RELU, self.Z, self.A, self.parallel,
                          self.scratch)
        else:
            reference.forward([self.W], [self.b], self.A_prev, ["relu"])

    def time_hidden_delta(self, shape, lib, dtype, threads):
        if lib == "nbbp":
            hidden_delta(self.delta, self.W, self.Z_prev, self.A_prev, RELU, self.delta_prev,
                         self.parallel, self.scratch)
        else:
            reference.hidden_delta(self.delta, self.W, self.Z_prev, self.A_prev, "relu")

    def time_gradients(self, shape, lib, dtype, threads):
        if lib == "nbbp":
            weight_gradients(self.delta, self.A_prev, self.W, self.l2, self.no_mask, False,
                             self.dW, self.db, True, self.parallel, self.scratch)
        else:
            reference.gradients(self.delta, self.A_prev)


class NetworkKernels(_Threads):
    """Every layer of one mini-batch of W2 or W4, one kernel per benchmark: the forward pass, the
    deltas (output delta, then the delta rule down to the first hidden layer), the gradients, and
    the SGD update of the flat parameter vector (W4: 2,109,450 parameters)."""

    params = (list(NETWORKS), ["nbbp", "reference"], ["float32", "float64"], [1, 2])
    param_names: ClassVar[list[str]] = ["workload", "lib", "dtype", "threads"]
    timer = timeit.default_timer  # wall clock: the kernels are parallel

    def setup(self, workload, lib, dtype, threads):
        self.set_threads(lib, threads)
        sizes, n = NETWORKS[workload]
        dt = np.dtype(dtype)
        rng = np.random.default_rng(0)
        self.X = rng.standard_normal((n, sizes[0]), dtype=dt)
        self.Y = np.zeros((n, sizes[-1]), dt)
        self.Y[np.arange(n), rng.integers(0, sizes[-1], size=n)] = 1
        self.activations = ["relu"] * (len(sizes) - 2) + ["softmax"]
        self.codes = [ACTIVATIONS[name] for name in self.activations]

        # Parameters are views into one flat vector, as in nbbp.Network; He-normal weights.
        n_params = sum(n_out * n_in + n_out for n_in, n_out in itertools.pairwise(sizes))
        self.theta = np.zeros(n_params, dt)
        self.grad = rng.standard_normal(n_params, dtype=dt)
        self.weights, self.biases, self.dWs, self.dbs = [], [], [], []
        offset = 0
        for n_in, n_out in itertools.pairwise(sizes):
            W = self.theta[offset:offset + n_out * n_in].reshape(n_out, n_in)
            W[...] = rng.standard_normal((n_out, n_in), dtype=dt) * dt.type(np.sqrt(2 / n_in))
            self.weights.append(W)
            self.dWs.append(self.grad[offset:offset + n_out * n_in].reshape(n_out, n_in))
            offset += n_out * n_in
            self.biases.append(self.theta[offset:offset + n_out])
            self.dbs.append(self.grad[offset:offset + n_out])
            offset += n_out

        self.Zs = [np.empty((n, n_out), dt) for n_out in sizes[1:]]
        self.As = [np.empty_like(Z) for Z in self.Zs]
        self.deltas = [np.empty_like(Z) for Z in self.Zs]
        self.parallel = [use_threads(n * W.size) for W in self.weights]
        self.scratch = np.empty(max(scratch_size(n, a, b) for a, b in itertools.pairwise(sizes)),
                                dt)
        self.update_parallel = update_in_parallel(n_params)  # as the epoch driver decides
        self.no_state = np.zeros((0, n_params), dt)
        self.alpha = dt.type(LEARNING_RATE)
        self.one = dt.type(1)  # the gradient's scale (clipping's)
        self.eps = dt.type(np.finfo(dt).eps)
        self.l2 = dt.type(0)
        self.no_mask = np.zeros((0, 0), dt)

        # The deltas read a real forward pass, and the gradients real deltas; every call here
        # also compiles (or loads from cache) the kernel before timing.
        self.time_forward(workload, lib, dtype, threads)
        if lib == "reference":
            self.ref_zs, self.ref_as = reference.forward(self.weights, self.biases, self.X,
                                                         self.activations)
            self.ref_deltas = self.reference_deltas()
        for method in (self.time_deltas, self.time_gradients, self.time_update):
            method(workload, lib, dtype, threads)

    def time_forward(self, workload, lib, dtype, threads):
        if lib == "nbbp":
            A_prev = self.X
            for l, (W, b) in enumerate(zip(self.weights, self.biases)):
                forward_layer(A_prev, W, b, True, self.codes[l], self.Zs[l], self.As[l],
                              self.parallel[l], self.scratch)
                A_prev = self.As[l]
        else:
            reference.forward(self.weights, self.biases, self.X, self.activations)

    def time_deltas(self, workload, lib, dtype, threads):
        if lib == "nbbp":
            output_delta(self.Zs[-1], self.As[-1], self.Y, SOFTMAX, CROSS_ENTROPY, self.eps,
                         self.deltas[-1])
            for l in range(len(self.weights) - 1, 0, -1):
                hidden_delta(self.deltas[l], self.weights[l], self.Zs[l - 1], self.As[l - 1],
                             RELU, self.deltas[l - 1], self.parallel[l], self.scratch)
        else:
            self.reference_deltas()

    def reference_deltas(self):
        """The reference's delta of every layer, from its forward pass in setup."""
        zs, a_list = self.ref_zs, self.ref_as
        delta = reference.output_delta(zs[-1], a_list[-1], self.Y, "softmax", "cross_entropy")
        deltas = [delta]
        for l in range(len(self.weights) - 1, 0, -1):
            delta = reference.hidden_delta(delta, self.weights[l], zs[l - 1], a_list[l], "relu")
            deltas.insert(0, delta)
        return deltas

    def time_gradients(self, workload, lib, dtype, threads):
        if lib == "nbbp":
            A_prev = [self.X, *self.As[:-1]]
            for l, W in enumerate(self.weights):
                weight_gradients(self.deltas[l], A_prev[l], W, self.l2, self.no_mask, False,
                                 self.dWs[l], self.dbs[l], True, self.parallel[l], self.scratch)
        else:
            for l in range(len(self.weights)):
                reference.gradients(self.ref_deltas[l], self.ref_as[l])

    def time_update(self, workload, lib, dtype, threads):
        if lib == "nbbp":
            # h0-h3 (self.l2, zero): SGD reads none
            optimizer_update(SGD_CODE, self.theta, self.grad, self.one, self.no_state, self.alpha,
                             self.l2, self.l2, self.l2, self.l2, 1, self.update_parallel)
        else:
            reference.sgd_update(self.theta, self.grad, LEARNING_RATE)
