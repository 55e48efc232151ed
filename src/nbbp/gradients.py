"""Gradients of E: dE/dw_ij = mean_k delta_ki a_kj (+ lambda w_ij with l2) and
dE/db_i = mean_k delta_ki."""

from numba import prange

from ._jit import helper, kernel, part
from ._simd import PACK_MIN_ROWS, fma, lanes, load, pack_strip, scale, store, strip_source, zeros
from .deltas import scratch_size as delta_scratch_size


@helper
def _store_gradient(dW, i, j, s, inv_n, l2, W):
    """dW_ij.. = (1/n) s + l2 w_ij.. for one vector of sums s."""
    store(dW, i, j, fma(scale(s, inv_n), l2, load(W, i, j)))


@helper
def _gradient_block(D, c0, n_rows, V, v0, W, l2, dW, i0, j0):
    """dW_ij = (1/n) sum_k delta_ki a_kj + l2 w_ij, for the n_rows <= 4 neurons from i0 and the 2
    vectors of inputs from j0. D[k, c0:] holds delta_ki from i0 on (delta, or its packed
    panel), V[k, v0:] a_kj from j0 on (A_prev, or its packed strip).

    8 vector sums stay in registers over the whole k-sum: each step loads 2 vectors of row k of
    A_prev once, for 4 neurons (fewer than 4 repeat the last, and store the same sums twice).
    """
    n_samples = D.shape[0]
    width = lanes(dW)
    inv_n = dW.dtype.type(1) / n_samples
    r1, r2, r3 = min(1, n_rows - 1), min(2, n_rows - 1), min(3, n_rows - 1)
    s00 = s01 = s10 = s11 = s20 = s21 = s30 = s31 = zeros(dW)
    for k in range(n_samples):
        a0, a1 = load(V, k, v0), load(V, k, v0 + width)
        d = D[k, c0]
        s00, s01 = fma(s00, d, a0), fma(s01, d, a1)
        d = D[k, c0 + r1]
        s10, s11 = fma(s10, d, a0), fma(s11, d, a1)
        d = D[k, c0 + r2]
        s20, s21 = fma(s20, d, a0), fma(s21, d, a1)
        d = D[k, c0 + r3]
        s30, s31 = fma(s30, d, a0), fma(s31, d, a1)
    _store_gradient(dW, i0, j0, s00, inv_n, l2, W)
    _store_gradient(dW, i0, j0 + width, s01, inv_n, l2, W)
    _store_gradient(dW, i0 + r1, j0, s10, inv_n, l2, W)
    _store_gradient(dW, i0 + r1, j0 + width, s11, inv_n, l2, W)
    _store_gradient(dW, i0 + r2, j0, s20, inv_n, l2, W)
    _store_gradient(dW, i0 + r2, j0 + width, s21, inv_n, l2, W)
    _store_gradient(dW, i0 + r3, j0, s30, inv_n, l2, W)
    _store_gradient(dW, i0 + r3, j0 + width, s31, inv_n, l2, W)


@helper
def _delta_panel(panels, i0, n_samples, n_out):
    """The packed copy of delta's columns i0..i0+3 (fewer at the end of the layer) in
    ``panels``: (n_samples, min(4, n_out - i0)), contiguous."""
    n_rows = min(4, n_out - i0)
    return panels[i0 * n_samples:(i0 + n_rows) * n_samples].reshape((n_samples, n_rows))


@part
def _gradient_strip(strip, delta, A_prev, W, l2, mask, has_mask, dW, scratch, packed_delta):
    """dW_ij for every neuron i and one strip of inputs j: 2 vectors wide, or a single input
    past the last whole strip. ``packed_delta``: delta's panels are in scratch, after the
    strips."""
    n_samples = delta.shape[0]
    n_out, n_in = dW.shape
    width = 2 * lanes(dW)
    n_strips = n_in // width
    if strip < n_strips:
        j0, j1 = strip * width, strip * width + width
        V, v0 = strip_source(A_prev, strip, width, n_out >= PACK_MIN_ROWS, scratch)
        panels = scratch[n_samples * n_in:]
        for i0 in range(0, n_out, 4):
            if packed_delta:
                D, c0 = _delta_panel(panels, i0, n_samples, n_out), 0
            else:
                D, c0 = delta, i0
            _gradient_block(D, c0, min(4, n_out - i0), V, v0, W, l2, dW, i0, j0)
    else:
        j0 = n_strips * width + strip - n_strips
        j1 = j0 + 1
        inv_n = dW.dtype.type(1) / n_samples
        for i in range(n_out):
            s = dW.dtype.type(0)
            for k in range(n_samples):
                s += delta[k, i] * A_prev[k, j0]
            dW[i, j0] = s * inv_n + l2 * W[i, j0]
    if has_mask:
        for i in range(n_out):
            for j in range(j0, j1):
                if mask[i, j] == 0:
                    dW[i, j] = 0


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


@helper
def _strip_or_bias(strip, n_strips, delta, A_prev, W, l2, mask, has_mask, dW, db, has_bias, scratch,
                   packed_delta):
    """One iteration of weight_gradients: a strip of dW, or past the last strip the biases."""
    if strip < n_strips:
        _gradient_strip(strip, delta, A_prev, W, l2, mask, has_mask, dW, scratch, packed_delta)
    elif has_bias:
        _bias_gradients(delta, db)


# From this many neurons (rows of delta of 2 KiB in float32) and PACK_MIN_ROWS samples up, the
# k-sums read delta from packed panels of 4 columns. Each block of 4 neurons walks 4 columns of
# delta down its rows; a row apart, they evict each other from the cache and the TLB. Float32,
# 2 threads, GFLOP/s unpacked against packed: 83 vs 117 at 256x1024x1024, 105 vs 124 at
# 256x1024x512; 104 vs 101 at 128x784x128 and 100 vs 93 at 128x256x256.
PANEL_MIN_OUT = 512


def packs_delta(n_samples, n_out):
    """Whether weight_gradients first packs delta into panels of 4 columns, (n_samples, 4)."""
    return n_samples >= PACK_MIN_ROWS and n_out >= PANEL_MIN_OUT


_packs_delta = helper(packs_delta)


def scratch_size(n_samples, n_in, n_out):
    """Length of the scratch buffer that weight_gradients and the delta rule back through it
    (deltas.hidden_delta with W_next = W) need for a layer of these sizes: the packed strips of
    A_prev (n_samples rows) and panels of delta, or deltas.scratch_size."""
    gradients = n_samples * n_in if n_out >= PACK_MIN_ROWS else 0
    if packs_delta(n_samples, n_out):
        gradients = n_samples * (n_in + n_out)
    return max(gradients, delta_scratch_size(n_samples, n_in, n_out))


@kernel
def weight_gradients(delta, A_prev, W, l2, mask, has_mask, dW, db, has_bias, parallel, scratch):
    """dW_ij = (1/n) sum_k delta_ki a_kj + l2 w_ij, 0 where mask_ij == 0; db_i = (1/n) sum_k delta_ki.

    delta: (n, n_out); A_prev: (n, n_in); W, mask: (n_out, n_in) (mask read only if ``has_mask``).
    Writes dW (n_out, n_in) and, if ``has_bias``, db (n_out,) in place. Parallel over strips of
    2 vectors of inputs j (one more iteration for db). In ``scratch`` (1-D, scratch_size(n, n_in,
    n_out) long): from PACK_MIN_ROWS neurons up, packed strips of A_prev; with packs_delta, delta
    in panels of 4 columns. Biases are not penalised.
    """
    n_samples, n_out = delta.shape
    width = 2 * lanes(dW)
    n_strips = dW.shape[1] // width + dW.shape[1] % width
    panels = scratch[n_samples * dW.shape[1]:]
    n_panels = (n_out + 3) // 4 if _packs_delta(n_samples, n_out) else 0
    if parallel:
        for panel in prange(n_panels):
            pack_strip(delta, 4 * panel, _delta_panel(panels, 4 * panel, n_samples, n_out))
        for strip in prange(n_strips + 1):
            _strip_or_bias(strip, n_strips, delta, A_prev, W, l2, mask, has_mask, dW, db, has_bias,
                           scratch, n_panels > 0)
    else:
        for panel in range(n_panels):
            pack_strip(delta, 4 * panel, _delta_panel(panels, 4 * panel, n_samples, n_out))
        for strip in range(n_strips + 1):
            _strip_or_bias(strip, n_strips, delta, A_prev, W, l2, mask, has_mask, dW, db, has_bias,
                           scratch, n_panels > 0)
