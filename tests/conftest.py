"""Shared tolerances, seeds and problem builders for the nbbp tests."""

import numpy as np
import pytest
from numpy.testing import assert_allclose

import nbbp

# Kernels against the NumPy reference: rtol 1e-12 in float64, 1e-5 in float32. The atol covers
# entries that cancel to ~0, where a relative bound means nothing. In float32 it scales with the
# array: a sum of 37 unit-sized products that cancels to -0.0216 differs by 1.8e-6 (2.5 ulp of
# its terms) between the blocked kernels' and BLAS's summation orders.
TOLERANCES = {
    np.float64: dict(rtol=1e-12, atol=1e-14),
    np.float32: dict(rtol=1e-5, atol=1e-6),
}
DTYPES = [np.float64, np.float32]

HIDDEN = ["identity", "sigmoid", "tanh", "relu", "leaky_relu"]
OUTPUTS = [*HIDDEN, "softmax", "exp"]
# Every valid (output, loss) pair: log_loss and cross_entropy need outputs in (0, 1), poisson
# the exponential (its log link).
OUTPUT_LOSS_PAIRS = (
    [(o, "squared_error") for o in OUTPUTS]
    + [("sigmoid", "log_loss"), ("softmax", "log_loss")]
    + [("softmax", "cross_entropy"), ("sigmoid", "cross_entropy")]
    + [("exp", "poisson")]
)
# (n_samples, n_in, n_out): 1x1, n_in != n_out both ways, widths not divisible by 2 threads,
# a batch of one sample, and sizes that span several kernel tiles with ragged ends (9x70x13: a
# layer read in place, past one strip of AVX-512 float32 columns, ragged). A last strip is
# computed one vector wide where one vector holds it (zeros_narrow), else two: 11x45x27 leaves
# last strips of 13 and 27 columns of AVX-512 float32 (16-lane vectors: one narrow, one wide),
# and of 13 and 11 where vectors have 8 lanes (both wide; the narrow ones come from the other
# shapes). test_gradients.py checks that every kernel meets both kinds.
LAYER_SHAPES = [(1, 1, 1), (5, 1, 1), (1, 7, 3), (6, 3, 7), (13, 17, 5), (9, 70, 13), (4, 33, 65),
                (70, 37, 101), (131, 37, 67), (11, 45, 27)]
# Shapes where the delta rule and the gradients pack strips of W (64 samples up) and A_prev (64
# neurons up), with ragged strips, panels of delta and blocks; from 64 strips (1,024 float32
# columns, 512 float64) in groups of 4, the last group short.
PACKED_SHAPES = [(128, 256, 512), (65, 37, 515), (131, 517, 260), (66, 1030, 65)]
# The same for the delta rule, as (n_samples, n_hidden, n_next): sums of at most 260 terms. In
# float64 a sum of 512 unit-sized terms that cancels to ~0.003 differs from BLAS's by 2.5e-14,
# past atol, and the kernel's is the closer to the exact sum (worst errors against long double
# 5e-14 and BLAS's 8.5e-14).
PACKED_DELTA_SHAPES = [(128, 512, 256), (65, 515, 37), (131, 37, 260), (66, 1030, 20)]
# The forward's (test_forward.py):
# strips of W transposed in whole tiles of lanes x lanes and in ragged ones (n_in or n_out not a
# multiple of the lanes), a ragged last strip of neurons, ragged blocks of samples, and from 64
# strips (2,048 float32 neurons, 1,024 float64) groups of STRIP_GROUP, the last one short.
FORWARD_SHAPES = [(32, 64, 32), (29, 517, 101), (13, 48, 64), (25, 1030, 2090)]


def tol(dtype):
    return TOLERANCES[np.dtype(dtype).type]


def assert_equivalent(got, expected, dtype):
    """A kernel's result equals its reference twin's within the dtype's tolerances."""
    t = dict(tol(dtype))
    if np.dtype(dtype) == np.float32 and np.size(expected):
        t["atol"] = max(t["atol"], t["rtol"] * float(np.max(np.abs(expected))))
    assert_allclose(got, expected, **t)


def sum_error_bound(abs_sum, n_terms, dtype):
    """How far two evaluations of a sum of n_terms terms, in any two orders, in ``dtype``, can
    be apart, where the terms' absolute values add up to ``abs_sum``: each is within gamma_n
    abs_sum of the exact sum, gamma_n = n u / (1 - n u) with u the unit roundoff (Higham,
    Accuracy and Stability of Numerical Algorithms, sec. 3.1), so 2 gamma_n abs_sum. A dot
    product that cancels is small with an error of this size, whatever order a CPU sums in."""
    u = np.finfo(dtype).eps / 2
    n = max(int(n_terms), 1)
    return 2 * n * u / (1 - n * u) * np.asarray(abs_sum, dtype=np.float64)


# Roundings after a sum (a bias added, a factor f'(z) or 1/n applied, an activation evaluated)
# each add at most u relative error: a few of them, with room.
POST_SUM_ROUNDINGS = 8


def assert_sums_equivalent(got, expected, abs_sum, n_terms, dtype, extra=0.0):
    """A kernel's sums equal their reference twin's within sum_error_bound, elementwise, plus a
    few roundings of the result, plus ``extra`` (the error of a factor computed apart)."""
    u = np.finfo(dtype).eps / 2
    bound = (sum_error_bound(abs_sum, n_terms, dtype) + extra
             + POST_SUM_ROUNDINGS * u * np.abs(np.asarray(expected, dtype=np.float64))
             + np.finfo(dtype).tiny)
    error = np.abs(np.asarray(got, dtype=np.float64) - np.asarray(expected, dtype=np.float64))
    excess = np.ravel(error - bound)
    worst = int(np.argmax(excess)) if excess.size else 0
    assert np.all(error <= bound), (
        f"{np.sum(~(error <= bound))} of {np.size(error)} elements past the sum's error bound; "
        f"worst: error {np.ravel(error)[worst]:.3g} against bound {np.ravel(bound)[worst]:.3g}")


@pytest.fixture(params=[False, True, None], ids=["serial", "parallel", "none"])
def parallel(request):
    """A kernel's ``parallel`` argument: its loop on one thread or over the thread pool, or None,
    on one thread in the kernel's specialisation compiled without a parallel loop (nbbp._jit).
    All three must equal the reference."""
    return request.param


@pytest.fixture
def rng():
    return np.random.default_rng(20261122)


def random_targets(rng, n, n_out, loss, dtype):
    """Targets valid for ``loss``: probability rows for cross_entropy, 0/1 for log_loss, counts
    (0 included) for poisson."""
    if loss == "poisson":
        return rng.poisson(1.5, size=(n, n_out)).astype(dtype)
    if loss == "cross_entropy":
        p = rng.uniform(0.1, 1.0, size=(n, n_out))
        return (p / p.sum(axis=1, keepdims=True)).astype(dtype)
    if loss == "log_loss":
        return rng.integers(0, 2, size=(n, n_out)).astype(dtype)
    return rng.normal(size=(n, n_out)).astype(dtype)


def worked_example_network():
    """R. Yehoshua's 2-3-2-1 example: sigmoid everywhere, log_loss, masks and bias switches."""
    net = nbbp.Network([2, 3, 2, 1], activation="sigmoid", output="sigmoid", loss="log_loss",
                       masks=[[[1, 1], [1, 1], [0, 1]], [[1, 1, 0], [1, 1, 1]], None],
                       bias=[True, False, False], dtype=np.float64)
    net.weights[0][...] = [[0.5, 0.0], [-0.2, 0.0], [0.0, 0.0]]
    net.biases[0][...] = [0.3, 0.7, -0.1]
    net.weights[1][...] = [[-0.5, 0.4, 0.0], [0.3, 0.6, 0.4]]
    net.weights[2][...] = [[0.5, 0.7]]
    return net


def torch_twin(torch, net, *modules):
    """A float64 torch.nn.Sequential of ``modules`` whose Linear layers start with ``net``'s
    weights and biases, in order."""
    model = torch.nn.Sequential(*modules).double()
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        for layer, W, b in zip(linears, net.weights, net.biases):
            layer.weight.copy_(torch.from_numpy(W))
            layer.bias.copy_(torch.from_numpy(b))
    return model


# ------------------------------------------------------------------------ real tables as .csv
def write_csv(path, header, rows):
    lines = [",".join(header)] + [",".join(str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def iris_csv(tmp_path):
    """scikit-learn's iris table with a header row, the species names in the last column."""
    data = pytest.importorskip("sklearn.datasets").load_iris()
    names = [n.replace(" (cm)", "").replace(" ", "_") for n in data.feature_names]
    rows = [[*x, data.target_names[t]] for x, t in zip(data.data, data.target)]
    return write_csv(tmp_path / "iris.csv", [*names, "species"], rows)


@pytest.fixture
def cancer_csv(tmp_path):
    """scikit-learn's breast-cancer table (features from 0.05 to 2,500), its 0/1 diagnosis
    last."""
    data = pytest.importorskip("sklearn.datasets").load_breast_cancer()
    names = [n.replace(" ", "_") for n in data.feature_names]
    rows = [[*x, t] for x, t in zip(data.data, data.target)]
    return write_csv(tmp_path / "bc.csv", [*names, "diagnosis"], rows)


# For a script run in a subprocess: ``compiled`` lists every function Numba compiles inside
# ``with event.install_listener("numba:compile", Compiles()):`` (from numba.core import event).
COMPILE_LISTENER = """
compiled = []

class Compiles(event.Listener):
    def on_start(self, ev):
        func = ev.data["dispatcher"].py_func
        compiled.append(f"{func.__module__}.{func.__qualname__}")
    def on_end(self, ev):
        pass
"""
