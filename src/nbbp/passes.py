"""The forward and backward passes over every layer, twice: compiled (``forward_pass``,
``backward_pass``, inlined into the epoch driver, training.train_epoch) and in Python
(``forward_layers``, ``backprop``, for ``Network.forward``, ``loss``, ``gradients`` and
``step``). Both call the same kernels in the same order on the same layout (nbbp._layout), so a
batch gives the same bits either way (tests/test_passes.py). They differ where stated:

- the Python twins allocate their arrays per call; the compiled ones write into the driver's
  buffers, one batch of every layer each;
- only the Python forward has inference mode (batch normalisation with the running averages):
  training always normalises with the batch's statistics, and always moves the running
  averages, which the Python forward does only when asked (``update_running``: ``step`` does,
  ``gradients`` and ``loss(training=True)`` do not);
- the Python backprop gives dE/dtheta without the l2 penalty (``gradients`` and ``step`` have
  none); the compiled one adds l2 w_ij, and sums the history's norms.

Python calls the kernels one by one rather than one compiled pass over the layers: such a pass
would be one more serial function linking the parallel kernels, to compile and to keep safe in
the cache (see _jit.start_thread_pool), for calls outside the training loop.
"""

import numpy as np
from numba.extending import register_jitable

from ._jit import helper, ordered_part, part, pool_flag, use_threads, use_threads_elementwise
from ._layout import (
    B_OFF,
    BN_OFF,
    CODE,
    DROP,
    HAS_MASK,
    N_IN,
    N_OUT,
    SKIP_AFTER_F,
    SKIP_FROM,
    STATS_OFF,
    batch_norm,
    batch_norm_views,
    layer,
    rows_of,
    rows_start,
    skip_targets,
    views,
)
from ._simd import matrix
from .activations import IDENTITY, times_derivative_of_z_rows
from .batchnorm import EPS as BN_EPS
from .batchnorm import MOMENTUM as BN_MOMENTUM
from .batchnorm import batchnorm_backward, batchnorm_inference
from .deltas import hidden_delta, output_delta, residual_delta, split_skip_delta, weigh_samples
from .dropout import dropout_rows
from .forward import add_skip_and_activate, forward_layer, forward_normalised
from .forward import scratch_size as forward_scratch_size
from .gradients import scratch_size, weight_gradients
from .losses import sample_losses

# Constants passed to compiled functions as NumPy scalars: Numba types a Python int or bool
# constant argument as a literal and compiles (and links) a specialisation of the callee for
# it, besides the one for int64 or bool (forward_layer was compiled twice, for IDENTITY and for
# a code read from the layout). NumPy scalars are typed int64 and bool.
_IDENTITY = np.int64(IDENTITY)
_TRUE = np.bool_(True)


@part
def sum_of_abs(a):
    """sum_p |a_p| over a flat array, in float64."""
    total = 0.0
    for p in range(a.shape[0]):
        total += abs(a[p])
    return total


# -------------------------------------------------------------------------------- chunks
# A tiny network's batch, one whose forward pass is under the thread pool's cut-off
# (PARALLEL_MIN_WORK multiply-adds over all its layers together, so that each of its matrix
# kernels would run on one thread), is split into chunks of CHUNK_ROWS samples: each chunk's forward
# pass, loss, deltas and gradients run on one thread, in its own slices of the buffers, and the
# batch's gradient is the chunks' gradients added in chunk order (training.chunked_batch; the
# Python twin, backprop). The chunks are fixed by the batch alone, never by the thread count,
# so the bits are the same on any number of threads.
#
# A batch costs its chunks a wake-up of the pool (1.4 us) and the move of each chunk's partial
# gradient to the core that adds them (2.3 us for W1's 2,410 parameters), so a chunk must hold
# enough work to pay for them. On the 2-core Intel Xeon (AVX-512) of 2026-12, W1 (64-32-10)
# trained on 2 threads 12-20% faster in chunks of 128 than whole at batches of 256 and 384, and
# 10% slower on 1 thread; in chunks of 64 it was 17% slower at 128 (2 chunks), and at W1's batch
# of 32 two chunks of 16 took 8.9 us against 6.6 whole (each chunk of 16 costs 4.5 us, most of it
# the kernels' fixed costs). So batches of up to 128 samples stay whole.
CHUNK_ROWS = 128


@register_jitable
def chunk_rows(n_samples, n_weights, dense):
    """Samples per chunk of a batch of n_samples for a network of n_weights weights: CHUNK_ROWS
    where the network is ``dense`` (no batch normalisation, whose statistics are the batch's,
    no skips, no dropout) and the batch tiny and more than one chunk; else n_samples (the batch
    is one chunk, run as it is). Independent of the thread count and the CPU."""
    if dense and n_samples > CHUNK_ROWS and not use_threads(n_samples * n_weights):
        return CHUNK_ROWS
    return n_samples


@register_jitable
def n_weights(layout):
    """The number of weights w_ij of every layer: the multiply-adds of a sample's forward pass."""
    total = 0
    for l in range(layout.shape[0]):
        total += layout[l, N_IN] * layout[l, N_OUT]
    return total


@ordered_part
def batch_weight(sample_weight, order, start, n_samples):
    """sum_k w_k over a batch: sample_weight of the rows order[start], .. order[start + n - 1].
    Summed in order, without fastmath (which reassociated the driver's sum), so that the
    driver and backprop get the same factor n / sum_k w_k."""
    total = 0.0
    for r in range(n_samples):
        total += sample_weight[order[start + r]]
    return total


@ordered_part
def add_chunks(partial, n_samples, rows, grad):
    """dE/dtheta_p = sum_c (n_c / n) dE_c/dtheta_p, the chunks c in order: the gradient of the
    mean over a batch of n samples, from partial[c], the gradient of the mean over chunk c's n_c
    samples (rows c rows .. c rows + n_c - 1). grad (the length of theta) is written in place."""
    dt = grad.dtype.type
    n = np.uint64(grad.shape[0])
    for p in range(n):
        grad[p] = 0
    # Without fastmath (ordered_part): with reassociation allowed, LLVM summed the chunks in
    # another order in the copy it re-optimises inside the epoch driver than in this function
    # alone, so a driver loaded from the cache (which runs its copy) gave other bits than the
    # one compiled in the process, and than the Python twin (1e-17 in float64).
    for c in range((n_samples + rows - 1) // rows):
        weight = dt(min(rows, n_samples - c * rows) / n_samples)
        G = partial[c]
        # unsigned indices, as training.sum_of_squares, so that LLVM vectorises the loop
        for p in range(n):
            grad[p] += weight * G[p]


# ------------------------------------------------------------------------------ compiled
@helper
def forward_pass(X, theta, layout, stats, bn_eps, bn_momentum, z_buf, a_buf, h_buf, s_buf,
                 scratch, drop_seed, step, pool):
    """z(l) and a(l) of every layer for the batch X (n, n_in), into z_buf and a_buf, in
    training mode.

    A layer without batch normalisation or skip: z_i = sum_j w_ij a_j + b_i, a_i = f(z_i) in one
    kernel. Otherwise that sum first, with batch normalisation in the same kernel
    (forward_normalised: the batch's statistics, z_hat into h_buf, mean and 1/sqrt(var + eps)
    into s_buf, laid out like stats; the running averages in stats move by bn_momentum), then
    the skip: z += a(s) and
    a = f(z), or in the identity form a = f(z) + a(s). z_buf always holds the input of f.

    ``stats`` None (h_buf and s_buf unused) is a network with neither batch normalisation nor
    skips: Numba prunes the branches by type, so training it compiles none of their kernels
    (a first fit from an empty cache took 38 s without them, 54 s with them). ``drop_seed``
    None is a network without dropout, pruned the same way; else a hidden layer's activations
    are dropped (dropout.dropout_rows) with the masks of (drop_seed, ``step``). ``pool`` None
    is a network whose layer kernels never run on threads (training.kernels_on_threads): each
    kernel's specialisation for parallel=None, with no parallel loop, is compiled and called
    (_jit.pool_flag).
    """
    nb = X.shape[0]
    A_prev = X
    offset = 0
    for l in range(layout.shape[0]):
        W, b = layer(theta, layout, l)
        n_out, code = layout[l, N_OUT], layout[l, CODE]
        Z = matrix(z_buf, offset, nb, n_out)
        A = matrix(a_buf, offset, nb, n_out)
        parallel = pool_flag(pool, use_threads(nb * W.size))
        has_bn, skip_from = layout[l, BN_OFF] >= 0, layout[l, SKIP_FROM]
        if stats is None or (not has_bn and skip_from < 0):
            forward_layer(A_prev, W, b, layout[l, B_OFF] >= 0, code, Z, A, parallel, scratch)
        else:
            if has_bn:
                gamma, beta, running_mean, running_var = batch_norm(theta, stats, layout, l)
                _, _, mean, inv_std = batch_norm(theta, s_buf, layout, l)
                forward_normalised(A_prev, W, b, layout[l, B_OFF] >= 0, gamma, beta, bn_eps,
                                   bn_momentum, _TRUE, running_mean, running_var,
                                   matrix(h_buf, offset, nb, n_out), mean, inv_std, Z, parallel,
                                   scratch)
            else:
                forward_layer(A_prev, W, b, layout[l, B_OFF] >= 0, _IDENTITY, Z, Z, parallel,
                              scratch)
            A_skip = Z  # not read without a skip
            if skip_from == 0:
                A_skip = X
            elif skip_from > 0:
                A_skip = rows_of(a_buf, layout, nb, skip_from - 1)
            add_skip_and_activate(Z, A_skip, skip_from >= 0, layout[l, SKIP_AFTER_F] == 1,
                                  code, A)
        if drop_seed is not None and layout[l, DROP] > 0:
            dropout_rows(A, drop_seed, step, l, layout[l, DROP])
        A_prev = A
        offset += nb * n_out


@helper
def backward_pass(X, theta, grad, mask, layout, l2, z_buf, a_buf, h_buf, s_buf, d_buf, g_buf,
                  scratch, grad_norm_sum, delta_abs_sum, drop_seed, step, pool):
    """Gradients of every parameter into grad, from the output layer's delta in d_buf and the
    buffers of forward_pass on the same batch X.

    Per layer, from the output: delta = dE/dz (complete: its layer above and every skip it
    feeds have been done); through batch normalisation, dE/dgamma and dE/dbeta and the delta
    of the linear part (into h_buf, over z_hat); dE/dW, dE/db (+ l2 w_ij); then the delta
    rule for the layer below, plus what each skip out of its activation carries back (the
    target's dE/dz, or in the identity form its dE/da): f' multiplies the sum of every path's
    delta, once. d_buf keeps dE/dz; g_buf, dE/da of each layer a skip joins in the identity
    form (rows laid out as d_buf; empty without such skips). ``s_buf`` None is a dense
    network, as ``stats`` in forward_pass. A dropped layer's delta passes back through its
    masks (those of forward_pass's ``drop_seed`` and ``step``), and its f' is computed from z
    (its activations hold the dropped values); ``pool`` as in forward_pass. Adds ||dE/dW(l)|| to
    grad_norm_sum[l] and sum |delta(l)| to delta_abs_sum[l]; returns sum_l ||dE/dW(l)||^2.
    """
    nb = X.shape[0]
    n_layers = layout.shape[0]
    squares = 0.0
    offset = rows_start(layout, nb, n_layers - 1)
    for l in range(n_layers - 1, -1, -1):
        W, _ = layer(theta, layout, l)
        dW, db = layer(grad, layout, l)
        M, _ = layer(mask, layout, l)
        n_in, n_out = layout[l, N_IN], layout[l, N_OUT]
        delta = matrix(d_buf, offset, nb, n_out)
        delta_abs_sum[l] += sum_of_abs(delta.ravel())
        delta_lin = delta
        if s_buf is not None and layout[l, BN_OFF] >= 0:
            gamma, _, _, _ = batch_norm(theta, s_buf, layout, l)
            dgamma, dbeta, _, inv_std = batch_norm(grad, s_buf, layout, l)
            delta_lin = matrix(h_buf, offset, nb, n_out)
            batchnorm_backward(delta, delta_lin, gamma, inv_std, dgamma, dbeta, delta_lin,
                               pool_flag(pool, use_threads_elementwise(nb * n_out)))
        prev_offset = offset - nb * n_in
        A_prev = matrix(a_buf, prev_offset, nb, n_in) if l > 0 else X
        parallel = pool_flag(pool, use_threads(nb * W.size))
        sum_sq = weight_gradients(delta_lin, A_prev, W, l2, M, layout[l, HAS_MASK] == 1, dW, db,
                                  layout[l, B_OFF] >= 0, parallel, scratch)
        grad_norm_sum[l] += np.sqrt(sum_sq)
        squares += sum_sq
        if l > 0:
            Z_prev = matrix(z_buf, prev_offset, nb, n_in)
            delta_prev = matrix(d_buf, prev_offset, nb, n_in)
            code = layout[l - 1, CODE]
            dropped = drop_seed is not None and layout[l - 1, DROP] > 0
            if s_buf is None:  # a dense network: no skips
                hidden_delta(delta_lin, W, Z_prev, A_prev, _IDENTITY if dropped else code,
                             delta_prev, parallel, scratch)
                if dropped:  # dE/da of the kept units, then f'(z)
                    dropout_rows(delta_prev, drop_seed, step, l - 1, layout[l - 1, DROP])
                    times_derivative_of_z_rows(Z_prev, np.int64(0), nb, code, delta_prev)
            else:
                n_targets = skip_targets(layout, l)
                # a(l) = a(s) + f(z(l)): f' comes after dE/da(l) is kept for a(s)
                after_f = layout[l - 1, SKIP_FROM] >= 0 and layout[l - 1, SKIP_AFTER_F] == 1
                last = _IDENTITY if after_f or dropped else code
                hidden_delta(delta_lin, W, Z_prev, A_prev, _IDENTITY if n_targets > 0 else last,
                             delta_prev, parallel, scratch)
                done = 0
                for m in range(n_layers - 1, l - 1, -1):
                    if layout[m, SKIP_FROM] == l:
                        done += 1
                        carried = rows_of(g_buf if layout[m, SKIP_AFTER_F] == 1 else d_buf,
                                          layout, nb, m)
                        residual_delta(delta_prev, carried, Z_prev, A_prev,
                                       last if done == n_targets else _IDENTITY)
                if dropped:
                    dropout_rows(delta_prev, drop_seed, step, l - 1, layout[l - 1, DROP])
                if after_f:
                    split_skip_delta(delta_prev, rows_of(g_buf, layout, nb, l - 1), Z_prev, code)
                elif dropped:
                    times_derivative_of_z_rows(Z_prev, np.int64(0), nb, code, delta_prev)
        offset = prev_offset
    return squares


# -------------------------------------------------------------------------------- Python
# Inference on more rows than this goes chunk by chunk (forward_checked)
INFERENCE_CHUNK_ROWS = 4096


def forward_checked(X, theta, stats, layout, training, update_running, check):
    """forward_layers' (zs, [X] + activations), each layer passed to ``check(zs, a_list,
    first_row)`` if not None. Inference on more than INFERENCE_CHUNK_ROWS rows goes chunk by
    chunk, so that the layers take O(chunk) memory whatever the rows (a memmap streams from
    disk): zs and the activations then hold the output layer alone (the others are None)."""
    n = X.shape[0]
    if training or n <= INFERENCE_CHUNK_ROWS:
        zs, a_list, _ = forward_layers(X, theta, stats, layout, training, update_running)
        if check is not None:
            check(zs, a_list, 0)
        return zs, a_list
    n_layers, n_out = layout.shape[0], layout[-1, N_OUT]
    Z, O = np.empty((n, n_out), dtype=theta.dtype), np.empty((n, n_out), dtype=theta.dtype)
    for start in range(0, n, INFERENCE_CHUNK_ROWS):
        rows = slice(start, start + INFERENCE_CHUNK_ROWS)
        zs, a_list, _ = forward_layers(X[rows], theta, stats, layout)
        if check is not None:
            check(zs, a_list, start)
        Z[rows], O[rows] = zs[-1], a_list[-1]
    return [None] * (n_layers - 1) + [Z], [X] + [None] * (n_layers - 1) + [O]


def forward_layers(X, theta, stats, layout, training=False, update_running=False, dropout=None):
    """(zs, [X] + activations, norm) for a batch, layer by layer as forward_pass (zs[l] the
    input of f), with the running averages of batch normalisation, or with ``training`` the
    batch's statistics (``update_running``: moving the running averages in ``stats``). norm[l]
    is (z_hat, 1/sqrt(var + eps)) of a normalised layer in training mode, else None.
    ``dropout`` (seed, step) drops hidden activations as forward_pass does; None, none."""
    n = X.shape[0]
    dtype = theta.dtype
    dt = dtype.type
    weights, biases = views(layout, theta)
    gammas, betas = batch_norm_views(layout, theta)
    means, variances = batch_norm_views(layout, stats, STATS_OFF)
    zs, a_list, norm = [], [X], []
    for l in range(layout.shape[0]):
        n_out, code, bn_off, skip_from = layout[l, [N_OUT, CODE, BN_OFF, SKIP_FROM]]
        W, b = weights[l], biases[l]
        bias = theta[:0] if b is None else b
        Z = np.empty((n, n_out), dtype=dtype)
        A = np.empty_like(Z)
        parallel = use_threads(n * W.size) or None  # None: see _jit (no parallel loop compiled)
        scratch = np.empty(forward_scratch_size(n, W.shape[1], n_out), dtype=dtype)
        cache = None
        if bn_off < 0 and skip_from < 0:
            forward_layer(a_list[-1], W, bias, b is not None, code, Z, A, parallel, scratch)
        else:
            if bn_off >= 0 and training:
                cache = (np.empty_like(Z), np.empty(n_out, dtype=dtype))
                forward_normalised(a_list[-1], W, bias, b is not None, gammas[l], betas[l],
                                   dt(BN_EPS), dt(BN_MOMENTUM), update_running, means[l],
                                   variances[l], cache[0], np.empty(n_out, dtype=dtype),
                                   cache[1], Z, parallel, scratch)
            else:
                forward_layer(a_list[-1], W, bias, b is not None, IDENTITY, Z, Z, parallel,
                              scratch)
            if bn_off >= 0 and not training:
                batchnorm_inference(Z, gammas[l], betas[l], dt(BN_EPS), means[l], variances[l],
                                    use_threads_elementwise(n * n_out) or None)
            add_skip_and_activate(Z, a_list[skip_from] if skip_from >= 0 else Z,
                                  skip_from >= 0, layout[l, SKIP_AFTER_F] == 1, code, A)
        if dropout is not None and layout[l, DROP] > 0:
            dropout_rows(A, dropout[0], dropout[1], l, layout[l, DROP])
        zs.append(Z)
        a_list.append(A)
        norm.append(cache)
    return zs, a_list, norm


def mean_loss(Z, O, Y, layout, loss_code, eps, sample_weight=None):
    """E = mean_k J(o_k, y_k) for the output layer's Z and O, or with ``sample_weight`` w
    sum_k w_k J_k / sum_k w_k."""
    J = np.empty(Z.shape[0], dtype=np.float64)
    sample_losses(Z, O, Y, layout[-1, CODE], loss_code, eps, J)
    return float(np.average(J, weights=sample_weight))


def score(O, Y, loss_name, sample_weight=None):
    """Accuracy for cross_entropy and log_loss (every output right), R^2 for squared_error
    (averaged over outputs), of outputs O against targets Y; with ``sample_weight``, the
    weighted accuracy and weighted R^2 (as scikit-learn's metrics)."""
    if loss_name == "cross_entropy":
        return float(np.average(np.argmax(O, axis=1) == np.argmax(Y, axis=1),
                                weights=sample_weight))
    if loss_name == "log_loss":
        return float(np.average(np.all((O >= 0.5) == (Y == 1), axis=1), weights=sample_weight))
    if sample_weight is None:
        residual = np.sum((Y - O) ** 2, axis=0, dtype=np.float64)
        total = np.sum((Y - Y.mean(axis=0)) ** 2, axis=0, dtype=np.float64)
    else:
        w = sample_weight[:, None]
        residual = np.sum(w * (Y - O) ** 2, axis=0, dtype=np.float64)
        total = np.sum(w * (Y - np.average(Y, axis=0, weights=sample_weight)) ** 2, axis=0,
                       dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(total > 0, 1 - residual / total, np.where(residual == 0, 1.0, 0.0))
    return float(np.mean(r2))


def backprop(X, Y, theta, stats, mask_theta, layout, loss_code, eps, update_running=False,
             sample_weight=None, dropout=None, chunked=True):
    """(dE/dtheta laid out like theta, E) for one batch, in training mode, layer by layer as
    backward_pass, without an l2 penalty; with ``sample_weight`` (float64, one per sample, not
    summing to 0) of E = sum_k w_k J_k / sum_k w_k; with ``dropout`` (seed, step), through the
    masks forward_layers draws for it. A tiny batch goes chunk by chunk (chunk_rows), as the
    epoch driver runs it, and its gradient is the chunks' added by add_chunks; with ``chunked``
    False (L-BFGS, which has no driver to agree with) always whole, as the chunks cost Python
    a loop each (2,000 rows of a 6-9-4 network: 1.7 ms in chunks, 0.46 ms whole)."""
    n = X.shape[0]
    dense = bool(np.all(layout[:, BN_OFF] < 0) and np.all(layout[:, SKIP_FROM] < 0)
                 and (dropout is None or np.all(layout[:, DROP] == 0)))
    rows = chunk_rows(n, n_weights(layout), dense) if chunked else n
    factor = None if sample_weight is None else n / batch_weight(sample_weight, np.arange(n),
                                                                 0, n)
    if rows == n:
        grad, J = _backprop_rows(X, Y, theta, stats, mask_theta, layout, loss_code, eps,
                                 update_running, sample_weight, 0, factor, dropout)
    else:
        partial = np.empty(((n + rows - 1) // rows, theta.size), dtype=theta.dtype)
        J = np.empty(n)
        for c, r0 in enumerate(range(0, n, rows)):
            part_rows = slice(r0, r0 + rows)
            partial[c], J[part_rows] = _backprop_rows(X[part_rows], Y[part_rows], theta, stats,
                                                      mask_theta, layout, loss_code, eps,
                                                      update_running, sample_weight, r0, factor,
                                                      dropout)
        grad = np.empty_like(theta)
        add_chunks(partial, n, rows, grad)
    return grad, float(np.average(J, weights=sample_weight))


def _backprop_rows(X, Y, theta, stats, mask_theta, layout, loss_code, eps, update_running,
                   sample_weight, first_row, factor, dropout):
    """backprop's (dE/dtheta, J per sample) for the rows X, Y of a batch, the first of them its
    row ``first_row``: each delta_k weighed by factor w_k (sample_weight of the batch) if
    ``factor`` is not None."""
    zs, a_list, norm = forward_layers(X, theta, stats, layout, True, update_running, dropout)
    J = np.empty(X.shape[0], dtype=np.float64)
    sample_losses(zs[-1], a_list[-1], Y, layout[-1, CODE], loss_code, eps, J)
    n, L = X.shape[0], layout.shape[0]
    dtype = theta.dtype
    grad = np.zeros_like(theta)
    weights, _ = views(layout, theta)
    dWs, dbs = views(layout, grad)
    dgammas, dbetas = batch_norm_views(layout, grad)
    gammas, _ = batch_norm_views(layout, theta)
    # Writeable views: read-only ones would compile a second weight_gradients (Numba types
    # read-only arrays apart).
    masks = [M if masked else None for M, masked in
             zip(views(layout, mask_theta)[0], layout[:, HAS_MASK])]
    no_mask = np.zeros((0, 0), dtype=dtype)
    skip_from, after_f = layout[:, SKIP_FROM], layout[:, SKIP_AFTER_F] == 1
    deltas = [None] * L  # deltas[l] = n dE/dz of layer l, complete before it is used
    dE_da = [None] * L  # n dE/da of a layer that a skip joins in the identity form
    deltas[-1] = np.empty_like(zs[-1])
    output_delta(zs[-1], a_list[-1], Y, layout[-1, CODE], loss_code, eps, deltas[-1])
    if factor is not None:
        weigh_samples(deltas[-1], sample_weight, np.arange(first_row + n), first_row, factor)
    for l in reversed(range(L)):
        delta = deltas[l]
        if norm[l] is not None:
            delta_lin = np.empty_like(delta)
            batchnorm_backward(delta, norm[l][0], gammas[l], norm[l][1], dgammas[l], dbetas[l],
                               delta_lin, use_threads_elementwise(delta.size) or None)
        else:
            delta_lin = delta
        has_mask = masks[l] is not None
        n_out, n_in = weights[l].shape
        parallel = use_threads(n * weights[l].size) or None
        scratch = np.empty(scratch_size(n, n_in, n_out), dtype=dtype)
        weight_gradients(delta_lin, a_list[l], weights[l], dtype.type(0),
                         masks[l] if has_mask else no_mask, has_mask, dWs[l],
                         theta[:0] if dbs[l] is None else dbs[l], dbs[l] is not None, parallel,
                         scratch)
        if l > 0:
            code = layout[l - 1, CODE]
            targets = [m for m in range(L - 1, l - 1, -1) if skip_from[m] == l]
            split = skip_from[l - 1] >= 0 and after_f[l - 1]
            dropped = dropout is not None and layout[l - 1, DROP] > 0
            last = IDENTITY if split or dropped else code
            delta_prev = np.empty_like(zs[l - 1])
            hidden_delta(delta_lin, weights[l], zs[l - 1], a_list[l],
                         IDENTITY if targets else last, delta_prev, parallel, scratch)
            for i, m in enumerate(targets):  # f' once, on the sum of every path's delta
                residual_delta(delta_prev, dE_da[m] if after_f[m] else deltas[m], zs[l - 1],
                               a_list[l], last if i == len(targets) - 1 else IDENTITY)
            if dropped:
                dropout_rows(delta_prev, dropout[0], dropout[1], l - 1, layout[l - 1, DROP])
            if split:
                dE_da[l - 1] = np.empty_like(delta_prev)
                split_skip_delta(delta_prev, dE_da[l - 1], zs[l - 1], code)
            elif dropped:
                times_derivative_of_z_rows(zs[l - 1], np.int64(0), n, code, delta_prev)
            deltas[l - 1] = delta_prev
    return grad, J
