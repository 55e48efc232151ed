"""Activation functions f(z_i) and their derivatives f'(z_i), as compiled helpers and kernels.

Activations are passed to kernels as integer codes (``ACTIVATIONS[name]``), so one compiled
kernel per dtype serves every activation.
"""

import numpy as np
from numba import prange

from ._jit import helper, kernel

IDENTITY, SIGMOID, TANH, RELU, LEAKY_RELU, SOFTMAX = range(6)

ACTIVATIONS = {
    "identity": IDENTITY,
    "sigmoid": SIGMOID,
    "tanh": TANH,
    "relu": RELU,
    "leaky_relu": LEAKY_RELU,
    "softmax": SOFTMAX,
}
HIDDEN_ACTIVATIONS = ("identity", "sigmoid", "tanh", "relu", "leaky_relu")
LEAKY_SLOPE = 0.01


@helper
def activate(z, code, zero):
    """a = f(z) for one element, for every code but SOFTMAX (which needs the whole row); ``zero``
    is 0 in z's dtype."""
    if code == SIGMOID:
        # exp(-|z|) never overflows: sigmoid(+-1000) is exactly 1 and 0 with no warning.
        if z >= 0:
            return 1 / (1 + np.exp(-z))
        e = np.exp(z)
        return e / (1 + e)
    if code == TANH:
        return np.tanh(z)
    if code == RELU:
        return z if z > 0 or z != z else zero  # max(z, 0): NaN stays NaN, -inf gives 0
    if code == LEAKY_RELU:
        return z if z > 0 else z * LEAKY_SLOPE
    return z


@helper
def derivative(z, a, code):
    """f'(z) for one element, given z and a = f(z); for SOFTMAX see ``deltas`` (Jacobian)."""
    if code == SIGMOID:
        return a * (1 - a)
    if code == TANH:
        return 1 - a * a
    if code == RELU:
        return 1.0 if z > 0 else 0.0
    if code == LEAKY_RELU:
        return 1.0 if z > 0 else LEAKY_SLOPE
    return 1.0


@helper
def activate_row(z, code, a):
    """a = f(z) over one sample's row; softmax subtracts the row maximum before exp."""
    n = z.shape[0]
    if code == SOFTMAX:
        z_max = z[0]
        for i in range(1, n):
            z_max = max(z_max, z[i])
        total = z[0] * 0
        for i in range(n):
            a[i] = np.exp(z[i] - z_max)
            total += a[i]
        for i in range(n):
            a[i] /= total
    else:
        zero = z.dtype.type(0)
        for i in range(n):
            a[i] = activate(z[i], code, zero)


@helper
def _derivative_row(k, Z, A, code, D):
    for i in range(Z.shape[1]):
        D[k, i] = derivative(Z[k, i], A[k, i], code)


@kernel
def activation_forward(Z, code, A, parallel):
    """a_ki = f(z_ki) for every sample k (softmax: over the row k).

    Z, A: (n_samples, n) of one dtype; writes A in place. Parallel over samples k.
    """
    if parallel:
        for k in prange(Z.shape[0]):
            activate_row(Z[k], code, A[k])
    else:
        for k in range(Z.shape[0]):
            activate_row(Z[k], code, A[k])


@kernel
def activation_derivative(Z, A, code, D, parallel):
    """d_ki = f'(z_ki), from z and a = f(z), for every code but SOFTMAX.

    Z, A, D: (n_samples, n); writes D in place. Parallel over samples k.
    """
    if parallel:
        for k in prange(Z.shape[0]):
            _derivative_row(k, Z, A, code, D)
    else:
        for k in range(Z.shape[0]):
            _derivative_row(k, Z, A, code, D)
