"""Gradients of E: dE/dw_ij = mean_k delta_ki a_kj (+ lambda w_ij with l2) and
dE/db_i = mean_k delta_ki."""

from numba import prange

from ._jit import helper, kernel, part
from .forward import _forward_tile, n_tiles, neuron_tile


# A tile is 16 neurons: its 16 rows of dW stay in L2 while each block of 4 rows of A_prev is
# reused from L1 across the tile's 4 neuron blocks (A_prev is read once per tile, not once per
# 4 neurons: single-thread float32 at 256x1024x1024 went from 34 GFLOP/s untiled).
GRADIENT_TILE = 16


@helper
def _gradient_tile(tile, delta, A_prev, W, l2, mask, has_mask, dW, db, has_bias):
    """dW and db for one tile of neurons."""
    n_samples = delta.shape[0]
    n_out, n_in = dW.shape
    k_blocks_end = n_samples - n_samples % 4
    i_start = tile * GRADIENT_TILE
    i_end = min(i_start + GRADIENT_TILE, n_out)
    i_blocks_end = i_start + (i_end - i_start) // 4 * 4
    for i in range(i_start, i_end):
        for j in range(n_in):
            dW[i, j] = 0
    for k0 in range(0, k_blocks_end, 4):
        for i0 in range(i_start, i_blocks_end, 4):
            # 4 neurons x 4 samples per pass along the rows a_k.: each a_kj loaded once for 4
            # multiply-adds, each dW_ij loaded and stored once for 4. Single-thread float32:
            # 78 GFLOP/s at 32x128x784 (NumPy 74).
            d00, d01, d02, d03 = delta[k0, i0], delta[k0 + 1, i0], delta[k0 + 2, i0], delta[k0 + 3, i0]
            d10, d11, d12, d13 = delta[k0, i0 + 1], delta[k0 + 1, i0 + 1], delta[k0 + 2, i0 + 1], delta[k0 + 3, i0 + 1]
            d20, d21, d22, d23 = delta[k0, i0 + 2], delta[k0 + 1, i0 + 2], delta[k0 + 2, i0 + 2], delta[k0 + 3, i0 + 2]
            d30, d31, d32, d33 = delta[k0, i0 + 3], delta[k0 + 1, i0 + 3], delta[k0 + 2, i0 + 3], delta[k0 + 3, i0 + 3]
            for j in range(n_in):
                a0, a1, a2, a3 = A_prev[k0, j], A_prev[k0 + 1, j], A_prev[k0 + 2, j], A_prev[k0 + 3, j]
                dW[i0, j] += d00 * a0 + d01 * a1 + d02 * a2 + d03 * a3
                dW[i0 + 1, j] += d10 * a0 + d11 * a1 + d12 * a2 + d13 * a3
                dW[i0 + 2, j] += d20 * a0 + d21 * a1 + d22 * a2 + d23 * a3
                dW[i0 + 3, j] += d30 * a0 + d31 * a1 + d32 * a2 + d33 * a3
        for i in range(i_blocks_end, i_end):
            for k in range(k0, k0 + 4):
                d_i = delta[k, i]
                for j in range(n_in):
                    dW[i, j] += d_i * A_prev[k, j]
    for i in range(i_start, i_end):
        for k in range(k_blocks_end, n_samples):
            d_i = delta[k, i]
            for j in range(n_in):
                dW[i, j] += d_i * A_prev[k, j]
        db_i = dW.dtype.type(0)
        for k in range(n_samples):
            db_i += delta[k, i]
        for j in range(n_in):
            if has_mask and mask[i, j] == 0:
                dW[i, j] = 0
            else:
                dW[i, j] = dW[i, j] / n_samples + l2 * W[i, j]
        if has_bias:
            db[i] = db_i / n_samples


# From this many samples and weights up, dW = delta^T A_prev is computed as the forward pass's
# product of the transposes (12 dot products over k held in registers) instead of 4x4 axpy
# updates of dW rows in memory. The axpy updates pass over dW once per 4 samples, which is fast
# while dW stays in L2 (512 KiB here) and slow once it does not. Float32 GFLOP/s, 2 threads,
# axpy vs transposed: 88 vs 118 at 256x1024x1024 and 88 vs 105 at 128x512x512, but 106 vs 81
# at 128x256x256, 96 vs 72 at 128x784x128 and 71 vs 37 at 128x128x64; and 66 vs 31 at
# 32x784x128, where the k-sums are too short.
TRANSPOSED_MIN_SAMPLES = 128
TRANSPOSED_MIN_WEIGHTS = 1 << 17
TRANSPOSE_BLOCK = 32


def transposed_path(n_samples, n_in, n_out):
    """Whether weight_gradients takes the transposed path for these sizes."""
    return n_samples >= TRANSPOSED_MIN_SAMPLES and n_in * n_out >= TRANSPOSED_MIN_WEIGHTS


# The same function compiled for the kernel; scratch_size calls the plain one, which compiles
# nothing.
_transposed = helper(transposed_path)


def scratch_size(n_samples, n_in, n_out):
    """Length of the scratch buffer weight_gradients needs for one call of these sizes."""
    return n_samples * (n_in + n_out) if transposed_path(n_samples, n_in, n_out) else 0


@part
def _transpose_block(block, src, dst):
    """dst[j, k] = src[k, j] over one block of 32 rows of dst."""
    n, m = src.shape
    j0 = block * TRANSPOSE_BLOCK
    j1 = min(j0 + TRANSPOSE_BLOCK, m)
    for k0 in range(0, n, TRANSPOSE_BLOCK):
        for k in range(k0, min(k0 + TRANSPOSE_BLOCK, n)):
            for j in range(j0, j1):
                dst[j, k] = src[k, j]


@helper
def _scale_row(i, delta_T, W, l2, mask, has_mask, dW, db, has_bias):
    """dW_i. = dW_i. / n + l2 w_i. (0 where masked) and db_i = (1/n) sum_k delta_ki."""
    n_samples = delta_T.shape[1]
    db_i = dW.dtype.type(0)
    for k in range(n_samples):
        db_i += delta_T[i, k]
    for j in range(dW.shape[1]):
        if has_mask and mask[i, j] == 0:
            dW[i, j] = 0
        else:
            dW[i, j] = dW[i, j] / n_samples + l2 * W[i, j]
    if has_bias:
        db[i] = db_i / n_samples


@helper
def _transposed_gradients(delta, A_prev, W, l2, mask, has_mask, dW, db, has_bias, scratch):
    """dW_ij = sum_k delta^T_ik a^T_jk: the forward tiles on delta^T (rows i) and A_prev^T,
    both laid out in ``scratch``. Always on the thread pool: a layer this large (at least
    TRANSPOSED_MIN_SAMPLES x TRANSPOSED_MIN_WEIGHTS = 2^24 multiply-adds) is past the cut-off of
    use_threads, so a serial copy of these loops would be compiled and never run."""
    n_samples, n_out = delta.shape
    n_in = A_prev.shape[1]
    delta_T = scratch[:n_out * n_samples].reshape((n_out, n_samples))
    A_T = scratch[n_out * n_samples:(n_out + n_in) * n_samples].reshape((n_in, n_samples))
    for block in prange((n_out + TRANSPOSE_BLOCK - 1) // TRANSPOSE_BLOCK):
        _transpose_block(block, delta, delta_T)
    for block in prange((n_in + TRANSPOSE_BLOCK - 1) // TRANSPOSE_BLOCK):
        _transpose_block(block, A_prev, A_T)
    width = neuron_tile(n_out, n_samples, n_in)  # rows i, sums over k, columns j
    for tile in prange(n_tiles(n_out, n_in, width)):
        _forward_tile(tile, delta_T, A_T, dW, width)
    for i in prange(n_out):
        _scale_row(i, delta_T, W, l2, mask, has_mask, dW, db, has_bias)


@kernel
def weight_gradients(delta, A_prev, W, l2, mask, has_mask, dW, db, has_bias, parallel, scratch):
    """dW_ij = (1/n) sum_k delta_ki a_kj + l2 w_ij, 0 where mask_ij == 0; db_i = (1/n) sum_k delta_ki.

    delta: (n, n_out); A_prev: (n, n_in); W, mask: (n_out, n_in) (mask read only if ``has_mask``).
    Writes dW (n_out, n_in) and, if ``has_bias``, db (n_out,) in place. Parallel over tiles of
    neurons i, so each gradient has one owner and its k-sum order does not depend on the thread
    count. Biases are not penalised. From 128 samples and 2^17 weights up it works on transposed
    copies of delta and A_prev, in ``scratch`` (1-D, at least scratch_size(n, n_in, n_out) long;
    unused below), and always on the thread pool, whatever ``parallel`` says.
    """
    if _transposed(delta.shape[0], A_prev.shape[1], delta.shape[1]):
        _transposed_gradients(delta, A_prev, W, l2, mask, has_mask, dW, db, has_bias, scratch)
        return
    n_gradient_tiles = (dW.shape[0] + GRADIENT_TILE - 1) // GRADIENT_TILE
    if parallel:
        for tile in prange(n_gradient_tiles):
            _gradient_tile(tile, delta, A_prev, W, l2, mask, has_mask, dW, db, has_bias)
    else:
        for tile in range(n_gradient_tiles):
            _gradient_tile(tile, delta, A_prev, W, l2, mask, has_mask, dW, db, has_bias)
