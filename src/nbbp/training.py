"""One epoch of mini-batch training in one compiled call: forward_pass and backward_pass over
every layer, inlined into train_epoch. (``Network`` runs the same passes from Python, calling
the kernels: see ``Network._forward``.)

The driver runs serially and calls the layer kernels, each on the thread pool or not by the
amount of work (the same cut-off as a call from Python), so a batch needs no Python at all.

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
- SKIP_FROM: s when a(s), an earlier activation of the same width, is added to z(l+1) before
  f (a residual connection; 0 is the input X), or -1.

Every buffer holds one batch of every layer: layer l's rows start at n * (sum of the widths of
the layers before it), in z, a, delta and z_hat alike.
"""

import numpy as np

from ._jit import PARALLEL_MIN_ELEMENTS, PARALLEL_MIN_WORK, jit
from ._simd import matrix
from .activations import IDENTITY
from .batchnorm import batchnorm_backward, batchnorm_train
from .deltas import hidden_delta, output_delta, residual_delta
from .forward import add_skip_and_activate, forward_layer
from .gradients import weight_gradients
from .losses import sample_losses
from .optimizers import UPDATE_PARALLEL_MIN, optimizer_update

N_IN, N_OUT, W_OFF, B_OFF, CODE, HAS_MASK, BN_OFF, STATS_OFF, SKIP_FROM = range(9)
N_COLUMNS = 9

# Constants passed to compiled functions as NumPy scalars: Numba types a Python int or bool
# constant argument as a literal and compiles (and links) a specialisation of the callee for
# it, besides the one for int64 or bool (forward_layer was compiled twice, for IDENTITY and for
# a code read from the layout). NumPy scalars are typed int64 and bool.
_IDENTITY = np.int64(IDENTITY)
_TRUE = np.bool_(True)

serial_driver = jit()


@serial_driver
def _layer(theta, layout, l):
    n_in, n_out, w_off, b_off = layout[l, N_IN], layout[l, N_OUT], layout[l, W_OFF], layout[l, B_OFF]
    W = matrix(theta, w_off, n_out, n_in)
    b = theta[b_off:b_off + n_out] if b_off >= 0 else theta[0:0]
    return W, b


# _sum_of_squares adds the squares of each chunk of this many elements in the array's dtype (8
# float32 lanes to a vector, against 4 float64) and the chunks' sums in float64: 10.4 -> 5.3 us
# for the 100,352 weights of W2's first layer, float32, within 1e-8 of the float64 sum.
SUM_CHUNK = 1024


@serial_driver
def _sum_of_squares(a):
    """sum_p a_p^2 over a flat array: each chunk of SUM_CHUNK squares summed in a's dtype, the
    chunks' sums in float64."""
    total = 0.0
    for start in range(0, a.shape[0], SUM_CHUNK):
        chunk = a.dtype.type(0)
        for p in range(start, min(start + SUM_CHUNK, a.shape[0])):
            chunk += a[p] * a[p]
        total += chunk
    return total


@serial_driver
def _sum_of_abs(a):
    total = 0.0
    for p in range(a.shape[0]):
        total += abs(a[p])
    return total


@serial_driver
def _gather(source, order, start, rows):
    """rows[r, :] = source[order[start + r], :]: one mini-batch, in the epoch's order."""
    width = source.shape[1]
    for r in range(rows.shape[0]):
        k = order[start + r]
        for j in range(width):
            rows[r, j] = source[k, j]


@serial_driver
def _consecutive(order, start, n):
    """Whether order[start:start + n] are n consecutive rows (an epoch without shuffling): the
    batch is then read in place, with no copy (128x784 float32: 18 us a batch)."""
    first = order[start]
    for r in range(1, n):
        if order[start + r] != first + r:
            return False
    return True


@serial_driver
def _one_hot(labels, order, start, rows):
    """rows[r, :] = the one-hot row of class labels[order[start + r]]."""
    for r in range(rows.shape[0]):
        for i in range(rows.shape[1]):
            rows[r, i] = 0
        rows[r, labels[order[start + r]]] = 1


@serial_driver
def _batch_norm(theta, stats, layout, l):
    """(gamma, beta) of layer l in theta, or in a vector laid out like theta; (mean, var) of
    layer l in a vector laid out like stats."""
    n_out, bn_off, s_off = layout[l, N_OUT], layout[l, BN_OFF], layout[l, STATS_OFF]
    return (theta[bn_off:bn_off + n_out], theta[bn_off + n_out:bn_off + 2 * n_out],
            stats[s_off:s_off + n_out], stats[s_off + n_out:s_off + 2 * n_out])


@serial_driver
def _offset(layout, n_rows, l):
    """Where the rows of layer l start in a buffer of one batch (n_rows) of every layer."""
    offset = 0
    for m in range(l):
        offset += n_rows * layout[m, N_OUT]
    return offset


@serial_driver
def _rows_of(buffer, layout, n_rows, l):
    """The (n_rows, width) rows of layer l in a buffer of one batch of every layer."""
    return matrix(buffer, _offset(layout, n_rows, l), n_rows, layout[l, N_OUT])


@serial_driver
def _skip_targets(layout, s):
    """How many layers add activation a(s) to their pre-activation."""
    count = 0
    for m in range(layout.shape[0]):
        if layout[m, SKIP_FROM] == s:
            count += 1
    return count


@jit(inline=True)
def forward_pass(X, theta, layout, stats, bn_eps, bn_momentum, z_buf, a_buf, h_buf, s_buf,
                 scratch):
    """z(l) and a(l) of every layer for the batch X (n, n_in), into z_buf and a_buf, in
    training mode.

    A layer without batch normalisation or skip: z_i = sum_j w_ij a_j + b_i, a_i = f(z_i) in one
    kernel. Otherwise that sum (with the identity) first, then batch normalisation with the
    batch's statistics (z_hat into h_buf, mean and 1/sqrt(var + eps) into s_buf, laid out like
    stats; the running averages in stats move by bn_momentum), then z += a(skip) and a = f(z).
    z_buf always holds the input of f.

    ``stats`` None (h_buf and s_buf unused) is a network with neither batch normalisation nor
    skips: Numba prunes the branches by type, so training it compiles none of their kernels
    (a first fit from an empty cache took 38 s without them, 54 s with them).
    """
    nb = X.shape[0]
    A_prev = X
    offset = 0
    for l in range(layout.shape[0]):
        W, b = _layer(theta, layout, l)
        n_out, code = layout[l, N_OUT], layout[l, CODE]
        Z = matrix(z_buf, offset, nb, n_out)
        A = matrix(a_buf, offset, nb, n_out)
        parallel = nb * W.size >= PARALLEL_MIN_WORK
        has_bn, skip_from = layout[l, BN_OFF] >= 0, layout[l, SKIP_FROM]
        if stats is None or (not has_bn and skip_from < 0):
            forward_layer(A_prev, W, b, layout[l, B_OFF] >= 0, code, Z, A, parallel, scratch)
        else:
            forward_layer(A_prev, W, b, layout[l, B_OFF] >= 0, _IDENTITY, Z, Z, parallel,
                          scratch)
            elementwise = nb * n_out >= PARALLEL_MIN_ELEMENTS
            if has_bn:
                gamma, beta, running_mean, running_var = _batch_norm(theta, stats, layout, l)
                _, _, mean, inv_std = _batch_norm(theta, s_buf, layout, l)
                batchnorm_train(Z, gamma, beta, bn_eps, bn_momentum, _TRUE, running_mean,
                                running_var, matrix(h_buf, offset, nb, n_out), mean, inv_std,
                                elementwise)
            A_skip = Z  # not read without a skip
            if skip_from == 0:
                A_skip = X
            elif skip_from > 0:
                A_skip = _rows_of(a_buf, layout, nb, skip_from - 1)
            add_skip_and_activate(Z, A_skip, skip_from >= 0, code, A)
        A_prev = A
        offset += nb * n_out


@jit(inline=True)
def backward_pass(X, theta, grad, mask, layout, l2, z_buf, a_buf, h_buf, s_buf, d_buf, scratch,
                  grad_norm_sum, delta_abs_sum):
    """Gradients of every parameter into grad, from the output layer's delta in d_buf and the
    buffers of forward_pass on the same batch X.

    Per layer, from the output: delta = dE/dz (complete: its layer above and every skip it
    feeds have been done); through batch normalisation, dE/dgamma and dE/dbeta and the delta
    of the linear part (into h_buf, over z_hat); dE/dW, dE/db (+ l2 w_ij); then the delta
    rule for the layer below, plus the deltas of the layers its activation skips to: f'
    multiplies the sum of every path's delta, once. d_buf keeps dE/dz. ``s_buf`` None is a
    dense network, as ``stats`` in forward_pass. Adds ||dE/dW(l)|| to
    grad_norm_sum[l] and sum |delta(l)| to delta_abs_sum[l].
    """
    nb = X.shape[0]
    n_layers = layout.shape[0]
    offset = _offset(layout, nb, n_layers - 1)
    for l in range(n_layers - 1, -1, -1):
        W, b = _layer(theta, layout, l)
        dW, db = _layer(grad, layout, l)
        M, _ = _layer(mask, layout, l)
        n_in, n_out = layout[l, N_IN], layout[l, N_OUT]
        delta = matrix(d_buf, offset, nb, n_out)
        delta_abs_sum[l] += _sum_of_abs(delta.ravel())
        delta_lin = delta
        if s_buf is not None and layout[l, BN_OFF] >= 0:
            gamma, _, _, _ = _batch_norm(theta, s_buf, layout, l)
            dgamma, dbeta, _, inv_std = _batch_norm(grad, s_buf, layout, l)
            delta_lin = matrix(h_buf, offset, nb, n_out)
            batchnorm_backward(delta, delta_lin, gamma, inv_std, dgamma, dbeta, delta_lin,
                               nb * n_out >= PARALLEL_MIN_ELEMENTS)
        prev_offset = offset - nb * n_in
        A_prev = matrix(a_buf, prev_offset, nb, n_in) if l > 0 else X
        parallel = nb * W.size >= PARALLEL_MIN_WORK
        sum_sq = weight_gradients(delta_lin, A_prev, W, l2, M, layout[l, HAS_MASK] == 1, dW, db,
                                  layout[l, B_OFF] >= 0, parallel, scratch)
        grad_norm_sum[l] += np.sqrt(sum_sq)
        if l > 0:
            Z_prev = matrix(z_buf, prev_offset, nb, n_in)
            delta_prev = matrix(d_buf, prev_offset, nb, n_in)
            code = layout[l - 1, CODE]
            if s_buf is None:  # a dense network: no skips
                hidden_delta(delta_lin, W, Z_prev, A_prev, code, delta_prev, parallel, scratch)
            else:
                n_targets = _skip_targets(layout, l)
                hidden_delta(delta_lin, W, Z_prev, A_prev, _IDENTITY if n_targets > 0 else code,
                             delta_prev, parallel, scratch)
                done = 0
                for m in range(n_layers - 1, l - 1, -1):
                    if layout[m, SKIP_FROM] == l:
                        done += 1
                        residual_delta(delta_prev, _rows_of(d_buf, layout, nb, m), Z_prev,
                                       A_prev, code if done == n_targets else _IDENTITY)
        offset = prev_offset


@serial_driver
def train_epoch(X, Y, labels, order, batch_size, theta, grad, mask, layout, stats, bn_eps,
                bn_momentum, loss_code, eps, l2, opt_code, state, alpha, h0, h1, h2, t0, x_buf,
                y_buf, z_buf, a_buf, h_buf, s_buf, d_buf, J, scratch, grad_norm_sum,
                delta_abs_sum):
    """Train one epoch over the samples in ``order``, batch by batch, updating theta (and the
    running statistics of batch normalisation in ``stats``) in place. Targets are the rows of
    Y, or, when ``labels`` is not empty, one-hot rows of those class labels (Y is then unused),
    built per batch so that no one-hot copy of the data set exists.

    For each batch: gather rows (or, for consecutive rows, read them in place), forward_pass
    (batch statistics), loss, output delta, backward_pass, optimizer step. With batch
    normalisation, a last batch of one sample is left out (batch statistics need two). Buffers
    hold one batch of every layer; ``scratch`` is the three matrix kernels', sized for the
    largest layer. Returns (sum over the samples trained on of J + l2/2 sum ||W||^2, number of
    optimizer steps taken, number of samples trained on);
    adds each batch's ||dE/dW(l)|| to grad_norm_sum[l] and sum |delta(l)| to delta_abs_sum[l].
    """
    n_samples, n_features = X.shape
    n_layers = layout.shape[0]
    n_outputs = layout[n_layers - 1, N_OUT]
    use_labels = labels.shape[0] > 0
    has_bn = False
    for l in range(n_layers):
        has_bn = has_bn or layout[l, BN_OFF] >= 0
    total = 0.0
    t = t0
    n_used = 0
    for start in range(0, n_samples, batch_size):
        nb = min(batch_size, n_samples - start)
        if nb == 1 and has_bn:
            break
        n_used += nb
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

        forward_pass(Xb, theta, layout, stats, bn_eps, bn_momentum, z_buf, a_buf, h_buf, s_buf,
                     scratch)

        # loss of this batch, at the weights it saw
        out_code = layout[n_layers - 1, CODE]
        out_offset = _offset(layout, nb, n_layers - 1)
        Z_out = matrix(z_buf, out_offset, nb, n_outputs)
        A_out = matrix(a_buf, out_offset, nb, n_outputs)
        Jb = J[:nb]
        sample_losses(Z_out, A_out, Yb, out_code, loss_code, eps, Jb)
        for r in range(nb):
            total += Jb[r]
        if l2 > 0:
            sum_sq = 0.0
            for l in range(n_layers):
                W, _ = _layer(theta, layout, l)
                sum_sq += _sum_of_squares(W.ravel())
            total += nb * 0.5 * l2 * sum_sq

        output_delta(Z_out, A_out, Yb, out_code, loss_code, eps,
                     matrix(d_buf, out_offset, nb, n_outputs))
        backward_pass(Xb, theta, grad, mask, layout, l2, z_buf, a_buf, h_buf, s_buf, d_buf,
                      scratch, grad_norm_sum, delta_abs_sum)

        t += 1
        optimizer_update(opt_code, theta, grad, state, alpha, h0, h1, h2, t,
                         theta.shape[0] >= UPDATE_PARALLEL_MIN)
    return total, t - t0, n_used
