"""Gradients of E: dE/dw_ij = mean_k delta_ki a_kj (+ lambda w_ij with l2) and
dE/db_i = mean_k delta_ki."""

import numpy as np
from numba import prange

from ._jit import helper, kernel, part, use_threads_elementwise
from ._simd import (
    PACK_MIN_ROWS,
    across,
    add,
    block_rows,
    block_squares,
    lanes,
    matrix,
    outer,
    pack_column_panel,
    pack_group,
    padded,
    padded_in_kernel,
    row,
    store_block,
    strip_max,
    strip_source,
    strip_width,
    strips_per_group,
    total,
    zeros,
    zeros_block,
    zeros_narrow,
)
from .deltas import scratch_size as delta_scratch_size
from .forward import scratch_size as forward_scratch_size


@helper
def _gradient_block(D, d0, c0, V, v0, dW, i0, j0, n_rows, acc):
    """dW_ij = (1/n) sum_k delta_ki a_kj for the block's n_rows <= block_rows neurons i from i0
    and its inputs j from j0. D[d0 + k, c0 + r] = delta_k(i0 + r) (delta itself, or the block's
    panel of it); V[k, v0 + c] = a_k(j0 + c) (A_prev, or its packed strip). ``acc``:
    zeros_block(dW) for strip_width inputs, or zeros_narrow(dW) for the first vector of them.
    Returns the squares of the dW_ij it stores, summed lane by lane (a Vector)."""
    for k in range(V.shape[0]):
        acc += outer(across(D, d0 + k, c0), row(V, k, v0))  # dW_ij += delta_ki a_kj
    acc = acc * (dW.dtype.type(1) / V.shape[0])
    store_block(dW, i0, j0, acc, n_rows)
    return block_squares(acc, n_rows)


@helper
def _delta_panels(scratch, n_samples, n_in, n_out):
    """Delta's packed panels in scratch, after the strips of A_prev: rows q n .. q n + n - 1
    hold delta's columns q block_rows .. (one view, not one per block: each view of an array
    costs a pair of atomic reference counts)."""
    rows = block_rows()
    return matrix(scratch, n_samples * padded_in_kernel(n_in),
                  (n_out + rows - 1) // rows * n_samples, rows)


@helper
def _delta_source(delta, scratch, n_in):
    """What weight_gradients reads delta from: its panels in scratch (_delta_panels) where
    _packs_delta, else delta itself. (One assignment: a view assigned to a variable that already
    held delta was, in the parallel loop that packs the panels, delta again, and the panels were
    written over delta's rows and past them.)"""
    if _packs_delta(delta.shape[0]):
        return _delta_panels(scratch, delta.shape[0], n_in, delta.shape[1])
    return delta


@helper
def _packs_delta(n_samples):
    """Whether weight_gradients reads delta from panels (else in place)."""
    return n_samples >= PACK_MIN_ROWS


@helper
def _dw_strip_start(n_samples, n_in, n_out):
    """Where the padded strip of dW starts in scratch: after the strips of A_prev and delta's
    panels (room for them is kept whether or not delta is packed)."""
    rows = block_rows()
    return n_samples * (padded_in_kernel(n_in) + rows * ((n_out + rows - 1) // rows))


@helper
def _bias_gradients(delta, db):
    """db_i = (1/n) sum_k delta_ki, summed in the order of k."""
    n_samples, n_out = delta.shape
    for i in range(n_out):
        db[i] = 0
    for k in range(n_samples):
        for i in range(n_out):
            db[i] += delta[k, i]
    for i in range(n_out):
        db[i] /= n_samples


@part
def _gradient_strip(strip, first, delta, A_prev, W, l2, mask, has_mask, dW, scratch, P, sums):
    """dW_ij for every neuron i and one strip of strip_width inputs j, and sums[strip], the
    sum of their squares. The strip past the last whole one is computed padded with zeros, one
    vector wide where one vector holds its columns (zeros_narrow), into its own slice of
    scratch after delta's panels, and its columns copied out (one scalar
    sum per column, reading delta down its columns, made 128x100x100 take 50 us against 29 at
    128x96x96). Strips from ``first`` on are read packed; delta from its panels P where P is
    not delta itself (_packs_delta)."""
    n_samples = delta.shape[0]
    n_out, n_in = dW.shape
    width = strip_width(dW)
    rows = block_rows()
    j0 = strip * width
    j1 = min(j0 + width, n_in)
    V, v0 = strip_source(A_prev, strip, width, first, scratch)
    out, j_out = dW, j0
    if j1 - j0 < width:
        out, j_out = matrix(scratch, _dw_strip_start(n_samples, n_in, n_out), n_out, width), 0
    squares = zeros(dW)  # the padding's columns are zeros: they add nothing
    narrow = j1 - j0 <= lanes(dW)  # the last strip, one vector wide
    for i0 in range(0, n_out, rows):
        d0, c0 = (i0 // rows * n_samples, 0) if _packs_delta(n_samples) else (0, i0)
        n_rows = min(rows, n_out - i0)
        if narrow:
            block = _gradient_block(P, d0, c0, V, v0, out, i0, j_out, n_rows, zeros_narrow(dW))
        else:
            block = _gradient_block(P, d0, c0, V, v0, out, i0, j_out, n_rows, zeros_block(dW))
        squares = add(squares, block)
    sums[strip] = total(squares)
    if j1 - j0 < width:
        for i in range(n_out):
            for j in range(j0, j1):
                dW[i, j] = out[i, j - j0]
    # The penalty and the mask in a pass over the strip, in cache, summing the squares again:
    # reading w_ij in every block's stores cost W's whole size in loads even at l2 = 0, and an
    # l2 branch there made Numba count references around each store.
    if l2 != 0 or has_mask:
        sums[strip] = penalise_columns(dW, W, l2, mask, has_mask, j0, j1)


@helper
def penalise_columns(dW, W, l2, mask, has_mask, j0, j1):
    """dW_ij <- dW_ij + l2 w_ij, 0 where mask_ij == 0 (mask read only if ``has_mask``), for the
    columns j0 <= j < j1; returns the sum of the squares of the dW_ij written."""
    sum_sq = 0.0
    for i in range(dW.shape[0]):
        for j in range(j0, j1):
            g = dW[i, j] + l2 * W[i, j]
            if has_mask and mask[i, j] == 0:
                g = dW.dtype.type(0)
            dW[i, j] = g
            sum_sq += g * g
    return sum_sq


@part
def _gradient_group(g, group, first, n_strips, delta, A_prev, W, l2, mask, has_mask, dW, scratch,
                    P, sums):
    """Strips g group .. g group + group - 1 of dW, those of A_prev from ``first`` on packed
    first, together."""
    s0, s1 = g * group, min(g * group + group, n_strips)
    pack_group(A_prev, s0, s1, first, scratch)
    for strip in range(s0, s1):
        _gradient_strip(strip, first, delta, A_prev, W, l2, mask, has_mask, dW, scratch, P, sums)


@helper
def _strip_sums(scratch, n_samples, n_in, n_out, n_strips):
    """Where weight_gradients keeps each strip's sum of squares: in scratch, after the strips of
    A_prev, delta's panels and the padded strip of dW."""
    start = _dw_strip_start(n_samples, n_in, n_out) + n_out * strip_max()
    return matrix(scratch, start, 1, n_strips)[0]  # checked: IndexError past scratch's end


def scratch_size(n_samples, n_in, n_out):
    """Length of the scratch buffer that a layer of these sizes needs for each of its three
    kernels: weight_gradients (the packed strips of A_prev, the last padded, delta in panels of
    block_rows columns, one strip of dW and a sum per strip, strip_max() float32 columns wide,
    half as many float64), the delta rule back through it (deltas.hidden_delta with W_next = W)
    and its forward_layer."""
    rows = block_rows()
    narrowest = strip_width(np.empty(0, np.float64))  # the most strips, so the most sums
    gradients = (n_samples * (padded(n_in) + rows * ((n_out + rows - 1) // rows))
                 + n_out * strip_max() + (n_in + narrowest - 1) // narrowest)
    return max(gradients, delta_scratch_size(n_samples, n_in, n_out),
               forward_scratch_size(n_samples, n_in, n_out))


@kernel
def weight_gradients(delta, A_prev, W, l2, mask, has_mask, dW, db, has_bias, parallel, scratch):
    """dW_ij = (1/n) sum_k delta_ki a_kj + l2 w_ij, 0 where mask_ij == 0;
    db_i = (1/n) sum_k delta_ki.
    Returns sum_ij dW_ij^2 (for the history's ||dE/dW||), summed per strip as dW is stored, then
    over the strips in their order: the same sum on any number of threads.

    delta: (n, n_out); A_prev: (n, n_in); W, mask: (n_out, n_in) (mask read only if ``has_mask``).
    Writes dW (n_out, n_in) and, if ``has_bias``, db (n_out,) in place. Parallel over strips
    of strip_width inputs j, in groups; db serially. In ``scratch`` (1-D, scratch_size(n, n_in,
    n_out) long): from PACK_MIN_ROWS samples up, delta in panels of block_rows columns (fewer
    samples read it in place, along its rows); packed strips of A_prev from PACK_MIN_ROWS neurons
    up (and the last, when n_in is not a whole number of strips, always); a sum of squares per
    strip. Biases are not penalised.
    """
    n_samples, n_out = delta.shape
    width = strip_width(dW)
    rows = block_rows()
    n_strips = (dW.shape[1] + width - 1) // width
    sums = _strip_sums(scratch, n_samples, dW.shape[1], n_out, n_strips)
    # A block reads delta_ki for its block_rows neurons i along each sample's row k: in place
    # that is one cache line per sample, rows n_out apart, which a block of many samples evicts
    # before the next block reuses it. From PACK_MIN_ROWS samples up delta is first copied into
    # panels of block_rows columns (256x1024x1024: 215 GFLOP/s in place, 314 from panels);
    # fewer samples read it in place (32x784x128: 169 from panels, 249 in place).
    P = _delta_source(delta, scratch, dW.shape[1])
    if _packs_delta(n_samples):
        n_panels = (n_out + rows - 1) // rows
        # on the thread pool only when large (W2's 32x128 is not: a parallel loop there is one
        # more wake-up of the pool a batch)
        if parallel is not None and parallel and use_threads_elementwise(n_samples * n_out):
            for q in prange(n_panels):
                pack_column_panel(delta, q * rows, q * n_samples, P)
        else:
            for q in range(n_panels):
                pack_column_panel(delta, q * rows, q * n_samples, P)
    # O(n n_out) adds, vectorised along the row: serially (as a last task of the strips' parallel
    # loop it left one thread a group of strips more than the other at 256x1024x1024)
    if has_bias:
        _bias_gradients(delta, db)
    # From PACK_MIN_ROWS neurons up each group of strips of A_prev is packed by its task, else
    # only the ragged last strip.
    first = 0 if n_out >= PACK_MIN_ROWS else dW.shape[1] // width
    group = strips_per_group(n_strips) if first == 0 else 1
    n_groups = (n_strips + group - 1) // group
    if parallel is not None and parallel:
        for g in prange(n_groups):
            _gradient_group(np.int64(g), group, first, n_strips, delta, A_prev, W, l2, mask,
                            has_mask, dW, scratch, P, sums)
    else:
        for g in range(n_groups):
            _gradient_group(g, group, first, n_strips, delta, A_prev, W, l2, mask, has_mask, dW,
                            scratch, P, sums)
    sum_sq = 0.0
    for strip in range(n_strips):
        sum_sq += sums[strip]
    return sum_sq
