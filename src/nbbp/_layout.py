"""The flat-parameter layout, in one place: the network, the compiled passes, the epoch driver
and the file format all read it from here.

Parameters live in one flat vector ``theta``: for each layer l, W(l) row-major, then b(l) if
the layer has a bias, then gamma(l) and beta(l) if it is batch-normalised. Gradients, masks and
optimizer state share that layout, so each optimizer updates every parameter in one loop. The
running means and variances of batch normalisation, which no optimizer touches, live in a
second flat vector ``stats``. ``layout[l]`` holds, by column:

- N_IN, N_OUT: the widths of a(l) and a(l+1) (activation a(0) is the input X);
- W_OFF, B_OFF: offsets of W(l) and b(l) in theta (B_OFF -1: no bias);
- CODE: the activation code; HAS_MASK: 1 if W(l) has a connectivity mask;
- BN_OFF: offset of gamma(l) in theta, beta(l) following (-1: no batch normalisation);
- STATS_OFF: offset of the running mean in ``stats``, the running variance following;
- SKIP_FROM: s when a(s), an earlier activation of the same width, joins layer l by a
  residual connection (0 is the input X), or -1;
- SKIP_AFTER_F: 1 when that skip is the identity form, a(l+1) = a(s) + f(z(l+1)); 0 when it is
  added before f, a(l+1) = f(z(l+1) + a(s));
- DROP: inverted dropout of a(l+1) in training, as a threshold t in [0, 2^32): a unit whose
  32-bit hash is below t is dropped, so p = t / 2^32 exactly (0: none; nbbp.dropout).

The compiled passes keep one batch of every layer in one buffer: layer l's rows start at
n * (sum of the widths of the layers before it), in z, a, delta and z_hat alike
(``rows_start``, ``rows_of``).

Python reads the layout with ``views`` and ``batch_norm_views``; compiled code with ``layer``,
``batch_norm``, ``rows_start``, ``rows_of`` and ``skip_targets``.
"""

from typing import NamedTuple

import numpy as np

from ._jit import part
from ._simd import matrix

(N_IN, N_OUT, W_OFF, B_OFF, CODE, HAS_MASK, BN_OFF, STATS_OFF, SKIP_FROM, SKIP_AFTER_F,
 DROP) = range(11)
N_COLUMNS = 11


class Parameters(NamedTuple):
    """A network's arrays, as its owner hands them to the code that trains them in place: the
    layout, theta, the masks laid out like theta (1 or 0 per parameter), and stats."""

    layout: np.ndarray
    theta: np.ndarray
    mask_theta: np.ndarray
    stats: np.ndarray


def parameter_count(sizes, bias, batch_norm):
    """(length of theta, length of stats) for these layer widths, bias flags (one per layer)
    and batch_norm flags (one per hidden layer), in Python integers: W(l), b(l) where the layer
    has a bias, gamma(l) and beta(l) (and two running statistics) where it is normalised."""
    n_layers = len(sizes) - 1
    n_params = n_stats = 0
    for l in range(n_layers):
        n_params += sizes[l] * sizes[l + 1] + (sizes[l + 1] if bias[l] else 0)
        if l < n_layers - 1 and batch_norm[l]:
            n_params += 2 * sizes[l + 1]
            n_stats += 2 * sizes[l + 1]
    return n_params, n_stats


def build(sizes, codes, bias, masked, batch_norm, skips, skip_after_f=False, drop=None):
    """The layout of a network: its layer widths, activation codes and bias and mask flags (one
    per layer), batch_norm flags (one per hidden layer), residual (s, t) pairs and their form
    (``skip_after_f``: the identity form), and dropout thresholds (one per hidden layer, or
    None). Returns (layout, length of theta, length of stats)."""
    n_layers = len(sizes) - 1
    skip_from = {t: s for s, t in skips}
    layout = np.full((n_layers, N_COLUMNS), -1, dtype=np.int64)
    offset = stats_offset = 0
    for l in range(n_layers):
        n_in, n_out = sizes[l], sizes[l + 1]
        layout[l, N_IN], layout[l, N_OUT] = n_in, n_out
        layout[l, CODE], layout[l, HAS_MASK] = codes[l], bool(masked[l])
        layout[l, W_OFF] = offset
        offset += n_in * n_out
        if bias[l]:
            layout[l, B_OFF] = offset
            offset += n_out
        if l < n_layers - 1 and batch_norm[l]:
            layout[l, BN_OFF], layout[l, STATS_OFF] = offset, stats_offset
            offset += 2 * n_out
            stats_offset += 2 * n_out
        layout[l, SKIP_FROM] = skip_from.get(l + 1, -1)
        layout[l, SKIP_AFTER_F] = int(skip_after_f and l + 1 in skip_from)
        layout[l, DROP] = drop[l] if drop is not None and l < n_layers - 1 else 0
    return layout, offset, stats_offset


def widen(layout):
    """A layout of an older nbbp (a pickled network's) with the columns it lacks: every
    skip joins before f, as it did then."""
    if layout.shape[1] == N_COLUMNS:
        return layout
    if layout.shape[1] not in (9, 10):  # before skip forms, or before dropout
        raise ValueError(f"a layout of {layout.shape[1]} columns is not one nbbp wrote")
    extra = np.zeros((layout.shape[0], N_COLUMNS - layout.shape[1]), dtype=layout.dtype)
    return np.ascontiguousarray(np.hstack([layout, extra]))


def views(layout, flat):
    """Per-layer (weights, biases) views into a flat vector laid out like theta (biases: None
    where a layer has none)."""
    weights, biases = [], []
    for n_in, n_out, w_off, b_off in layout[:, [N_IN, N_OUT, W_OFF, B_OFF]]:
        weights.append(flat[w_off:w_off + n_in * n_out].reshape(n_out, n_in))
        biases.append(flat[b_off:b_off + n_out] if b_off >= 0 else None)
    return weights, biases


def batch_norm_views(layout, flat, column=BN_OFF):
    """Per-layer (gamma, beta) views into a vector laid out like theta, or with
    column=STATS_OFF (running mean, running var) views into one laid out like stats; None
    where a layer is not batch-normalised."""
    first, second = [], []
    for n_out, off in layout[:, [N_OUT, column]]:
        first.append(flat[off:off + n_out] if off >= 0 else None)
        second.append(flat[off + n_out:off + 2 * n_out] if off >= 0 else None)
    return first, second


def weight_ranges(layout):
    """Per layer, the slice of theta that holds W(l)."""
    return [slice(w_off, w_off + n_in * n_out)
            for n_in, n_out, w_off in layout[:, [N_IN, N_OUT, W_OFF]]]


# ---------------------------------------------------------------- read from compiled code
@part
def layer(theta, layout, l):
    """(W(l), b(l)) in theta, or in a vector laid out like it; b(l) empty without a bias."""
    n_in, n_out = layout[l, N_IN], layout[l, N_OUT]
    w_off, b_off = layout[l, W_OFF], layout[l, B_OFF]
    W = matrix(theta, w_off, n_out, n_in)
    b = theta[b_off:b_off + n_out] if b_off >= 0 else theta[0:0]
    return W, b


@part
def batch_norm(theta, stats, layout, l):
    """(gamma, beta) of layer l in theta, or in a vector laid out like theta; (mean, var) of
    layer l in a vector laid out like stats."""
    n_out, bn_off, s_off = layout[l, N_OUT], layout[l, BN_OFF], layout[l, STATS_OFF]
    return (theta[bn_off:bn_off + n_out], theta[bn_off + n_out:bn_off + 2 * n_out],
            stats[s_off:s_off + n_out], stats[s_off + n_out:s_off + 2 * n_out])


@part
def rows_start(layout, n_rows, l):
    """Where the rows of layer l start in a buffer of one batch (n_rows) of every layer."""
    start = 0
    for m in range(l):
        start += n_rows * layout[m, N_OUT]
    return start


@part
def rows_of(buffer, layout, n_rows, l):
    """The (n_rows, width) rows of layer l in a buffer of one batch of every layer."""
    return matrix(buffer, rows_start(layout, n_rows, l), n_rows, layout[l, N_OUT])


@part
def skip_targets(layout, s):
    """How many layers activation a(s) joins by a residual connection."""
    count = 0
    for m in range(layout.shape[0]):
        if layout[m, SKIP_FROM] == s:
            count += 1
    return count
