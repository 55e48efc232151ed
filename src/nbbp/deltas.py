"""Deltas delta_i = dE/dz_i: at the output layer, and by the delta rule for hidden layers."""

from numba import prange

from ._jit import helper, jit, kernel
from .activations import IDENTITY, SIGMOID, SOFTMAX, derivative
from .losses import CROSS_ENTROPY, LOG_LOSS, SQUARED_ERROR, loss_derivative


@helper
def _is_matched(out_code, loss_code):
    return (
        (out_code == IDENTITY and loss_code == SQUARED_ERROR)
        or (out_code == SIGMOID and loss_code == LOG_LOSS)
        or (out_code == SOFTMAX and loss_code == CROSS_ENTROPY)
    )


@helper
def _output_delta_row(k, Z, O, Y, out_code, loss_code, eps, matched, delta):
    n_out = O.shape[1]
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


# O(n_out) work per sample, serial for the reason given at losses.sample_losses.
@jit()
def output_delta(Z, O, Y, out_code, loss_code, eps, delta):
    """delta_ki = dJ/dz_ki: o_ki - y_ki for a matched pair, else f'(z_ki) dJ/do_ki, or for
    softmax sum_m dJ/do_km do_km/dz_ki = o_ki (g_ki - sum_m g_km o_km).

    Z, O, Y: (n_samples, n_out); writes delta (n_samples, n_out) in place. Serial over k.
    """
    matched = _is_matched(out_code, loss_code)
    for k in range(O.shape[0]):
        _output_delta_row(k, Z, O, Y, out_code, loss_code, eps, matched, delta)


# A tile is 16 samples: its 16 rows of delta stay in L2 while each group of 4 rows of W_next
# is reused from L1 across the tile's 4 sample blocks (W_next is read once per tile, not once
# per 4 samples).
SAMPLE_TILE = 16


@helper
def _delta_tile(tile, delta_next, W_next, Z, A, code, delta):
    """The delta rule over one tile of samples."""
    n_samples, n_hidden = delta.shape
    n_next = W_next.shape[0]
    i_blocks_end = n_next - n_next % 4
    k_start = tile * SAMPLE_TILE
    k_end = min(k_start + SAMPLE_TILE, n_samples)
    k_blocks_end = k_start + (k_end - k_start) // 4 * 4
    for k in range(k_start, k_end):
        for j in range(n_hidden):
            delta[k, j] = 0
    for i0 in range(0, i_blocks_end, 4):
        for k0 in range(k_start, k_blocks_end, 4):
            # 4 samples x 4 next-layer neurons per pass along the rows w_i.: each w_ij loaded
            # once for 4 multiply-adds, each delta_kj loaded and stored once for 4.
            # Single-thread float32: 66 GFLOP/s at 256x1024x1024 (NumPy 94), 62 at 128x64x128.
            d00, d01, d02, d03 = delta_next[k0, i0], delta_next[k0, i0 + 1], delta_next[k0, i0 + 2], delta_next[k0, i0 + 3]
            d10, d11, d12, d13 = delta_next[k0 + 1, i0], delta_next[k0 + 1, i0 + 1], delta_next[k0 + 1, i0 + 2], delta_next[k0 + 1, i0 + 3]
            d20, d21, d22, d23 = delta_next[k0 + 2, i0], delta_next[k0 + 2, i0 + 1], delta_next[k0 + 2, i0 + 2], delta_next[k0 + 2, i0 + 3]
            d30, d31, d32, d33 = delta_next[k0 + 3, i0], delta_next[k0 + 3, i0 + 1], delta_next[k0 + 3, i0 + 2], delta_next[k0 + 3, i0 + 3]
            for j in range(n_hidden):
                w0, w1, w2, w3 = W_next[i0, j], W_next[i0 + 1, j], W_next[i0 + 2, j], W_next[i0 + 3, j]
                delta[k0, j] += w0 * d00 + w1 * d01 + w2 * d02 + w3 * d03
                delta[k0 + 1, j] += w0 * d10 + w1 * d11 + w2 * d12 + w3 * d13
                delta[k0 + 2, j] += w0 * d20 + w1 * d21 + w2 * d22 + w3 * d23
                delta[k0 + 3, j] += w0 * d30 + w1 * d31 + w2 * d32 + w3 * d33
        for k in range(k_blocks_end, k_end):
            for i in range(i0, i0 + 4):
                d_i = delta_next[k, i]
                for j in range(n_hidden):
                    delta[k, j] += W_next[i, j] * d_i
    for k in range(k_start, k_end):
        for i in range(i_blocks_end, n_next):
            d_i = delta_next[k, i]
            for j in range(n_hidden):
                delta[k, j] += W_next[i, j] * d_i
        for j in range(n_hidden):
            delta[k, j] *= derivative(Z[k, j], A[k, j], code)


@kernel
def hidden_delta(delta_next, W_next, Z, A, code, delta, parallel):
    """delta_kj = f'(z_kj) sum_i w_ij delta_next_ki (the delta rule).

    delta_next: (n_samples, n_next); W_next: (n_next, n_hidden); Z, A: (n_samples, n_hidden).
    Writes delta (n_samples, n_hidden) in place. The i-sum runs along contiguous rows of W_next.
    Parallel over tiles of 16 samples.
    """
    n_tiles = (delta.shape[0] + SAMPLE_TILE - 1) // SAMPLE_TILE
    if parallel:
        for tile in prange(n_tiles):
            _delta_tile(tile, delta_next, W_next, Z, A, code, delta)
    else:
        for tile in range(n_tiles):
            _delta_tile(tile, delta_next, W_next, Z, A, code, delta)


@helper
def _residual_delta_row(k, delta, delta_skip, Z, A, code):
    d, d_skip, z, a = delta[k], delta_skip[k], Z[k], A[k]
    for j in range(d.shape[0]):
        d[j] = (d[j] + d_skip[j]) * derivative(z[j], a[j], code)


# O(width) work per sample, serial like output_delta (see forward.add_skip_and_activate).
@jit()
def residual_delta(delta, delta_skip, Z, A, code):
    """delta_kj <- f'(z_kj) (delta_kj + delta_skip_kj): the delta rule of a layer whose
    activation also feeds a residual connection. ``delta`` holds sum_i w_ij delta_next_ki (the
    delta rule with the identity) and ``delta_skip`` the delta of the skip's target layer.

    All (n_samples, width); writes delta in place. Serial over samples k.
    """
    for k in range(delta.shape[0]):
        _residual_delta_row(k, delta, delta_skip, Z, A, code)
