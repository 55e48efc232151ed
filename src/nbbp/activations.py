"""Activation functions f(z_i) and their derivatives f'(z_i), as compiled helpers and row passes.

Activations are passed to kernels as integer codes (``ACTIVATIONS[name]``), so one compiled
kernel per dtype serves every activation.
"""

import numpy as np
from numba import types
from numba.extending import overload

from ._jit import helper, part
from ._simd import power_of_two

IDENTITY, SIGMOID, TANH, RELU, LEAKY_RELU, SOFTMAX, EXP = range(7)

ACTIVATIONS = {
    "identity": IDENTITY,
    "sigmoid": SIGMOID,
    "tanh": TANH,
    "relu": RELU,
    "leaky_relu": LEAKY_RELU,
    "softmax": SOFTMAX,
    "exp": EXP,  # an output only: the log link of the poisson loss
}
HIDDEN_ACTIVATIONS = ("identity", "sigmoid", "tanh", "relu", "leaky_relu")
LEAKY_SLOPE = 0.01


_LOG2_E = 1.4426950408889634
_LN_2 = 0.6931471805599453


@helper
def exp32(x):
    """exp(x) for a float32 x, within one unit in the last place of np.exp, in arithmetic that
    vectorises (np.exp is a call per element: softmax over W1's 32x10 outputs took 1.25 of the
    batch's 7.8 us): e^x = 2^n e^r, n = round(x / ln 2), |r| <= ln(2) / 2, worked in float64,
    where r's error is 1e-14 and e^r's Taylor polynomial to r^7 errs by 5e-9 relative, then
    rounded once to float32. NaN stays NaN; exp(-inf) is 0 and exp(inf) inf."""
    y = np.float64(x)
    y = y if not y < -110.0 else -110.0  # exp(-110) rounds to 0 in float32, and NaN passes
    y = y if not y > 100.0 else 100.0  # exp(100) overflows float32
    n = np.floor(y * _LOG2_E + 0.5)
    n = n if n == n else 0.0  # a NaN has no exponent; r, and so the result, stay NaN
    r = y - n * _LN_2
    e_r = 1.0 + r * (1.0 + r * (1 / 2 + r * (1 / 6 + r * (1 / 24 + r * (
        1 / 120 + r * (1 / 720 + r * (1 / 5040)))))))
    return np.float32(e_r * power_of_two(np.int64(np.int32(n))))


def exp(x):
    """exp(x) in x's dtype: exp32 for float32 in compiled code, else np.exp (float64 keeps the
    library's, whose accuracy a polynomial would have to match to the last bit)."""
    return np.exp(x)


@overload(exp)
def _exp(x):
    if x == types.float32:
        return lambda x: exp32(x)  # noqa: PLW0108 - compiled by Numba
    return lambda x: np.exp(x)  # noqa: PLW0108 - compiled by Numba


@helper
def _sigmoid(z, Z):
    """1 / (1 + exp(-z)) for one element of the array Z, in its dtype (a Python 1 would make
    Numba compute a float32 network's activations in float64). exp(-|z|) never overflows:
    sigmoid(+-1000) is exactly 1 and 0 with no warning."""
    one = Z.dtype.type(1)
    e = exp(-abs(z))
    return one / (one + e) if z >= 0 else e / (one + e)


# The row passes below are parts (compiled once, called by every kernel that activates or
# differentiates rows): inlined into each kernel's loops, their loop per activation code cost a
# first fit 7 s of compile. The matrix kernels call them once, serially, over the whole batch.
@part
def activate_rows(Z, k0, k1, code, A):
    """a_k = f(z_k) over the rows k0 <= k < k1; softmax subtracts the row maximum before exp.

    One loop per code: with the switch on ``code`` inside one loop, LLVM compiled a jump per
    element and no vector code. Every constant is in Z's dtype. Rows are indexed in place, never
    taken as views Z[k]: each view of an array is a pair of atomic reference counts.
    """
    n = Z.shape[1]
    zero, slope = Z.dtype.type(0), Z.dtype.type(LEAKY_SLOPE)
    if code == SOFTMAX:
        for k in range(k0, k1):
            z_max = Z[k, 0]
            for i in range(1, n):
                z_max = max(z_max, Z[k, i])
            for i in range(n):
                A[k, i] = Z[k, i] - z_max
        # e^(z - z_max) over the rows' elements in one flat loop: a row of W1's ten outputs is
        # too short for vectors. (reshape, not ravel: a view of the rows, and a compile error
        # rather than a silent copy if A were not contiguous)
        flat = A[k0:k1].reshape((k1 - k0) * n)
        for p in range(flat.shape[0]):
            flat[p] = exp(flat[p])
        for k in range(k0, k1):
            total = zero
            for i in range(n):
                total += A[k, i]
            for i in range(n):
                A[k, i] /= total
    elif code == RELU:
        for k in range(k0, k1):
            for i in range(n):
                z = Z[k, i]
                A[k, i] = z if z > 0 or z != z else zero  # max(z, 0): NaN stays NaN, -inf gives 0
    elif code == SIGMOID:
        for k in range(k0, k1):
            for i in range(n):
                A[k, i] = _sigmoid(Z[k, i], Z)
    elif code == TANH:
        for k in range(k0, k1):
            for i in range(n):
                A[k, i] = np.tanh(Z[k, i])
    elif code == LEAKY_RELU:
        for k in range(k0, k1):
            for i in range(n):
                z = Z[k, i]
                A[k, i] = z if z > 0 else z * slope
    elif code == EXP:
        for k in range(k0, k1):
            for i in range(n):
                A[k, i] = exp(Z[k, i])
    elif A.ctypes.data != Z.ctypes.data:  # the identity, in place (forward_layer's Z, Z): none
        for k in range(k0, k1):
            for i in range(n):
                A[k, i] = Z[k, i]


@part
def times_derivative_rows(Z, A, k0, k1, code, D):
    """d_kj <- f'(z_kj) d_kj over the rows k0 <= k < k1 (the delta rule's last step), from z and
    a = f(z), for every code but SOFTMAX (see ``deltas``: a Jacobian); one loop per code, as
    activate_rows."""
    one, zero, slope = Z.dtype.type(1), Z.dtype.type(0), Z.dtype.type(LEAKY_SLOPE)
    n = Z.shape[1]
    if code == RELU:
        for k in range(k0, k1):
            for j in range(n):
                D[k, j] *= one if Z[k, j] > 0 else zero
    elif code == SIGMOID:
        for k in range(k0, k1):
            for j in range(n):
                D[k, j] *= A[k, j] * (one - A[k, j])
    elif code == TANH:
        for k in range(k0, k1):
            for j in range(n):
                D[k, j] *= one - A[k, j] * A[k, j]
    elif code == LEAKY_RELU:
        for k in range(k0, k1):
            for j in range(n):
                D[k, j] *= one if Z[k, j] > 0 else slope
    elif code == EXP:
        for k in range(k0, k1):
            for j in range(n):
                D[k, j] *= A[k, j]


@part
def times_derivative_of_z_rows(Z, k0, k1, code, D):
    """d_kj <- f'(z_kj) d_kj over the rows k0 <= k < k1, as times_derivative_rows, with f(z)
    computed again from z: for a layer whose activation array holds more than f(z) (the
    identity form of a residual connection, a = a(s) + f(z))."""
    one = Z.dtype.type(1)
    n = Z.shape[1]
    if code == SIGMOID:
        for k in range(k0, k1):
            for j in range(n):
                s = _sigmoid(Z[k, j], Z)
                D[k, j] *= s * (one - s)
    elif code == TANH:
        for k in range(k0, k1):
            for j in range(n):
                t = np.tanh(Z[k, j])
                D[k, j] *= one - t * t
    elif code == EXP:
        for k in range(k0, k1):
            for j in range(n):
                D[k, j] *= exp(Z[k, j])
    else:  # relu, leaky_relu and identity read z alone
        times_derivative_rows(Z, Z, k0, k1, code, D)
