"""One epoch of mini-batch training in one compiled call.

The driver runs serially and calls the layer kernels, each on the thread pool or not by the
amount of work (the same cut-off as a call from Python), so a batch needs no Python at all.

Parameters live in one flat vector ``theta``: for each layer l, W(l) row-major, then b(l) if
the layer has a bias. ``layout[l]`` holds (n_in, n_out, w_offset, b_offset or -1, activation
code, has_mask). Gradients, masks and optimizer state share that layout, so each optimizer
updates every parameter in one loop.
"""

import numpy as np

from ._jit import PARALLEL_MIN_WORK, jit
from .deltas import hidden_delta, output_delta
from .forward import forward_layer
from .gradients import weight_gradients
from .losses import sample_losses
from .optimizers import (
    ADAGRAD_CODE, ADAM_CODE, MOMENTUM_CODE, NESTEROV_CODE, RMSPROP_CODE, SGD_CODE,
    UPDATE_PARALLEL_MIN,
    adagrad_update, adam_update, momentum_update, rmsprop_update, sgd_update,
)

N_IN, N_OUT, W_OFF, B_OFF, CODE, HAS_MASK = range(6)

serial_driver = jit()


@serial_driver
def _layer(theta, layout, l):
    n_in, n_out, w_off, b_off = layout[l, N_IN], layout[l, N_OUT], layout[l, W_OFF], layout[l, B_OFF]
    W = theta[w_off:w_off + n_out * n_in].reshape((n_out, n_in))
    b = theta[b_off:b_off + n_out] if b_off >= 0 else theta[0:0]
    return W, b


@serial_driver
def _rows(buffer, offset, n_rows, width):
    return buffer[offset:offset + n_rows * width].reshape((n_rows, width))


@serial_driver
def _sum_of_squares(a):
    """sum_p a_p^2 over a flat array, accumulated in a local (vectorised) float64."""
    total = 0.0
    for p in range(a.shape[0]):
        total += a[p] * a[p]
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
def _one_hot(labels, order, start, rows):
    """rows[r, :] = the one-hot row of class labels[order[start + r]]."""
    for r in range(rows.shape[0]):
        for i in range(rows.shape[1]):
            rows[r, i] = 0
        rows[r, labels[order[start + r]]] = 1


@serial_driver
def _optimizer_step(opt_code, theta, grad, state, alpha, h0, h1, h2, t):
    """One optimizer update of every parameter; h0..h2 are the optimizer's hyperparameters."""
    parallel = theta.shape[0] >= UPDATE_PARALLEL_MIN
    if opt_code == SGD_CODE:
        sgd_update(theta, grad, alpha, parallel)
    elif opt_code == MOMENTUM_CODE or opt_code == NESTEROV_CODE:
        momentum_update(theta, grad, state[0], alpha, h0, opt_code == NESTEROV_CODE, parallel)
    elif opt_code == ADAGRAD_CODE:
        adagrad_update(theta, grad, state[0], alpha, h0, parallel)
    elif opt_code == RMSPROP_CODE:
        rmsprop_update(theta, grad, state[0], alpha, h0, h1, parallel)
    elif opt_code == ADAM_CODE:
        adam_update(theta, grad, state[0], state[1], alpha, h0, h1, h2, t, parallel)


@serial_driver
def train_epoch(X, Y, labels, order, batch_size, theta, grad, mask, layout, loss_code, eps, l2,
                opt_code, state, alpha, h0, h1, h2, t0, x_buf, y_buf, z_buf, a_buf, d_buf, J,
                scratch, grad_norm_sum, delta_abs_sum):
    """Train one epoch over the samples in ``order``, batch by batch, updating theta in place.
    Targets are the rows of Y, or, when ``labels`` is not empty, one-hot rows of those class
    labels (Y is then unused), built per batch so that no one-hot copy of the data set exists.

    For each batch: gather rows, forward (z_i = sum_j w_ij a_j + b_i, a_i = f(z_i)), output
    delta, delta rule, gradients (+ l2 w_ij), optimizer step. Buffers hold one batch of every
    layer; ``scratch`` is the gradient kernel's, sized for the widest layer. Returns (sum over samples of J + l2/2 sum ||W||^2, number of optimizer steps taken);
    adds each batch's ||dE/dW(l)|| to grad_norm_sum[l] and sum |delta(l)| to delta_abs_sum[l].
    """
    n_samples, n_features = X.shape
    n_outputs = layout[layout.shape[0] - 1, N_OUT]
    use_labels = labels.shape[0] > 0
    n_layers = layout.shape[0]
    total = 0.0
    t = t0
    for start in range(0, n_samples, batch_size):
        nb = min(batch_size, n_samples - start)
        Xb = _rows(x_buf, 0, nb, n_features)
        Yb = _rows(y_buf, 0, nb, n_outputs)
        _gather(X, order, start, Xb)
        if use_labels:
            _one_hot(labels, order, start, Yb)
        else:
            _gather(Y, order, start, Yb)

        # forward pass, layer by layer; layer l's rows start at nb * (sum of earlier widths)
        A_prev = Xb
        offset = 0
        for l in range(n_layers):
            W, b = _layer(theta, layout, l)
            n_out = layout[l, N_OUT]
            Z = _rows(z_buf, offset, nb, n_out)
            A = _rows(a_buf, offset, nb, n_out)
            forward_layer(A_prev, W, b, layout[l, B_OFF] >= 0, layout[l, CODE], Z, A,
                          nb * W.size >= PARALLEL_MIN_WORK)
            A_prev = A
            offset += nb * n_out

        # loss of this batch, at the weights it saw
        out_code = layout[n_layers - 1, CODE]
        offset -= nb * n_outputs
        Z_out = _rows(z_buf, offset, nb, n_outputs)
        A_out = _rows(a_buf, offset, nb, n_outputs)
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

        # backward pass: output delta, then per layer gradients and the delta rule
        delta = _rows(d_buf, offset, nb, n_outputs)
        output_delta(Z_out, A_out, Yb, out_code, loss_code, eps, delta)
        for l in range(n_layers - 1, -1, -1):
            W, b = _layer(theta, layout, l)
            dW, db = _layer(grad, layout, l)
            M, _ = _layer(mask, layout, l)
            n_in = layout[l, N_IN]
            if l > 0:
                prev_offset = offset - nb * n_in
                A_prev = _rows(a_buf, prev_offset, nb, n_in)
            else:
                prev_offset = 0
                A_prev = Xb
            parallel = nb * W.size >= PARALLEL_MIN_WORK
            weight_gradients(delta, A_prev, W, l2, M, layout[l, HAS_MASK] == 1, dW, db,
                             layout[l, B_OFF] >= 0, parallel, scratch)
            grad_norm_sum[l] += np.sqrt(_sum_of_squares(dW.ravel()))
            delta_abs_sum[l] += _sum_of_abs(delta.ravel())
            if l > 0:
                Z_prev = _rows(z_buf, prev_offset, nb, n_in)
                delta_prev = _rows(d_buf, prev_offset, nb, n_in)
                hidden_delta(delta, W, Z_prev, A_prev, layout[l - 1, CODE], delta_prev, parallel)
                delta = delta_prev
                offset = prev_offset

        t += 1
        _optimizer_step(opt_code, theta, grad, state, alpha, h0, h1, h2, t)
    return total, t - t0
