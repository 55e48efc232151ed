"""Batch normalisation of a layer's pre-activations, per neuron i over the samples k of a batch:
z_hat_ki = (z_ki - mu_i) / sqrt(var_i + eps), y_ki = gamma_i z_hat_ki + beta_i.

Every kernel owns blocks of neurons (columns of the (n_samples, width) row-major arrays) and
loops over the samples inside the owner, so a neuron's sums have one owner and one order: the
results do not depend on the thread count. The inner loop runs along a row's block of
contiguous neurons, so it vectorises, and the block's rows (64 bytes each in float32) stay in L1.
"""

import numpy as np
from numba import prange

from ._jit import helper, kernel

# As in torch.nn.BatchNorm1d.
EPS = 1e-5
MOMENTUM = 0.1

# Neurons per owner: 16 float32 are one 64-byte cache line of a row.
BLOCK = 16


@helper
def _train_block(block, Z, gamma, beta, eps, momentum, update_running, running_mean,
                 running_var, Z_hat, mean, inv_std):
    n, width = Z.shape
    i0 = block * BLOCK
    i1 = min(i0 + BLOCK, width)
    for i in range(i0, i1):
        mean[i] = 0
        inv_std[i] = 0
    for k in range(n):
        for i in range(i0, i1):
            mean[i] += Z[k, i]
    for i in range(i0, i1):
        mean[i] /= n
    # Two passes (mean, then squared deviations): no cancellation when |mu| >> sigma.
    for k in range(n):
        for i in range(i0, i1):
            d = Z[k, i] - mean[i]
            inv_std[i] += d * d
    for i in range(i0, i1):
        var = inv_std[i] / n
        if update_running:
            running_mean[i] = (1 - momentum) * running_mean[i] + momentum * mean[i]
            running_var[i] = (1 - momentum) * running_var[i] + momentum * var * n / (n - 1)
        inv_std[i] = 1 / np.sqrt(var + eps)
    for k in range(n):
        for i in range(i0, i1):
            z_hat = (Z[k, i] - mean[i]) * inv_std[i]
            Z_hat[k, i] = z_hat
            Z[k, i] = gamma[i] * z_hat + beta[i]


@kernel
def batchnorm_train(Z, gamma, beta, eps, momentum, update_running, running_mean, running_var,
                    Z_hat, mean, inv_std, parallel):
    """Training mode: mu_i = mean_k z_ki, var_i = mean_k (z_ki - mu_i)^2 (biased), then
    z_hat_ki = (z_ki - mu_i) / sqrt(var_i + eps) and z_ki <- gamma_i z_hat_ki + beta_i.

    Z, Z_hat: (n >= 2, width); gamma, beta, mean, inv_std, running_*: (width,). Writes Z (in
    place), Z_hat, mean and inv_std = 1 / sqrt(var + eps); with ``update_running``, also
    running <- (1 - momentum) running + momentum batch (var unbiased, n / (n - 1)). Parallel
    over blocks of 16 neurons.
    """
    n_blocks = (Z.shape[1] + BLOCK - 1) // BLOCK
    if parallel:
        for block in prange(n_blocks):
            _train_block(block, Z, gamma, beta, eps, momentum, update_running, running_mean,
                         running_var, Z_hat, mean, inv_std)
    else:
        for block in range(n_blocks):
            _train_block(block, Z, gamma, beta, eps, momentum, update_running, running_mean,
                         running_var, Z_hat, mean, inv_std)


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
    if parallel:
        for k in prange(Z.shape[0]):
            _inference_row(k, Z, gamma, beta, eps, running_mean, running_var)
    else:
        for k in range(Z.shape[0]):
            _inference_row(k, Z, gamma, beta, eps, running_mean, running_var)


@helper
def _backward_block(block, delta, Z_hat, gamma, inv_std, dgamma, dbeta, delta_lin):
    n, width = delta.shape
    i0 = block * BLOCK
    i1 = min(i0 + BLOCK, width)
    for i in range(i0, i1):
        dgamma[i] = 0
        dbeta[i] = 0
    for k in range(n):
        for i in range(i0, i1):
            dgamma[i] += delta[k, i] * Z_hat[k, i]
            dbeta[i] += delta[k, i]
    for i in range(i0, i1):
        dgamma[i] /= n
        dbeta[i] /= n
    for k in range(n):
        for i in range(i0, i1):
            delta_lin[k, i] = gamma[i] * inv_std[i] * (delta[k, i] - dbeta[i] - Z_hat[k, i] * dgamma[i])


@kernel
def batchnorm_backward(delta, Z_hat, gamma, inv_std, dgamma, dbeta, delta_lin, parallel):
    """dE/dgamma_i = mean_k delta_ki z_hat_ki, dE/dbeta_i = mean_k delta_ki, and the delta of
    the normalised input: delta_lin_ki = gamma_i inv_std_i (delta_ki - dE/dbeta_i - z_hat_ki dE/dgamma_i).

    delta (of y), Z_hat, delta_lin: (n, width); the rest (width,). Writes dgamma, dbeta and
    delta_lin (which may be Z_hat itself: each element is read before it is written). Parallel
    over blocks of 16 neurons.
    """
    n_blocks = (delta.shape[1] + BLOCK - 1) // BLOCK
    if parallel:
        for block in prange(n_blocks):
            _backward_block(block, delta, Z_hat, gamma, inv_std, dgamma, dbeta, delta_lin)
    else:
        for block in range(n_blocks):
            _backward_block(block, delta, Z_hat, gamma, inv_std, dgamma, dbeta, delta_lin)
