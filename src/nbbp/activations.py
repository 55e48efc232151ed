"""Activation functions f(z_i) and their derivatives f'(z_i), as compiled helpers and row passes.

Activations are passed to kernels as integer codes (``ACTIVATIONS[name]``), so one compiled
kernel per dtype serves every activation.
"""

import numpy as np

from ._jit import helper, part

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


@helper
def _sigmoid(z, Z):
    """1 / (1 + exp(-z)) for one element of the array Z, in its dtype (a Python 1 would make
    Numba compute a float32 network's activations in float64). exp(-|z|) never overflows:
    sigmoid(+-1000) is exactly 1 and 0 with no warning."""
    one = Z.dtype.type(1)
    if z >= 0:
        return one / (one + np.exp(-z))
    e = np.exp(z)
    return e / (one + e)


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
            total = zero
            for i in range(n):
                A[k, i] = np.exp(Z[k, i] - z_max)
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
                A[k, i] = np.exp(Z[k, i])
    else:
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
                D[k, j] *= np.exp(Z[k, j])
    else:  # relu, leaky_relu and identity read z alone
        times_derivative_rows(Z, Z, k0, k1, code, D)
