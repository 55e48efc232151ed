"""Gradients of E: dE/dw_ij = mean_k delta_ki a_kj (+ lambda w_ij with l2) and
dE/db_i = mean_k delta_ki."""

from numba import prange

from ._jit import PARALLEL_MIN_ELEMENTS, helper, kernel, part
from ._simd import (PACK_MIN_ROWS, STRIP_MAX, add, fma, lanes, load, matrix, pack_group, padded,
                    padded_in_kernel, scale, square_add, store, strip_source, strips_per_group,
                    total, zeros)
from .deltas import scratch_size as delta_scratch_size


@helper
def _gradient_block(P, p0, V, v0, dW, i0, n_rows, j0, squares):
    """dW_ij = (1/n) sum_k delta_ki a_kj, for the n_rows <= 4 neurons from i0 and the 2 vectors of
    inputs from j0. P[p0:p0 + n] is delta's panel of columns i0.. (4 wide, so the 4 delta_ki of
    a step are at fixed offsets from one pointer), V[k, v0:] a_kj from j0 on (A_prev, or its
    packed strip). Reading delta in place, at 4 column offsets of a runtime stride, LLVM kept
    16 addresses of its 4x-unrolled loop on the stack: W2's first layer, 32x784x128 float32 on 2
    threads, 67 -> 54 us packed (NumPy 51); 256x1024x1024 120-140 -> 167-173 GFLOP/s.

    8 vector sums stay in registers over the whole k-sum: each step loads 2 vectors of row k of
    A_prev once, for 4 neurons (past n_rows, the panel repeats the last column, and the store
    writes the last row's sums again). Returns the vector ``squares`` plus the squares of the
    n_rows rows' dW_ij, lane by lane.
    """
    n_samples = V.shape[0]
    width = lanes(dW)
    inv_n = dW.dtype.type(1) / n_samples
    s00 = s01 = s10 = s11 = s20 = s21 = s30 = s31 = zeros(dW)
    for k in range(n_samples):
        a0, a1 = load(V, k, v0), load(V, k, v0 + width)
        d = P[p0 + k, 0]
        s00, s01 = fma(s00, d, a0), fma(s01, d, a1)
        d = P[p0 + k, 1]
        s10, s11 = fma(s10, d, a0), fma(s11, d, a1)
        d = P[p0 + k, 2]
        s20, s21 = fma(s20, d, a0), fma(s21, d, a1)
        d = P[p0 + k, 3]
        s30, s31 = fma(s30, d, a0), fma(s31, d, a1)
    # each row's squares apart, then added in a tree: one add a block on the chain through
    # ``squares`` (8 dependent square_adds a block made W2's first layer 10% slower)
    q0 = _store_row(dW, i0, j0, s00, s01, inv_n, True)
    q1 = _store_row(dW, i0 + min(1, n_rows - 1), j0, s10, s11, inv_n, n_rows > 1)
    q2 = _store_row(dW, i0 + min(2, n_rows - 1), j0, s20, s21, inv_n, n_rows > 2)
    q3 = _store_row(dW, i0 + min(3, n_rows - 1), j0, s30, s31, inv_n, n_rows > 3)
    return add(squares, add(add(q0, q1), add(q2, q3)))


@helper
def _store_row(dW, i, j0, s0, s1, inv_n, counted):
    """dW[i, j0:] = inv_n (s0, s1); returns their squares, lane by lane, if ``counted``, else
    zeros."""
    g0, g1 = scale(s0, inv_n), scale(s1, inv_n)
    store(dW, i, j0, g0)
    store(dW, i, j0 + lanes(dW), g1)
    if counted:
        return square_add(square_add(zeros(dW), g0), g1)
    return zeros(dW)


@helper
def _delta_panels(scratch, n_samples, n_in, n_out):
    """Delta's packed panels in scratch, after the strips of A_prev: rows p n .. p n + n - 1
    hold delta's columns 4p .. 4p + 3 (one view, not one per block: each view of an array
    costs a pair of atomic reference counts)."""
    return matrix(scratch, n_samples * padded_in_kernel(n_in), (n_out + 3) // 4 * n_samples, 4)


@part
def _pack_panel(delta, panel, P):
    """Rows panel n .. panel n + n - 1 of P: delta's columns 4 panel .. 4 panel + 3, repeating
    its last column past its end."""
    n_samples, n_out = delta.shape
    i0, p0 = 4 * panel, panel * n_samples
    for k in range(n_samples):
        for c in range(4):
            P[p0 + k, c] = delta[k, min(i0 + c, n_out - 1)]


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
    """dW_ij for every neuron i and one strip of 2 vectors of inputs j, and sums[strip], the
    sum of their squares. The strip past the last whole one is computed padded with zeros,
    into its own slice of scratch after delta's panels, and its columns copied out (one scalar
    sum per column, reading delta down its columns, made 128x100x100 take 50 us against 29 at
    128x96x96). Strips from ``first`` on are read packed. P: _delta_panels."""
    n_samples = delta.shape[0]
    n_out, n_in = dW.shape
    width = 2 * lanes(dW)
    j0 = strip * width
    j1 = min(j0 + width, n_in)
    V, v0 = strip_source(A_prev, strip, width, first, scratch)
    out, j_out = dW, j0
    if j1 - j0 < width:
        out, j_out = matrix(scratch, n_samples * padded_in_kernel(n_in) + P.size, n_out, width), 0
    squares = zeros(dW)  # the padding's columns are zeros: they add nothing
    for i0 in range(0, n_out, 4):
        squares = _gradient_block(P, i0 // 4 * n_samples, V, v0, out, i0, min(4, n_out - i0),
                                  j_out, squares)
    sums[strip] = total(squares)
    if j1 - j0 < width:
        for i in range(n_out):
            for j in range(j0, j1):
                dW[i, j] = out[i, j - j0]
    # The penalty and the mask in a pass over the strip, in cache, summing the squares again:
    # reading w_ij in every block's stores cost W's whole size in loads even at l2 = 0, and an
    # l2 branch there made Numba count references around each store.
    if l2 != 0 or has_mask:
        sum_sq = 0.0
        for i in range(n_out):
            for j in range(j0, j1):
                g = dW[i, j] + l2 * W[i, j]
                if has_mask and mask[i, j] == 0:
                    g = dW.dtype.type(0)
                dW[i, j] = g
                sum_sq += g * g
        sums[strip] = sum_sq


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
    start = n_samples * (padded_in_kernel(n_in) + 4 * ((n_out + 3) // 4)) + n_out * STRIP_MAX
    return matrix(scratch, start, 1, n_strips)[0]  # checked: IndexError past scratch's end


def scratch_size(n_samples, n_in, n_out):
    """Length of the scratch buffer that weight_gradients and the delta rule back through it
    (deltas.hidden_delta with W_next = W) need for a layer of these sizes: the packed strips of
    A_prev (the last padded), panels of delta, one strip of dW and a sum per strip (strips are 8
    float64 wide, 16 float32); or deltas.scratch_size."""
    gradients = (n_samples * (padded(n_in) + 4 * ((n_out + 3) // 4)) + n_out * STRIP_MAX
                 + (n_in + 7) // 8)
    return max(gradients, delta_scratch_size(n_samples, n_in, n_out))


@kernel
def weight_gradients(delta, A_prev, W, l2, mask, has_mask, dW, db, has_bias, parallel, scratch):
    """dW_ij = (1/n) sum_k delta_ki a_kj + l2 w_ij, 0 where mask_ij == 0; db_i = (1/n) sum_k delta_ki.
    Returns sum_ij dW_ij^2 (for the history's ||dE/dW||), summed per strip as dW is stored, then
    over the strips in their order: the same sum on any number of threads.

    delta: (n, n_out); A_prev: (n, n_in); W, mask: (n_out, n_in) (mask read only if ``has_mask``).
    Writes dW (n_out, n_in) and, if ``has_bias``, db (n_out,) in place. Parallel over panels of
    delta, then over strips of 2 vectors of inputs j, in groups; db serially. In ``scratch``
    (1-D, scratch_size(n, n_in, n_out) long): delta in panels of 4 columns, packed strips of
    A_prev from PACK_MIN_ROWS neurons up (and the last, when n_in is not a whole number of
    strips, always), a sum of squares per strip. Biases are not penalised.
    """
    n_samples, n_out = delta.shape
    width = 2 * lanes(dW)
    n_strips = (dW.shape[1] + width - 1) // width
    P = _delta_panels(scratch, n_samples, dW.shape[1], n_out)
    sums = _strip_sums(scratch, n_samples, dW.shape[1], n_out, n_strips)
    n_panels = (n_out + 3) // 4
    # A copy of delta: on the thread pool only when large (W2's 32x128 is not: a parallel loop
    # there is one more wake-up of the pool a batch).
    if parallel and n_samples * n_out >= PARALLEL_MIN_ELEMENTS:
        for panel in prange(n_panels):
            _pack_panel(delta, panel, P)
    else:
        for panel in range(n_panels):
            _pack_panel(delta, panel, P)
    # O(n n_out) adds, vectorised along the row: serially (as a last task of the strips' parallel
    # loop it left one thread a group of strips more than the other at 256x1024x1024)
    if has_bias:
        _bias_gradients(delta, db)
    # From PACK_MIN_ROWS neurons up each group of strips of A_prev is packed by its task, else
    # only the ragged last strip.
    first = 0 if n_out >= PACK_MIN_ROWS else dW.shape[1] // width
    group = strips_per_group(n_strips) if first == 0 else 1
    n_groups = (n_strips + group - 1) // group
    if parallel:
        for g in prange(n_groups):
            _gradient_group(g, group, first, n_strips, delta, A_prev, W, l2, mask, has_mask, dW,
                            scratch, P, sums)
    else:
        for g in range(n_groups):
            _gradient_group(g, group, first, n_strips, delta, A_prev, W, l2, mask, has_mask, dW,
                            scratch, P, sums)
    sum_sq = 0.0
    for strip in range(n_strips):
        sum_sq += sums[strip]
    return sum_sq
