"""Batch normalisation of a layer's pre-activations, per neuron i over the samples k of a batch:
z_hat_ki = (z_ki - mu_i) / sqrt(var_i + eps), y_ki = gamma_i z_hat_ki + beta_i.

Every kernel owns blocks of neurons (columns of the (n_samples, width) row-major arrays) and
loops over the samples inside the owner, so a neuron's sums have one owner and one order: the
results do not depend on the thread count. The inner loop runs along a row's block of
contiguous neurons, so it vectorises, and the block's rows stay in L1 between passes.
"""

import numpy as np
from numba import prange

from ._jit import helper, kernel, ordered_part, part

# As in torch.nn.BatchNorm1d.
EPS = 1e-5
MOMENTUM = 0.1

# Neurons per owner: a block's 64 columns of 128 float32 rows (32 KiB) stay in L1 over the
# three passes. Its loops index slices from 0: Numba's negative-index check on a signed index
# that starts at i0 stopped LLVM vectorising them (a column sum over 128x256 float32: 24 us
# indexed from i0, 3.6 us on slices; blocks of 16: 8 us). The block size changes no result:
# each neuron's sums run over k in order whatever the blocks.
BLOCK = 64

_NO_BIAS = np.bool_(False)  # a NumPy bool: a Python constant would compile train_columns twice


@ordered_part
def move_running(running_mean, running_var, mean, squares, n, momentum):
    """The running averages of a block of neurons: mu <- (1 - momentum) mu + momentum mean_i,
    var <- (1 - momentum) var + momentum (squares_i / n) n / (n - 1), the batch's unbiased
    variance. Without fastmath: reassociated (or contracted), this expression was computed
    another way in the epoch driver's copy of the forward kernel than in the kernel alone, and
    a float64 running variance differed in its last bit between the driver and Python (a CI
    run with two test processes)."""
    for i in range(mean.shape[0]):
        var = squares[i] / n
        running_mean[i] = (1 - momentum) * running_mean[i] + momentum * mean[i]
        running_var[i] = (1 - momentum) * running_var[i] + momentum * var * n / (n - 1)


@part
def train_columns(i0, i1, Z, b, has_bias, gamma, beta, eps, momentum, update_running,
                  running_mean, running_var, Z_hat, mean, inv_std):
    """batchnorm_train for the neurons i0 <= i < i1 (at most BLOCK of them, so that their
    columns stay in L1 over the passes), with ``has_bias`` z_ki += b_i first, in a pass of its
    own, as forward_layer adds it."""
    n = Z.shape[0]
    m, s, g, bt = mean[i0:i1], inv_std[i0:i1], gamma[i0:i1], beta[i0:i1]
    rm, rv = running_mean[i0:i1], running_var[i0:i1]
    for i in range(i1 - i0):
        m[i] = 0
        s[i] = 0
    if has_bias:  # a pass of its own: in the sums' loop, reassociation may add b to m instead
        bias = b[i0:i1]
        for k in range(n):
            z = Z[k, i0:i1]
            for i in range(i1 - i0):
                z[i] += bias[i]
    for k in range(n):
        z = Z[k, i0:i1]
        for i in range(i1 - i0):
            m[i] += z[i]
    for i in range(i1 - i0):
        m[i] /= n
    # Two passes (mean, then squared deviations): no cancellation when |mu| >> sigma.
    for k in range(n):
        z = Z[k, i0:i1]
        for i in range(i1 - i0):
            d = z[i] - m[i]
            s[i] += d * d
    if update_running:
        move_running(rm, rv, m, s, n, momentum)
    for i in range(i1 - i0):
        s[i] = 1 / np.sqrt(s[i] / n + eps)
    for k in range(n):
        z, z_hat = Z[k, i0:i1], Z_hat[k, i0:i1]
        for i in range(i1 - i0):
            h = (z[i] - m[i]) * s[i]
            z_hat[i] = h
            z[i] = g[i] * h + bt[i]


@kernel
def batchnorm_train(Z, gamma, beta, eps, momentum, update_running, running_mean, running_var,
                    Z_hat, mean, inv_std, parallel):
    """Training mode: mu_i = mean_k z_ki, var_i = mean_k (z_ki - mu_i)^2 (biased), then
    z_hat_ki = (z_ki - mu_i) / sqrt(var_i + eps) and z_ki <- gamma_i z_hat_ki + beta_i.

    Z, Z_hat: (n >= 2, width); gamma, beta, mean, inv_std, running_*: (width,). Writes Z (in
    place), Z_hat, mean and inv_std = 1 / sqrt(var + eps); with ``update_running``, also
    running <- (1 - momentum) running + momentum batch (var unbiased, n / (n - 1)). Parallel
    over blocks of 64 neurons.
    """
    n_blocks = (Z.shape[1] + BLOCK - 1) // BLOCK
    if parallel is not None and parallel:
        for block in prange(n_blocks):
            i0 = np.int64(block) * BLOCK
            train_columns(i0, min(i0 + BLOCK, Z.shape[1]), Z, gamma, _NO_BIAS, gamma, beta, eps,
                          momentum, update_running, running_mean, running_var, Z_hat, mean,
                          inv_std)
    else:
        for block in range(n_blocks):
            i0 = block * BLOCK
            train_columns(i0, min(i0 + BLOCK, Z.shape[1]), Z, gamma, _NO_BIAS, gamma, beta, eps,
                          momentum, update_running, running_mean, running_var, Z_hat, mean,
                          inv_std)


@helper
def _inference_row(k, Z, gamma, beta, eps, running_mean, running_var):
    for i in range(Z.shape[1]):
        Z[k, i] = gamma[i] * ((Z[k, i] - running_mean[i]) / np.sqrt(running_var[i] + eps)) + beta[i]


@kernel
def batchnorm_inference(Z, gamma, beta, eps, running_mean, running_var, parallel):
    """Inference mode: z_ki <- gamma_i (z_ki - running_mean_i) / sqrt(running_var_i + eps) + beta_i.

    Z: (n, width), written in place; the rest (width,). No sums over samples, so each row is
    independent: parallel over samples k.
    """
    if parallel is not None and parallel:
        for k in prange(Z.shape[0]):
            _inference_row(k, Z, gamma, beta, eps, running_mean, running_var)
    else:
        for k in range(Z.shape[0]):
            _inference_row(k, Z, gamma, beta, eps, running_mean, running_var)


@part
def _backward_block(block, delta, Z_hat, gamma, inv_std, dgamma, dbeta, delta_lin):
    n, width = delta.shape
    i0 = block * BLOCK
    i1 = min(i0 + BLOCK, width)
    dg, db, g, s = dgamma[i0:i1], dbeta[i0:i1], gamma[i0:i1], inv_std[i0:i1]
    for i in range(i1 - i0):
        dg[i] = 0
        db[i] = 0
    for k in range(n):
        d, z_hat = delta[k, i0:i1], Z_hat[k, i0:i1]
        for i in range(i1 - i0):
            dg[i] += d[i] * z_hat[i]
            db[i] += d[i]
    for i in range(i1 - i0):
        dg[i] /= n
        db[i] /= n
    for k in range(n):
        d, z_hat, out = delta[k, i0:i1], Z_hat[k, i0:i1], delta_lin[k, i0:i1]
        for i in range(i1 - i0):
            out[i] = g[i] * s[i] * (d[i] - db[i] - z_hat[i] * dg[i])


@kernel
def batchnorm_backward(delta, Z_hat, gamma, inv_std, dgamma, dbeta, delta_lin, parallel):
    """dE/dgamma_i = mean_k delta_ki z_hat_ki, dE/dbeta_i = mean_k delta_ki, and the delta of
    the normalised input:
    delta_lin_ki = gamma_i inv_std_i (delta_ki - dE/dbeta_i - z_hat_ki dE/dgamma_i).

    delta (of y), Z_hat, delta_lin: (n, width); the rest (width,). Writes dgamma, dbeta and
    delta_lin (which may be Z_hat itself: each element is read before it is written). Parallel
    over blocks of 64 neurons.
    """
    n_blocks = (delta.shape[1] + BLOCK - 1) // BLOCK
    if parallel is not None and parallel:
        for block in prange(n_blocks):
            _backward_block(np.int64(block), delta, Z_hat, gamma, inv_std, dgamma, dbeta, delta_lin)
    else:
        for block in range(n_blocks):
            _backward_block(block, delta, Z_hat, gamma, inv_std, dgamma, dbeta, delta_lin)
