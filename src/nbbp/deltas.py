"""Deltas delta_i = dE/dz_i: at the output layer, and by the delta rule for hidden layers."""

from numba import prange

from ._jit import helper, kernel
from .activations import IDENTITY, SIGMOID, SOFTMAX, derivative
from .losses import CROSS_ENTROPY, LOG_LOSS, SQUARED_ERROR, loss_derivative


@helper
def _is_matched(out_code, loss_code):
    return (
        (out_code == IDENTITY and loss_code == SQUARED_ERROR)
        or (out_code == SIGMOID and loss_code == LOG_LOSS)
        or (out_code == SOFTMAX and loss_code == CROSS_ENTROPY)
    )


@kernel(work=lambda Z, *_: Z.size)
def output_delta(Z, O, Y, out_code, loss_code, eps, delta):
    """delta_ki = dJ/dz_ki: o_ki - y_ki for a matched pair, else f'(z_ki) dJ/do_ki, or for
    softmax sum_m dJ/do_km do_km/dz_ki = o_ki (g_ki - sum_m g_km o_km).

    Z, O, Y: (n_samples, n_out); writes delta (n_samples, n_out) in place. Parallel over k.
    """
    n_samples, n_out = O.shape
    matched = _is_matched(out_code, loss_code)
    for k in prange(n_samples):
        if matched:
            for i in range(n_out):
                delta[k, i] = O[k, i] - Y[k, i]
        else:
            loss_derivative(O[k], Y[k], loss_code, eps, delta[k])
            if out_code == SOFTMAX:
                g_dot_o = delta[k, 0] * 0
                for m in range(n_out):
                    g_dot_o += delta[k, m] * O[k, m]
                for i in range(n_out):
                    delta[k, i] = O[k, i] * (delta[k, i] - g_dot_o)
            else:
                for i in range(n_out):
                    delta[k, i] *= derivative(Z[k, i], O[k, i], out_code)


@kernel(work=lambda delta_next, W_next, *_: delta_next.shape[0] * W_next.size)
def hidden_delta(delta_next, W_next, Z, A, code, delta):
    """delta_kj = f'(z_kj) sum_i w_ij delta_next_ki (the delta rule).

    delta_next: (n_samples, n_next); W_next: (n_next, n_hidden); Z, A: (n_samples, n_hidden).
    Writes delta (n_samples, n_hidden) in place. The i-sum runs along contiguous rows of W_next.
    Parallel over samples k.
    """
    n_samples, n_hidden = delta.shape
    n_next = W_next.shape[0]
    for k in prange(n_samples):
        for j in range(n_hidden):
            delta[k, j] = 0
        for i in range(n_next):
            d_i = delta_next[k, i]
            for j in range(n_hidden):
                delta[k, j] += W_next[i, j] * d_i
        for j in range(n_hidden):
            delta[k, j] *= derivative(Z[k, j], A[k, j], code)
