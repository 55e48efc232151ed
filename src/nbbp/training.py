"""One epoch of mini-batch training in one compiled call: passes.forward_pass and
backward_pass over every layer, inlined into batch_passes, which train_epoch calls once a
batch, on the flat-parameter layout of nbbp._layout.

The driver runs serially and calls the layer kernels, each on the thread pool or not by the
amount of work (the same cut-off as a call from Python), so a batch needs no Python at all. A
tiny dense network's batch of more than passes.CHUNK_ROWS samples instead runs chunk by chunk on
the thread pool (chunked_batch), each chunk through every layer on one thread.
"""

import itertools

import numpy as np
from numba import prange

from . import _jit
from ._jit import helper, kernel, part, pool_flag
from ._layout import (
    B_OFF,
    BN_OFF,
    CODE,
    HAS_MASK,
    N_IN,
    N_OUT,
    SKIP_AFTER_F,
    W_OFF,
    layer,
    rows_start,
)
from ._simd import CACHE_LINE, aligned_zeros, borrowed, matrix
from .batchnorm import EPS as BN_EPS
from .batchnorm import MOMENTUM as BN_MOMENTUM
from .deltas import output_delta, weigh_samples
from .gradients import penalise_columns, scratch_size
from .losses import sample_losses
from .optimizers import NO_UPDATE, optimizer_update, update_in_parallel
from .passes import (
    CHUNK_ROWS,
    add_chunks,
    backward_pass,
    batch_weight,
    chunk_rows,
    forward_pass,
    n_weights,
)

# sum_of_squares adds the squares of each chunk of this many elements in the array's dtype (8
# float32 lanes to a vector, against 4 float64) and the chunks' sums in float64: 10.4 -> 5.3 us
# for the 100,352 weights of W2's first layer, float32, within 1e-8 of the float64 sum.
SUM_CHUNK = 1024


@part
def sum_of_squares(a):
    """sum_p a_p^2 over a flat array: each chunk of SUM_CHUNK squares summed in a's dtype, the
    chunks' sums in float64."""
    total = 0.0
    for start in range(0, a.shape[0], SUM_CHUNK):
        chunk = a.dtype.type(0)
        # An unsigned index: Numba wraps an index it cannot prove non-negative like a negative
        # one, and that select kept LLVM from vectorising the loop (26.6 us at W2, not 5.3)
        for p in range(start, min(start + SUM_CHUNK, a.shape[0])):
            chunk += a[np.uint64(p)] * a[np.uint64(p)]
        total += chunk
    return total


# torch.nn.utils.clip_grad_norm_'s guard against a zero norm
CLIP_EPS = 1e-6


@part
def clip_scale(grad, layout, weight_squares, max_norm):
    """min(1, max_norm / (||grad|| + 1e-6)) in grad's dtype: the factor by which
    torch.nn.utils.clip_grad_norm_ scales every gradient, from the norm of all of them. The
    weights' sum of squares comes from backward_pass (the gradient kernel sums them as it
    stores them); the biases' and batch normalisation's, short, are added here. The optimizer
    applies the factor as it reads each gradient: no pass of its own over grad (one cost a
    W2 epoch 20%). The weights' gradients include the l2 penalty's l2 w_ij: the norm is that of
    dE/dtheta, as torch's clip_grad_norm_ after l2 added to the loss (not torch's optimizer
    weight_decay, added after clipping)."""
    total = weight_squares
    for l in range(layout.shape[0]):
        n_out, b_off, bn_off = layout[l, N_OUT], layout[l, B_OFF], layout[l, BN_OFF]
        if b_off >= 0:
            total += sum_of_squares(grad[b_off:b_off + n_out])
        if bn_off >= 0:
            total += sum_of_squares(grad[bn_off:bn_off + 2 * n_out])
    if not np.isfinite(total):  # an inf or NaN gradient: unscaled, so the divergence shows
        return grad.dtype.type(1)
    coef = max_norm / (np.sqrt(total) + CLIP_EPS)
    return grad.dtype.type(coef if coef < 1 else 1)


@part
def _gather(source, order, start, rows):
    """rows[r, :] = source[order[start + r], :]: one mini-batch, in the epoch's order."""
    width = source.shape[1]
    for r in range(rows.shape[0]):
        k = order[start + r]
        for j in range(width):
            rows[r, j] = source[k, j]


@part
def _consecutive(order, start, n):
    """Whether order[start:start + n] are n consecutive rows (an epoch without shuffling): the
    batch is then read in place, with no copy (128x784 float32: 18 us a batch)."""
    first = order[start]
    for r in range(1, n):  # noqa: SIM110 - compiled by Numba
        if order[start + r] != first + r:
            return False
    return True


@part
def _one_hot(labels, order, start, rows):
    """rows[r, :] = the one-hot row of class labels[order[start + r]]."""
    for r in range(rows.shape[0]):
        for i in range(rows.shape[1]):
            rows[r, i] = 0
        rows[r, labels[order[start + r]]] = 1


@part
def batch_passes(Xb, Yb, theta, grad, mask, layout, stats, bn_eps, bn_momentum, loss_code, eps,
                 l2, z_buf, a_buf, h_buf, s_buf, d_buf, g_buf, Jb, scratch, grad_norm_sum,
                 delta_abs_sum, drop_seed, t, sample_weight, order, start, factor, pool):
    """One batch, or one chunk of one: forward_pass, each sample's loss J into Jb, the output
    delta (with ``sample_weight``, delta_k times factor w_k, sample k being row start + k of
    ``order``), then backward_pass into grad (``pool``: as there). Returns backward_pass's
    sum_l ||dE/dW(l)||^2. Compiled on its own (a part), not inlined: Numba copies an inlined
    function's IR block by block, each block with its own copy of every variable, which for
    the two passes took seconds at each inlining; the chunked driver inlined it twice. Its
    first fit from an empty cache, one process, on a 2-core AMD EPYC (Zen 3): 55-71 s against
    66-75 inlined; W1's, unchunked, 38.6-39.1 s against 39.5, and W1's epochs as fast."""
    nb = Xb.shape[0]
    n_layers = layout.shape[0]
    n_outputs = layout[n_layers - 1, N_OUT]
    forward_pass(Xb, theta, layout, stats, bn_eps, bn_momentum, z_buf, a_buf, h_buf, s_buf,
                 scratch, drop_seed, t, pool)
    out_code = layout[n_layers - 1, CODE]
    out_offset = rows_start(layout, nb, n_layers - 1)
    Z_out = matrix(z_buf, out_offset, nb, n_outputs)
    A_out = matrix(a_buf, out_offset, nb, n_outputs)
    sample_losses(Z_out, A_out, Yb, out_code, loss_code, eps, Jb)
    delta_out = matrix(d_buf, out_offset, nb, n_outputs)
    output_delta(Z_out, A_out, Yb, out_code, loss_code, eps, delta_out)
    if sample_weight is not None:
        weigh_samples(delta_out, sample_weight, order, start, factor)
    return backward_pass(Xb, theta, grad, mask, layout, l2, z_buf, a_buf, h_buf, s_buf, d_buf,
                         g_buf, scratch, grad_norm_sum, delta_abs_sum, drop_seed, t, pool)


@part
def _chunk(c, rows, Xb, Yb, theta, mask, layout, loss_code, eps, z_buf, a_buf, d_buf, g_buf, Jb,
           partial, scratch, sums, t, sample_weight, order, start, factor):
    """batch_passes on chunk c of a batch (its rows c rows .. c rows + n_c - 1), in the chunk's
    own slices of the buffers, into partial[c] (the gradient of the chunk's mean loss, without
    l2) and sums[c] (each layer's ||dE_c/dW||, then its sum |delta|). A chunk's kernels run on
    its thread (parallel=None)."""
    nb, n_layers = Xb.shape[0], layout.shape[0]
    r0 = c * rows
    r1 = min(r0 + rows, nb)
    units = rows_start(layout, 1, n_layers)  # a sample's room in z_buf, a_buf and d_buf
    span = scratch.shape[0] // partial.shape[0]
    for m in range(2 * n_layers):
        sums[c, m] = 0
    dt = theta.dtype.type
    batch_passes(Xb[r0:r1], Yb[r0:r1], theta, partial[c, :theta.shape[0]], mask, layout, None,
                 dt(0), dt(0), loss_code, eps, dt(0), z_buf[r0 * units:r1 * units],
                 a_buf[r0 * units:r1 * units], None, None, d_buf[r0 * units:r1 * units], g_buf,
                 Jb[r0:r1], scratch[c * span:(c + 1) * span], sums[c, :n_layers],
                 sums[c, n_layers:], None, t, sample_weight, order, start + r0, factor, None)


@kernel
def chunked_batch(Xb, Yb, theta, grad, mask, layout, loss_code, eps, l2, rows, z_buf, a_buf,
                  d_buf, g_buf, Jb, chunks, grad_norm_sum, delta_abs_sum, t, sample_weight, order,
                  start, factor):
    """batch_passes for a tiny batch of a dense network, chunk by chunk (passes.chunk_rows), the
    chunks on the thread pool: each chunk's gradient into its row of ``chunks``' partial
    gradients, then dE/dtheta = their sum in chunk order (passes.add_chunks) into grad, with
    l2 w_ij and the masks. Adds each layer's ||dE/dW|| to grad_norm_sum and sum |delta| to
    delta_abs_sum, and returns sum_l ||dE/dW(l)||^2, as batch_passes does: the same bits on
    any number of threads. ``chunks``: (partial gradients, one row a chunk; scratch, one equal
    slice a chunk; sums, one row a chunk)."""
    partial, scratch, sums = chunks
    nb, n_layers = Xb.shape[0], layout.shape[0]
    n_chunks = (nb + rows - 1) // rows
    for c in prange(n_chunks):
        _chunk(np.int64(c), rows, Xb, Yb, theta, mask, layout, loss_code, eps, z_buf, a_buf,
               d_buf, g_buf, Jb, partial, scratch, sums, t, sample_weight, order, start, factor)
    add_chunks(partial, nb, rows, grad)
    squares = 0.0
    for l in range(n_layers):
        W, _ = layer(theta, layout, l)
        dW, _ = layer(grad, layout, l)
        M, _ = layer(mask, layout, l)
        has_mask = layout[l, HAS_MASK] == 1
        if l2 != 0 or has_mask:
            sum_sq = penalise_columns(dW, W, l2, M, has_mask, 0, W.shape[1])
        else:
            sum_sq = sum_of_squares(dW.ravel())
        grad_norm_sum[l] += np.sqrt(sum_sq)
        squares += sum_sq
        delta_abs = 0.0
        for c in range(n_chunks):
            delta_abs += sums[c, n_layers + l]
        delta_abs_sum[l] += delta_abs
    return squares


@helper
def batch_in_chunks(Xb, Yb, theta, grad, mask, layout, loss_code, eps, l2, z_buf, a_buf, d_buf,
                    g_buf, Jb, scratch, chunks, grad_norm_sum, delta_abs_sum, t, sample_weight,
                    order, start, factor, pool):
    """batch_passes for a batch of a dense network without dropout: chunk by chunk
    (chunked_batch) where passes.chunk_rows splits it, else whole. Inlined into the driver, in
    a branch on ``chunks is None`` that Numba prunes by type before it inlines: a driver
    without chunks compiles none of this (a separately compiled function here cost the chunked
    driver one more copy of every kernel to link and optimise)."""
    nb = Xb.shape[0]
    rows = chunk_rows(nb, n_weights(layout), True)
    if rows < nb:
        return chunked_batch(Xb, Yb, theta, grad, mask, layout, loss_code, eps, l2, rows, z_buf,
                             a_buf, d_buf, g_buf, Jb, chunks, grad_norm_sum, delta_abs_sum, t,
                             sample_weight, order, start, factor)
    dt = theta.dtype.type
    return batch_passes(Xb, Yb, theta, grad, mask, layout, None, dt(0), dt(0), loss_code, eps, l2,
                        z_buf, a_buf, None, None, d_buf, g_buf, Jb, scratch, grad_norm_sum,
                        delta_abs_sum, None, t, sample_weight, order, start, factor, pool)


@part
def train_epoch(X, Y, labels, sample_weight, order, batch_size, theta, grad, mask, layout, stats,
                bn_eps, bn_momentum, loss_code, eps, l2, clip_norm, opt_code, state, alpha, h0,
                h1, h2, h3, t0, x_buf, y_buf, z_buf, a_buf, h_buf, s_buf, d_buf, g_buf, J, scratch,
                grad_norm_sum, delta_abs_sum, drop_seed, l2_per_batch, chunks, pool):
    """Train one epoch over the samples in ``order`` (rows of X: all of them, or a training
    split's), batch by batch, updating theta (and the running statistics of batch
    normalisation in ``stats``) in place. Targets are the rows of
    Y, or, when ``labels`` is not empty, one-hot rows of those class labels (Y is then unused),
    built per batch so that no one-hot copy of the data set exists. ``sample_weight`` (None:
    none, pruned by type; else float64, one per sample) weighs each batch's samples: E is
    sum_k w_k J_k / sum_k w_k, and a batch whose weights sum to 0 is passed over, with no step.
    ``drop_seed`` (None: no dropout) seeds the dropout masks, with the step count t. With
    ``l2_per_batch`` (scikit-learn's alpha) a batch's penalty is l2 / (its sum of weights), and
    the total sums nb times each batch's objective, the count its number of samples.
    ``chunks`` (None, by type: no chunk path compiled) holds chunk_buffers' arrays for a dense
    network without dropout: a tiny batch then runs chunk by chunk (batch_in_chunks). ``pool``
    None (by type) is a network whose layer kernels and optimizer step never run on threads
    (kernels_on_threads; its chunks may): the kernels' specialisations without a parallel loop
    are compiled and called (_jit.pool_flag); else np.bool_(True).

    For each batch: gather rows (or, for consecutive rows, read them in place), forward_pass
    (batch statistics), loss, output delta, backward_pass, with ``clip_norm`` > 0 the gradients
    scaled to their global norm (clip_scale) as the optimizer step reads them (``opt_code``
    NO_UPDATE: no step; theta stays, and grad holds the last batch's dE/dtheta). With batch
    normalisation, a last batch of one sample is left out (batch statistics need two). Buffers
    hold one batch of every layer; ``scratch`` is the three matrix kernels', sized for the
    largest layer. Returns (sum over the samples trained on of w J + w l2/2 sum ||W||^2 (w = 1
    unweighted), number of optimizer steps taken, number of samples trained on, sum of their
    weights (with l2_per_batch, their number));
    adds each batch's ||dE/dW(l)|| (before clipping) to grad_norm_sum[l] and sum |delta(l)| to
    delta_abs_sum[l].
    """
    # The caller holds every array for the whole call: borrowed, so that no view of them and no
    # kernel call counts references to them (_simd.borrowed; the chunks' tuple whole). Those
    # that may be None are borrowed under other names (None stays None): Numba prunes a branch
    # on ``x is None`` by type only where x is the argument itself.
    X, Y, labels, order, theta, grad, mask, layout = (
        borrowed(X), borrowed(Y), borrowed(labels), borrowed(order), borrowed(theta),
        borrowed(grad), borrowed(mask), borrowed(layout))
    state, x_buf, y_buf, z_buf, a_buf, d_buf, g_buf, J, scratch = (
        borrowed(state), borrowed(x_buf), borrowed(y_buf), borrowed(z_buf), borrowed(a_buf),
        borrowed(d_buf), borrowed(g_buf), borrowed(J), borrowed(scratch))
    grad_norm_sum, delta_abs_sum = borrowed(grad_norm_sum), borrowed(delta_abs_sum)
    weights, stats_b, h_b, s_b, chunks_b = (borrowed(sample_weight), borrowed(stats),
                                            borrowed(h_buf), borrowed(s_buf), borrowed(chunks))
    n_samples, n_features = order.shape[0], X.shape[1]  # order: the rows of X to train on
    n_layers = layout.shape[0]
    n_outputs = layout[n_layers - 1, N_OUT]
    use_labels = labels.shape[0] > 0
    has_bn = False
    for l in range(n_layers):
        has_bn = has_bn or layout[l, BN_OFF] >= 0
    total = 0.0
    t = t0
    n_used = 0
    weight_used = 0.0
    for start in range(0, n_samples, batch_size):
        nb = min(batch_size, n_samples - start)
        if nb == 1 and has_bn:
            break
        w_sum = float(nb)
        if sample_weight is not None:  # by type: Numba compiles none of it for None
            w_sum = batch_weight(weights, order, start, nb)
            if w_sum == 0:
                continue
        n_used += nb
        weight_used += nb if l2_per_batch else w_sum
        l2_b = l2 / grad.dtype.type(w_sum) if l2_per_batch else l2  # in the parameters' dtype
        first = order[start]
        in_order = _consecutive(order, start, nb)
        if in_order:  # the batch's rows, read in place
            Xb = X[first:first + nb]
        else:
            Xb = matrix(x_buf, 0, nb, n_features)
            _gather(X, order, start, Xb)
        if use_labels:
            Yb = matrix(y_buf, 0, nb, n_outputs)
            _one_hot(labels, order, start, Yb)
        elif in_order:
            Yb = Y[first:first + nb]
        else:
            Yb = matrix(y_buf, 0, nb, n_outputs)
            _gather(Y, order, start, Yb)

        # both passes, the samples' losses J into Jb and the gradients into grad
        Jb = J[:nb]
        if chunks is None:
            squares = batch_passes(Xb, Yb, theta, grad, mask, layout, stats_b, bn_eps,
                                   bn_momentum, loss_code, eps, l2_b, z_buf, a_buf, h_b, s_b, d_buf,
                                   g_buf, Jb, scratch, grad_norm_sum, delta_abs_sum, drop_seed, t,
                                   weights, order, start, nb / w_sum, pool)
        else:  # a dense network without dropout, by type as stats: a tiny batch in chunks
            squares = batch_in_chunks(Xb, Yb, theta, grad, mask, layout, loss_code, eps, l2_b,
                                      z_buf, a_buf, d_buf, g_buf, Jb, scratch, chunks_b,
                                      grad_norm_sum, delta_abs_sum, t, weights, order, start,
                                      nb / w_sum, pool)

        # loss of this batch, at the weights it saw
        batch_total = 0.0
        if sample_weight is not None:
            for r in range(nb):
                batch_total += Jb[r] * weights[order[start + r]]
        else:
            for r in range(nb):
                batch_total += Jb[r]
        if l2_per_batch:  # nb times the batch's objective
            batch_total *= nb / w_sum
        if l2 > 0:
            sum_sq = 0.0
            for l in range(n_layers):
                W, _ = layer(theta, layout, l)
                sum_sq += sum_of_squares(W.ravel())
            batch_total += (nb if l2_per_batch else w_sum) * 0.5 * l2_b * sum_sq
        total += batch_total

        scale = grad.dtype.type(1)
        if clip_norm > 0:
            scale = clip_scale(grad, layout, squares, clip_norm)

        t += 1
        if opt_code != NO_UPDATE:
            optimizer_update(opt_code, theta, grad, scale, state, alpha, h0, h1, h2, h3, t,
                             pool_flag(pool, update_in_parallel(theta.shape[0])))
    return total, t - t0, n_used, weight_used


def chunk_buffers(layout, sizes, dtype, batch_size):
    """chunked_batch's buffers for a dense network trained in batches of up to batch_size
    samples, or None where no batch of it is tiny enough to be chunked (passes.chunk_rows):
    (the chunks' partial gradients, their scratch, their sums), each chunk's on cache lines of
    its own."""
    weights = n_weights(layout)
    # the most samples of a chunked batch: the batch size, or the largest tiny batch below it
    most = min(batch_size, (_jit.PARALLEL_MIN_WORK - 1) // weights)
    if chunk_rows(most, weights, True) == most:
        return None
    n_chunks = (most + CHUNK_ROWS - 1) // CHUNK_ROWS
    itemsize = np.dtype(dtype).itemsize

    def lines(n, item=itemsize):  # n elements of item bytes, in whole cache lines
        line = CACHE_LINE // item
        return -(-n // line) * line

    n_params = max(max(w_off + n_in * n_out, b_off + n_out) for n_in, n_out, w_off, b_off
                   in layout[:, [N_IN, N_OUT, W_OFF, B_OFF]])
    span = lines(max(scratch_size(CHUNK_ROWS, n_in, n_out) for n_in, n_out
                     in itertools.pairwise(sizes)))
    return (aligned_zeros((n_chunks, lines(int(n_params))), dtype),
            aligned_zeros(n_chunks * span, dtype),
            aligned_zeros((n_chunks, lines(2 * layout.shape[0], 8)), np.float64))


def kernels_on_threads(layout, n_params, batch_size):
    """Whether training a network of ``layout`` and n_params parameters in batches of
    batch_size samples may run its layer kernels or its optimizer step on the thread pool: a
    batch's work over the cut-off (_jit.use_threads of batch_size n_weights, an upper bound of
    any one layer's and of any smaller batch's), or a parallel optimizer step
    (update_in_parallel). Where not, the epoch driver is compiled with ``pool`` None (the
    kernels' specialisations without a parallel loop). A batch split in chunks does not count:
    chunked_batch's own loop is on the pool, and each chunk's kernels, like those of a whole
    batch of at most CHUNK_ROWS samples of a network that has chunks, are under the cut-off.
    Batch normalisation's elementwise kernels are not counted, as in trains_on_threads: where
    they alone would use the pool, they run on one thread (the same bits, maybe slower)."""
    weights = int(n_weights(layout))
    return bool(_jit.use_threads(batch_size * weights) or update_in_parallel(n_params))


def trains_on_threads(layout, n_params, batch_size):
    """Whether training a network of ``layout`` and n_params parameters in batches of
    batch_size samples runs anything on the thread pool: its layer kernels or its optimizer
    step (kernels_on_threads), or a batch split in chunks (passes.chunk_rows). Batch
    normalisation's elementwise kernels are not counted (where they alone use the pool, the
    caller's check runs on one thread: slower, not wrong). A tiny network trains on one thread
    (W1: 32 x 2,368 multiply-adds a batch, 2,410 parameters)."""
    weights = int(n_weights(layout))
    return bool(kernels_on_threads(layout, n_params, batch_size)
                or chunk_rows(batch_size, weights, True) < batch_size)


class Epochs:
    """train_epoch for one training call: the buffers for one batch of every layer, allocated
    once, and the arguments that stay the same from epoch to epoch; for a dense network whose
    batches may be chunked, the chunks' buffers too (chunk_buffers; None otherwise, and also
    withheld from an epoch with dropout)."""

    def __init__(self, layout, sizes, dtype, batch_size, stats, has_batch_norm):
        n_units = int(layout[:, N_OUT].sum())
        self.batch_size = batch_size
        self.x_buf = aligned_zeros(batch_size * sizes[0], dtype)
        self.y_buf = aligned_zeros(batch_size * sizes[-1], dtype)
        self.z_buf, self.a_buf, self.d_buf = (aligned_zeros(batch_size * n_units, dtype)
                                              for _ in range(3))
        # A dense network passes None for these: its epoch driver compiles no batch
        # normalisation or skip kernels (see passes.forward_pass).
        self.stats = stats
        self.h_buf = self.s_buf = None
        if stats is not None:
            self.h_buf = aligned_zeros(self.z_buf.size if has_batch_norm else 0, dtype)
            self.s_buf = np.empty_like(stats)
        # dE/da of the layers that skips join in the identity form (passes.backward_pass)
        after_f = bool(np.any(layout[:, SKIP_AFTER_F] == 1))
        self.g_buf = aligned_zeros(self.z_buf.size if after_f else 0, dtype)
        self.J = np.empty(batch_size, dtype=np.float64)
        self.scratch = aligned_zeros(max(scratch_size(batch_size, n_in, n_out) for n_in, n_out
                                         in itertools.pairwise(sizes)), dtype)
        self.dt = dtype.type
        self.chunks = None if stats is not None else chunk_buffers(layout, sizes, dtype,
                                                                   batch_size)

    def run(self, X, Y, labels, order, theta, grad, mask, layout, loss_code, eps, l2, optimizer,
            state, learning_rate, t0, grad_norm_sum, delta_abs_sum, clip_norm=0.0,
            sample_weight=None, drop_seed=None, l2_per_batch=False, opt_code=None):
        """One epoch: train_epoch's (total, steps, samples used, their weight). ``opt_code``
        NO_UPDATE overrides the optimizer's: the gradients only (nbbp._collective)."""
        dt = self.dt
        h0, h1, h2, h3 = (dt(h) for h in optimizer.hyperparameters())
        code = optimizer.code if opt_code is None else opt_code
        pool = np.bool_(True) if kernels_on_threads(layout, theta.size, self.batch_size) else None
        return train_epoch(X, Y, labels, sample_weight, order, self.batch_size, theta, grad, mask,
                           layout, self.stats, dt(BN_EPS), dt(BN_MOMENTUM), loss_code, eps, dt(l2),
                           dt(clip_norm), code, state, dt(learning_rate), h0, h1, h2, h3, t0,
                           self.x_buf, self.y_buf, self.z_buf, self.a_buf, self.h_buf,
                           self.s_buf, self.d_buf, self.g_buf, self.J, self.scratch,
                           grad_norm_sum, delta_abs_sum, drop_seed, l2_per_batch,
                           self.chunks if drop_seed is None else None, pool)
