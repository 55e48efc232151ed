"""Forward pass of one layer: z_i = sum_j w_ij a_j + b_i, a_i = f(z_i)."""

import numpy as np
from numba import prange

from ._jit import helper, kernel, part
from ._simd import (
    block_rows,
    down,
    lanes,
    matrix,
    outer,
    pack_transposed_strips,
    padded,
    padded_in_kernel,
    row,
    store_block,
    strip_max,
    strip_width,
    strips_per_group,
    transposed_strips,
    zeros_block,
    zeros_narrow,
)
from .activations import activate_rows
from .batchnorm import BLOCK, train_columns


@helper
def _forward_block(A_prev, V, out, k0, r0, c0, n_rows, acc):
    """z_ki = sum_j a_kj w_ij for the block's n_rows <= block_rows samples k from k0 and the
    neurons i of V, into out[r0 + k - k0, c0 + i - i0]. V[j, c] = w_(i0 + c)j (the strip of W,
    transposed). ``acc``: zeros_block(out) for strip_width neurons, or zeros_narrow(out) for
    the first vector of them."""
    for j in range(V.shape[0]):
        acc += outer(down(A_prev, k0, j), row(V, j, 0))  # z_ki += a_kj w_ij
    store_block(out, r0, c0, acc, n_rows)


@part
def _forward_strip(strip, A_prev, W, Z, scratch):
    """sum_j a_kj w_ij for every sample k and one strip of strip_width neurons i, from the strip
    of W transposed (pack_transposed_strips) and A_prev read in place. The strip past the last
    whole one is computed padded with zeros, a block of samples at a time, into a block of
    scratch, and its columns copied out; one vector wide (zeros_narrow) where that holds them
    (W1's 32x32x10 forward call, softmax included, 1.65-1.73 -> 1.39 us on 1 thread, AMD EPYC
    Zen 4)."""
    n_samples, n_out = Z.shape
    n_in = W.shape[1]
    width = strip_width(Z)
    rows = block_rows()
    i0 = strip * width
    V = matrix(scratch, strip * n_in * width, n_in, width)
    if i0 + width <= n_out:
        for k0 in range(0, n_samples, rows):
            _forward_block(A_prev, V, Z, k0, k0, i0, min(rows, n_samples - k0), zeros_block(Z))
    else:
        out = matrix(scratch, n_in * padded_in_kernel(n_out), rows, width)
        narrow = n_out - i0 <= lanes(Z)
        for k0 in range(0, n_samples, rows):
            n_rows = min(rows, n_samples - k0)
            if narrow:
                _forward_block(A_prev, V, out, k0, 0, 0, n_rows, zeros_narrow(out))
            else:
                _forward_block(A_prev, V, out, k0, 0, 0, n_rows, zeros_block(out))
            for r in range(n_rows):
                for c in range(n_out - i0):
                    Z[k0 + r, i0 + c] = out[r, c]


@part
def _forward_group(g, group, n_strips, A_prev, W, Z, scratch):
    """Strips g group .. g group + group - 1 of the layer: W's strips transposed, then their
    sums."""
    s0, s1 = g * group, min(g * group + group, n_strips)
    pack_transposed_strips(W, s0, s1, transposed_strips(W, strip_width(W), scratch))
    for strip in range(s0, s1):
        _forward_strip(strip, A_prev, W, Z, scratch)


def scratch_size(n_samples, n_in, n_out):
    """Length of the scratch buffer forward_layer needs: W's strips transposed (the last padded)
    and a block of block_rows samples of one strip of Z, whatever the number of samples."""
    return n_in * padded(n_out) + block_rows() * strip_max()


@helper
def _bias_and_activate(Z, b, has_bias, code, A):
    """z_ki += b_i, then a_k = f(z_k), for every sample k."""
    if has_bias:
        for k in range(Z.shape[0]):
            for i in range(Z.shape[1]):
                Z[k, i] += b[i]
    activate_rows(Z, 0, Z.shape[0], code, A)


@helper
def _strip_groups(Z):
    """(n_strips, strips per group, n_groups): the tasks of the forward kernels, groups of strips
    of strip_width neurons (columns of Z)."""
    width = strip_width(Z)
    n_strips = (Z.shape[1] + width - 1) // width
    group = strips_per_group(n_strips)
    return n_strips, group, (n_strips + group - 1) // group


@kernel
def forward_layer(A_prev, W, b, has_bias, code, Z, A, parallel, scratch):
    """z_ki = sum_j w_ij a_kj + b_i, then a_k = f(z_k), for every sample k.

    A_prev: (n_samples, n_in); W: (n_out, n_in); b: (n_out,) (ignored unless ``has_bias``).
    Writes Z and A, (n_samples, n_out), in place. Parallel (if ``parallel``) over strips of
    strip_width neurons i, in groups, each group's strips of W transposed by its task; then b
    and f serially. In ``scratch`` (1-D, scratch_size(n_samples, n_in, n_out) long): W's strips
    transposed, and the last strip of Z when n_out is not a whole number of strips.
    """
    n_strips, group, n_groups = _strip_groups(Z)
    if parallel is not None and parallel:
        for g in prange(n_groups):
            _forward_group(np.int64(g), group, n_strips, A_prev, W, Z, scratch)
    else:
        for g in range(n_groups):
            _forward_group(g, group, n_strips, A_prev, W, Z, scratch)
    # O(n_samples n_out) work, on one thread: a second parallel loop here and in the delta rule
    # cost a first fit about 4 s of compile, for about 1.5% of a W4 epoch (256x1024 layers).
    _bias_and_activate(Z, b, has_bias, code, A)


@part
def _normalised_group(g, group, n_strips, A_prev, W, b, has_bias, gamma, beta, eps, momentum,
                      update_running, running_mean, running_var, Z_hat, mean, inv_std, Z,
                      scratch):
    """The group's strips of z = W a, then b and batch normalisation of their neurons, while
    their columns are in this task's cache."""
    _forward_group(g, group, n_strips, A_prev, W, Z, scratch)
    i0 = g * group * strip_width(Z)
    i1 = min(i0 + group * strip_width(Z), Z.shape[1])
    for c0 in range(i0, i1, BLOCK):
        train_columns(c0, min(c0 + BLOCK, i1), Z, b, has_bias, gamma, beta, eps, momentum,
                      update_running, running_mean, running_var, Z_hat, mean, inv_std)


@kernel
def forward_normalised(A_prev, W, b, has_bias, gamma, beta, eps, momentum, update_running,
                       running_mean, running_var, Z_hat, mean, inv_std, Z, parallel, scratch):
    """z_ki = sum_j w_ij a_kj + b_i, then batch normalisation (batchnorm.batchnorm_train: z_ki <-
    gamma_i z_hat_ki + beta_i, with Z_hat, mean, inv_std and the running averages written as
    there) in the same task as each strip's sums: D1's 128x256 layers took 16-30 us a layer
    more as two kernels, the second reading Z from where the first's threads left it.

    Shapes as forward_layer and batchnorm_train. Parallel (if ``parallel``) over groups of
    strips of neurons; each neuron's statistics have one owner and sum over k in order, so the
    bits do not depend on the number of threads.
    """
    n_strips, group, n_groups = _strip_groups(Z)
    if parallel is not None and parallel:
        for g in prange(n_groups):
            _normalised_group(np.int64(g), group, n_strips, A_prev, W, b, has_bias, gamma, beta,
                              eps, momentum, update_running, running_mean, running_var, Z_hat,
                              mean, inv_std, Z, scratch)
    else:
        for g in range(n_groups):
            _normalised_group(g, group, n_strips, A_prev, W, b, has_bias, gamma, beta, eps,
                              momentum, update_running, running_mean, running_var, Z_hat, mean,
                              inv_std, Z, scratch)


# O(width) work per sample, serial like deltas.output_delta: as a parallel kernel it took
# 7.8 s of a first fit's compile (of 61), for about 2 us a layer at 128x256 on 2 threads.
@part
def add_skip_and_activate(Z, A_skip, has_skip, after_f, code, A):
    """A residual connection from an earlier layer s of the same width, whose activation is
    A_skip (if ``has_skip``; else A_skip is not read): before f, z_ki <- z_ki + a_ki(s), then
    a_k = f(z_k); or with ``after_f`` (the identity form) a_k = f(z_k) + a_k(s). Without a skip,
    a_k = f(z_k).

    Z, A_skip, A: (n_samples, width); writes Z and A in place. Serial over samples k.
    """
    if has_skip and not after_f:
        for k in range(Z.shape[0]):
            for i in range(Z.shape[1]):
                Z[k, i] += A_skip[k, i]
    activate_rows(Z, 0, Z.shape[0], code, A)
    if has_skip and after_f:
        for k in range(Z.shape[0]):
            for i in range(Z.shape[1]):
                A[k, i] += A_skip[k, i]
