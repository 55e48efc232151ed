"""Deltas delta_i = dE/dz_i: at the output layer, and by the delta rule for hidden layers."""

import numpy as np
from numba import prange

from ._jit import helper, kernel, part
from ._simd import (
    PACK_MIN_ROWS,
    block_rows,
    down,
    lanes,
    matrix,
    outer,
    pack_group,
    padded,
    padded_in_kernel,
    row,
    store_block,
    strip_max,
    strip_source,
    strip_width,
    strips_per_group,
    zeros_block,
    zeros_narrow,
)
from .activations import (
    EXP,
    IDENTITY,
    SIGMOID,
    SOFTMAX,
    times_derivative_of_z_rows,
    times_derivative_rows,
)
from .losses import CROSS_ENTROPY, LOG_LOSS, POISSON, SQUARED_ERROR, loss_derivative


@helper
def _is_matched(out_code, loss_code):
    return (
        (out_code == IDENTITY and loss_code == SQUARED_ERROR)
        or (out_code == SIGMOID and loss_code == LOG_LOSS)
        or (out_code == SOFTMAX and loss_code == CROSS_ENTROPY)
        or (out_code == EXP and loss_code == POISSON)
    )


@helper
def _output_delta_row(k, Z, O, Y, out_code, loss_code, eps, matched, delta):
    n_out = O.shape[1]
    if matched:
        for i in range(n_out):
            delta[k, i] = O[k, i] - Y[k, i]
    else:
        loss_derivative(O, Y, k, loss_code, eps, delta)
        if out_code == SOFTMAX:
            g_dot_o = delta[k, 0] * 0
            for m in range(n_out):
                g_dot_o += delta[k, m] * O[k, m]
            for i in range(n_out):
                delta[k, i] = O[k, i] * (delta[k, i] - g_dot_o)
        else:
            times_derivative_rows(Z, O, k, k + 1, out_code, delta)


# O(n_out) work per sample, serial for the reason given at losses.sample_losses.
@part
def output_delta(Z, O, Y, out_code, loss_code, eps, delta):
    """delta_ki = dJ/dz_ki: o_ki - y_ki for a matched pair, else f'(z_ki) dJ/do_ki, or for
    softmax sum_m dJ/do_km do_km/dz_ki = o_ki (g_ki - sum_m g_km o_km).

    Z, O, Y: (n_samples, n_out); writes delta (n_samples, n_out) in place. Serial over k.
    """
    matched = _is_matched(out_code, loss_code)
    for k in range(O.shape[0]):
        _output_delta_row(k, Z, O, Y, out_code, loss_code, eps, matched, delta)


@helper
def _delta_block(delta_next, V, v0, delta, k0, j0, n_rows, acc):
    """delta_kj = sum_i delta_next_ki w_ij for the block's n_rows <= block_rows samples k from
    k0 and its neurons j from j0. V[i, v0 + c] = w_i(j0 + c) (W_next, or its packed strip).
    ``acc``: zeros_block(delta) for strip_width neurons, or zeros_narrow(delta) for the first
    vector of them."""
    for i in range(V.shape[0]):
        acc += outer(down(delta_next, k0, i), row(V, i, v0))  # delta_kj += delta_next_ki w_ij
    store_block(delta, k0, j0, acc, n_rows)


@part
def _delta_strip(strip, first, delta_next, W_next, delta, scratch):
    """sum_i delta_next_ki w_ij for every sample k and one strip of strip_width neurons j. The
    strip past the last whole one is computed padded with zeros, one vector wide where one
    vector holds its columns (zeros_narrow), into its own slice of scratch, and its columns
    copied out (one scalar sum per column read W_next down its columns: at 128x100x100 the 4
    such columns took as long as the 6 strips). Strips from ``first`` on are read packed (the
    last, if not whole, always is)."""
    n_samples, n_hidden = delta.shape
    n_next = W_next.shape[0]
    width = strip_width(delta)
    rows = block_rows()
    j0 = strip * width
    V, v0 = strip_source(W_next, strip, width, first, scratch)
    whole = j0 + width <= n_hidden
    out, j_out = delta, j0
    if not whole:
        out, j_out = matrix(scratch, n_next * padded_in_kernel(n_hidden), n_samples, width), 0
    narrow = n_hidden - j0 <= lanes(delta)  # the last strip, one vector wide
    for k0 in range(0, n_samples, rows):
        if narrow:
            _delta_block(delta_next, V, v0, out, k0, j_out, min(rows, n_samples - k0),
                         zeros_narrow(delta))
        else:
            _delta_block(delta_next, V, v0, out, k0, j_out, min(rows, n_samples - k0),
                         zeros_block(delta))
    if not whole:
        for k in range(n_samples):
            for c in range(n_hidden - j0):
                delta[k, j0 + c] = out[k, c]


@part
def _delta_group(g, group, first, n_strips, delta_next, W_next, delta, scratch):
    """Strips g group .. g group + group - 1 of the delta rule, those of W_next from ``first`` on
    packed first, together."""
    s0, s1 = g * group, min(g * group + group, n_strips)
    pack_group(W_next, s0, s1, first, scratch)
    for strip in range(s0, s1):
        _delta_strip(strip, first, delta_next, W_next, delta, scratch)


def scratch_size(n_samples, n_hidden, n_next):
    """Length of the scratch buffer hidden_delta needs: the packed strips of W_next (the last
    padded) and one strip of delta."""
    return n_next * padded(n_hidden) + n_samples * strip_max()


@kernel
def hidden_delta(delta_next, W_next, Z, A, code, delta, parallel, scratch):
    """delta_kj = f'(z_kj) sum_i w_ij delta_next_ki (the delta rule).

    delta_next: (n_samples, n_next); W_next: (n_next, n_hidden); Z, A: (n_samples, n_hidden).
    Writes delta (n_samples, n_hidden) in place. Parallel over strips of strip_width neurons j,
    then f' serially. In ``scratch`` (1-D, scratch_size(n_samples, n_hidden, n_next) long):
    from PACK_MIN_ROWS samples up each strip of W_next, packed, and the last, when n_hidden is
    not a whole number of strips, always. delta_next is read in place, down its columns.
    """
    width = strip_width(delta)
    n_samples, n_hidden = delta.shape
    n_strips = (n_hidden + width - 1) // width
    # From PACK_MIN_ROWS samples up each group of strips of W_next is packed by its task, else
    # only the ragged last strip.
    first = 0 if n_samples >= PACK_MIN_ROWS else n_hidden // width
    group = strips_per_group(n_strips) if first == 0 else 1
    n_groups = (n_strips + group - 1) // group
    if parallel is not None and parallel:
        for g in prange(n_groups):
            _delta_group(np.int64(g), group, first, n_strips, delta_next, W_next, delta, scratch)
    else:
        for g in range(n_groups):
            _delta_group(g, group, first, n_strips, delta_next, W_next, delta, scratch)
    # serially, as forward_layer's activation
    times_derivative_rows(Z, A, np.int64(0), delta.shape[0], code, delta)


# O(width) work per sample, serial like output_delta (see forward.add_skip_and_activate).
@part
def residual_delta(delta, delta_skip, Z, A, code):
    """delta_kj <- f'(z_kj) (delta_kj + delta_skip_kj): the delta rule of a layer whose
    activation also feeds a residual connection. ``delta`` holds sum_i w_ij delta_next_ki (the
    delta rule with the identity) and ``delta_skip`` dE/d(what the skip joins) at its target
    layer t: delta(t) = dE/dz(t) when it joins before f, dE/da(t) in the identity form.

    All (n_samples, width); writes delta in place. Serial over samples k.
    """
    for k in range(delta.shape[0]):
        for j in range(delta.shape[1]):
            delta[k, j] += delta_skip[k, j]
    times_derivative_rows(Z, A, np.int64(0), delta.shape[0], code, delta)


# O(width) work per sample, serial like residual_delta.
@part
def split_skip_delta(delta, dE_da, Z, code):
    """For a layer whose activation is a = a(s) + f(z) (the identity form of a residual
    connection): ``delta`` holds dE/da on entry; dE_da keeps a copy (dE/da(s) takes it, with no
    f' on that path) and delta becomes dE/dz = f'(z) dE/da, with f(z) computed again from z.

    All (n_samples, width); writes delta and dE_da in place. Serial over samples k.
    """
    for k in range(delta.shape[0]):
        for j in range(delta.shape[1]):
            dE_da[k, j] = delta[k, j]
    times_derivative_of_z_rows(Z, np.int64(0), delta.shape[0], code, delta)


# O(width) work per sample, serial like output_delta.
@part
def weigh_samples(delta, sample_weight, order, start, factor):
    """delta_k <- factor w_k delta_k for the batch's samples k, the rows start, start + 1, ...
    of ``order`` (w: the data set's sample weights), with factor n / sum_k w_k over the batch:
    the gradients, means over the batch, become sum_k w_k dJ_k / sum_k w_k.

    delta: (n_samples, n_out), written in place. Serial over samples k.
    """
    for r in range(delta.shape[0]):
        scale = delta.dtype.type(factor * sample_weight[order[start + r]])
        for i in range(delta.shape[1]):
            delta[r, i] *= scale
