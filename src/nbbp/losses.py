"""Losses J(o, y) for one sample and dJ/do_i; E is the mean of J over the batch.

The matched pairs (sigmoid with log_loss, softmax with cross_entropy) are evaluated from the
logits z, so an output of exactly 0 or 1 still gives a finite loss. Other pairs clip o to
[eps, 1 - eps] with eps the dtype's machine epsilon.
"""

import numpy as np

from ._jit import helper, part
from .activations import SIGMOID, SOFTMAX

SQUARED_ERROR, LOG_LOSS, CROSS_ENTROPY, POISSON = range(4)

LOSSES = {"squared_error": SQUARED_ERROR, "log_loss": LOG_LOSS, "cross_entropy": CROSS_ENTROPY,
          "poisson": POISSON}

# Output activations each loss accepts: log_loss and cross_entropy need outputs in (0, 1);
# poisson, the half Poisson deviance J = sum_i y_i log(y_i / o_i) - y_i + o_i, takes o = exp(z)
# (its log link: J is then computed from z, and dJ/dz = o - y).
VALID_OUTPUTS = {
    "squared_error": ("identity", "sigmoid", "tanh", "relu", "leaky_relu", "softmax", "exp"),
    "log_loss": ("sigmoid", "softmax"),
    "cross_entropy": ("softmax", "sigmoid"),
    "poisson": ("exp",),
}


@helper
def _clip(o, eps):
    return min(max(o, eps), 1 - eps)


@helper
def loss_derivative(O, Y, k, loss_code, eps, G):
    """g_ki = dJ/do_ki for sample k, written into row k of G."""
    for i in range(O.shape[1]):
        if loss_code == SQUARED_ERROR:
            G[k, i] = O[k, i] - Y[k, i]
        elif loss_code == LOG_LOSS:
            o_c = _clip(O[k, i], eps)
            G[k, i] = (o_c - Y[k, i]) / (o_c * (1 - o_c))
        elif loss_code == POISSON:
            G[k, i] = 1 - Y[k, i] / max(O[k, i], eps)
        else:
            G[k, i] = -Y[k, i] / _clip(O[k, i], eps)


# One sample's loss is O(n_out) work: no layer of a network makes this worth threads, and a
# serial kernel compiles in 0.7 s against 2.2 s for a parallel one (first-fit compile time).
# One loop over the samples per pair of codes, as activations.activate_rows: with the switch
# inside one per-sample loop, W1's 32x10 softmax cross-entropy took 1.27 us a batch, against
# 0.46 us with it outside (Intel Xeon, AVX-512, 1 thread).
@part
def sample_losses(Z, O, Y, out_code, loss_code, eps, J):
    """J_k = J(o_k, y_k) for every sample k; E = mean_k J_k.

    Z, O, Y: (n_samples, n_out), O the output layer's f(Z); J: (n_samples,), written in place.
    The matched pairs (sigmoid with log_loss, softmax with cross_entropy) are computed from the
    logits z. Serial over samples k.
    """
    n_samples, n = O.shape
    if loss_code == SQUARED_ERROR:
        for k in range(n_samples):
            J_k = 0.0
            for i in range(n):
                J_k += 0.5 * (O[k, i] - Y[k, i]) ** 2
            J[k] = J_k
    elif loss_code == LOG_LOSS and out_code == SIGMOID:
        # -y log s(z) - (1 - y) log(1 - s(z)) = max(z, 0) - z y + log(1 + exp(-|z|))
        for k in range(n_samples):
            J_k = 0.0
            for i in range(n):
                J_k += max(Z[k, i], 0.0) - Z[k, i] * Y[k, i] + np.log1p(np.exp(-abs(Z[k, i])))
            J[k] = J_k
    elif loss_code == LOG_LOSS:
        for k in range(n_samples):
            J_k = 0.0
            for i in range(n):
                o_c = _clip(O[k, i], eps)
                J_k -= Y[k, i] * np.log(o_c) + (1 - Y[k, i]) * np.log(1 - o_c)
            J[k] = J_k
    elif loss_code == POISSON:  # o = exp(z): y log(y / o) = y log y - y z
        for k in range(n_samples):
            J_k = 0.0
            for i in range(n):
                y = Y[k, i]
                J_k += (y * np.log(y) if y > 0 else 0.0) - y * Z[k, i] - y + O[k, i]
            J[k] = J_k
    elif out_code == SOFTMAX:
        # -sum_i y_i log softmax(z)_i = sum_i y_i (logsumexp(z) - z_i), where
        # logsumexp(z) = z_max + log sum_i exp(z_i - z_max) = z_max - log o_max: the largest
        # output is exp(0) / sum_i exp(z_i - z_max), and at least 1/n, so its log is finite.
        # One log a sample instead of n exps (1.4 of W1's 16 us a batch).
        for k in range(n_samples):
            z_max, o_max = Z[k, 0], O[k, 0]
            for i in range(1, n):
                z_max = max(z_max, Z[k, i])
                o_max = max(o_max, O[k, i])
            lse = z_max - np.log(o_max)
            J_k = 0.0
            for i in range(n):
                J_k += Y[k, i] * (lse - Z[k, i])
            J[k] = J_k
    else:  # cross_entropy on sigmoid outputs
        for k in range(n_samples):
            J_k = 0.0
            for i in range(n):
                J_k -= Y[k, i] * np.log(_clip(O[k, i], eps))
            J[k] = J_k
