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
def activate(z, code, Z):
    """a = f(z) for one element z of the array Z, for every code but SOFTMAX (which needs the
    whole row). Every constant is in Z's dtype: a Python 1 or 0.01 would make Numba compute a
    float32 network's activations in float64, converting each element there and back."""
    one = Z.dtype.type(1)
    if code == SIGMOID:
        # exp(-|z|) never overflows: sigmoid(+-1000) is exactly 1 and 0 with no warning.
        if z >= 0:
            return one / (one + np.exp(-z))
        e = np.exp(z)
        return e / (one + e)
    if code == TANH:
        return np.tanh(z)
    if code == RELU:
        return z if z > 0 or z != z else Z.dtype.type(0)  # max(z, 0): NaN stays NaN, -inf gives 0
    if code == LEAKY_RELU:
        return z if z > 0 else z * Z.dtype.type(LEAKY_SLOPE)
    return z


@helper
def derivative(z, a, code, Z):
    """f'(z) for one element, given z and a = f(z), in the dtype of the array Z; for SOFTMAX see
    ``deltas`` (Jacobian)."""
    one = Z.dtype.type(1)
    if code == SIGMOID:
        return a * (one - a)
    if code == TANH:
        return one - a * a
    if code == RELU:
        return one if z > 0 else Z.dtype.type(0)
    if code == LEAKY_RELU:
        return one if z > 0 else Z.dtype.type(LEAKY_SLOPE)
    return one


@helper
def _activate_each(Z, k, code, A):
    for i in range(Z.shape[1]):
        A[k, i] = activate(Z[k, i], code, Z)


@helper
def activate_row(Z, k, code, A):
    """a_k = f(z_k) over the row of sample k; softmax subtracts the row maximum before exp.

    One loop per code, each with its code a constant: with the switch on ``code`` inside one
    loop, LLVM compiled a jump per element and no vector code. Rows are indexed in place, never
    taken as views Z[k]: each view of an array is a pair of atomic reference counts.
    """
    if code == SOFTMAX:
        n = Z.shape[1]
        z_max = Z[k, 0]
        for i in range(1, n):
            z_max = max(z_max, Z[k, i])
        total = Z.dtype.type(0)
        for i in range(n):
            A[k, i] = np.exp(Z[k, i] - z_max)
            total += A[k, i]
        for i in range(n):
            A[k, i] /= total
    elif code == RELU:
        _activate_each(Z, k, RELU, A)
    elif code == SIGMOID:
        _activate_each(Z, k, SIGMOID, A)
    elif code == TANH:
        _activate_each(Z, k, TANH, A)
    elif code == LEAKY_RELU:
        _activate_each(Z, k, LEAKY_RELU, A)
    else:
        _activate_each(Z, k, IDENTITY, A)


@helper
def _derivative_each(Z, A, k, code, D, multiply):
    for j in range(Z.shape[1]):
        f_prime = derivative(Z[k, j], A[k, j], code, Z)
        D[k, j] = D[k, j] * f_prime if multiply else f_prime


@helper
def derivative_row(Z, A, k, code, D, multiply):
    """d_kj = f'(z_kj) over the row of sample k, or with ``multiply`` d_kj <- f'(z_kj) d_kj (the
    delta rule's last step), for every code but SOFTMAX; one loop per code, as activate_row."""
    if code == RELU:
        _derivative_each(Z, A, k, RELU, D, multiply)
    elif code == SIGMOID:
        _derivative_each(Z, A, k, SIGMOID, D, multiply)
    elif code == TANH:
        _derivative_each(Z, A, k, TANH, D, multiply)
    elif code == LEAKY_RELU:
        _derivative_each(Z, A, k, LEAKY_RELU, D, multiply)
    else:
        _derivative_each(Z, A, k, IDENTITY, D, multiply)


@kernel
def activation_forward(Z, code, A, parallel):
    """a_ki = f(z_ki) for every sample k (softmax: over the row k).

    Z, A: (n_samples, n) of one dtype; writes A in place. Parallel over samples k.
    """
    if parallel:
        for k in prange(Z.shape[0]):
            activate_row(Z, k, code, A)
    else:
        for k in range(Z.shape[0]):
            activate_row(Z, k, code, A)


@kernel
def activation_derivative(Z, A, code, D, parallel):
    """d_ki = f'(z_ki), from z and a = f(z), for every code but SOFTMAX.

    Z, A, D: (n_samples, n); writes D in place. Parallel over samples k.
    """
    if parallel:
        for k in prange(Z.shape[0]):
            derivative_row(Z, A, k, code, D, False)
    else:
        for k in range(Z.shape[0]):
            derivative_row(Z, A, k, code, D, False)
