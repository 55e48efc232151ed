"""Backpropagation in plain, vectorised NumPy: the oracle that nbbp's kernels are tested against.

Written for reading, and sharing no code with the compiled kernels (an oracle that reuses the
code it checks checks nothing). Shapes follow the kernels: a batch is (n_samples, n) with one
sample per row, and ``W[i, j]`` (shape (n_out, n_in)) connects neuron j of layer l-1 to neuron i
of layer l.

Conventions shared with the kernels by specification, not by code:

- sigmoid is evaluated through exp(-|z|), softmax subtracts the row maximum;
- leaky_relu has slope 0.01; at z = 0 the derivatives take the left value: relu'(0) = 0,
  leaky_relu'(0) = 0.01; relu(NaN) is NaN;
- sigmoid with log_loss and softmax with cross_entropy are evaluated from the logits z;
  every other pair clips o to [eps, 1 - eps], eps the dtype's machine epsilon;
- batch normalisation follows torch.nn.BatchNorm1d: eps 1e-5, biased batch variance for
  normalising, running averages with momentum 0.1 and the unbiased variance;
- a delta is n dE/dz for a batch of n samples (dJ_k/dz_k while samples do not interact), so
  that every gradient is a mean over the samples.

Batch-normalised and residual networks take two per-layer lists, ``batch_norm`` (None, or
(gamma, beta) for a normalised layer) and ``skips`` (None, or the index s of the activation
a(s) that joins that layer; a(0) is X), and the skips' form ``skip``: "activation" adds a(s)
to the pre-activation, a = f(z + a(s)), "identity" to the activation, a = a(s) + f(z).
"""

import numpy as np

LEAKY_RELU_SLOPE = 0.01
BN_EPS = 1e-5
BN_MOMENTUM = 0.1
MATCHED_PAIRS = {("identity", "squared_error"), ("sigmoid", "log_loss"),
                 ("softmax", "cross_entropy"), ("exp", "poisson")}


def sigmoid(z):
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def activation(name, z):
    """a = f(z) for a batch z of shape (n_samples, n)."""
    if name == "identity":
        return z.copy()
    if name == "sigmoid":
        return sigmoid(z)
    if name == "tanh":
        return np.tanh(z)
    if name == "relu":
        # max(z, 0), keeping NaN: np.maximum propagates it, and gives 0 for -inf
        return np.maximum(z, 0).astype(z.dtype)
    if name == "leaky_relu":
        return np.where(z > 0, z, LEAKY_RELU_SLOPE * z).astype(z.dtype)
    if name == "softmax":
        return softmax(z)
    if name == "exp":
        return np.exp(z)
    raise ValueError(f"unknown activation {name!r}")


def activation_derivative(name, z, a):
    """f'(z) element-wise, given z and a = f(z). Softmax has a Jacobian instead: see
    output_delta."""
    if name == "identity":
        return np.ones_like(z)
    if name == "sigmoid":
        return a * (1 - a)
    if name == "tanh":
        return 1 - a**2
    if name == "relu":
        return (z > 0).astype(z.dtype)
    if name == "leaky_relu":
        return np.where(z > 0, 1, LEAKY_RELU_SLOPE).astype(z.dtype)
    if name == "exp":
        return a
    raise ValueError(f"no element-wise derivative for activation {name!r}")


def dropout_multiplier(seed, step, layer, n_rows, width, threshold, dtype=np.float64):
    """The (n_rows, width) factors of inverted dropout for one layer of one batch: 0 where the
    unit's 32-bit hash is below ``threshold``, else 2^32 / (2^32 - threshold) = 1 / (1 - p).

    The hash of (seed, step, layer, row r, unit j): x -> mix(x ^ v) for v = step, layer, r,
    then j, starting from seed, where mix is SplitMix64's finaliser
    x ^= x >> 30; x *= 0xBF58476D1CE4E5B9; x ^= x >> 27; x *= 0x94D049BB133111EB; x ^= x >> 31
    in uint64 arithmetic; the hash is the top 32 bits."""
    def mix(x):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))

    with np.errstate(over="ignore"):
        x = mix(np.full(1, seed, dtype=np.uint64) ^ np.uint64(step))
        x = mix(x ^ np.uint64(layer))
        rows = mix(x ^ np.arange(n_rows, dtype=np.uint64))
        hashes = mix(rows[:, None] ^ np.arange(width, dtype=np.uint64)[None, :]) >> np.uint64(32)
    scale = np.dtype(dtype).type(2**32 / (2**32 - threshold))
    return np.where(hashes < np.uint64(threshold), np.dtype(dtype).type(0), scale)


def forward(weights, biases, X, activations, batch_norm=None, skips=None, running=None,
            skip="activation", dropout=None):
    """z(l) = a(l-1) W(l)^T + b(l), a(l) = f_l(z(l)) for every layer.

    With ``batch_norm``, a normalised layer's z is gamma z_hat + beta instead: batch statistics
    when ``running`` is None (training), else ``running[l] = (mean, var)`` (inference). With
    ``skips``, z(l) += a(skips[l]) after that, or a(l) = a(skips[l]) + f(z(l)) with
    skip="identity". ``dropout``, per layer None or the factors of dropout_multiplier,
    multiplies that layer's activations. Returns (zs, activations_out): zs[l] is the input
    of f in layer l+1, and activations_out[0] is X itself, activations_out[l + 1] the output of
    layer l+1.
    """
    L = len(weights)
    batch_norm = batch_norm or [None] * L
    skips = skips or [None] * L
    zs, a_list = [], [X]
    for l, (W, b, name) in enumerate(zip(weights, biases, activations)):
        z = a_list[-1] @ W.T
        if b is not None:
            z = z + b
        if batch_norm[l] is not None:
            gamma, beta = batch_norm[l]
            if running is None:
                z = batchnorm_forward(z, gamma, beta)[0]
            else:
                z = batchnorm_inference(z, gamma, beta, *running[l])
        joins_before_f = skips[l] is not None and skip == "activation"
        if joins_before_f:
            z = z + a_list[skips[l]]
        zs.append(z)
        a = activation(name, z)
        if skips[l] is not None and not joins_before_f:
            a = a + a_list[skips[l]]
        if dropout is not None and dropout[l] is not None:
            a = a * dropout[l]
        a_list.append(a)
    return zs, a_list


# ------------------------------------------------------------------------ batch normalisation
def batchnorm_forward(z, gamma, beta, eps=BN_EPS):
    """Training mode, per column i of z (n_samples, width): mu_i and var_i (biased) over the
    samples, z_hat = (z - mu) / sqrt(var + eps), y = gamma z_hat + beta. Returns
    (y, z_hat, mu, var)."""
    mu = z.mean(axis=0)
    var = ((z - mu) ** 2).mean(axis=0)
    z_hat = (z - mu) / np.sqrt(var + eps)
    return gamma * z_hat + beta, z_hat, mu, var


def batchnorm_inference(z, gamma, beta, running_mean, running_var, eps=BN_EPS):
    """Inference mode: y = gamma (z - running_mean) / sqrt(running_var + eps) + beta."""
    return gamma * ((z - running_mean) / np.sqrt(running_var + eps)) + beta


def running_update(running_mean, running_var, mu, var, n, momentum=BN_MOMENTUM):
    """The running averages after a training batch of n samples with batch mean mu and biased
    variance var: (1 - momentum) old + momentum new, with the unbiased variance var n / (n - 1)."""
    return ((1 - momentum) * running_mean + momentum * mu,
            (1 - momentum) * running_var + momentum * var * n / (n - 1))


def batchnorm_backward(delta_y, z, gamma, eps=BN_EPS):
    """Back through y = gamma z_hat + beta for a batch z (the layer's linear output), by the
    chain rule through each stage of the forward pass (Ioffe and Szegedy 2015, section 3):
    z_hat, then var, then mu, then z. ``delta_y`` is n dE/dy.

    Returns (delta_z, dE/dgamma, dE/dbeta), delta_z = n dE/dz.
    """
    n = z.shape[0]
    g = delta_y / n                                        # dE/dy
    mu = z.mean(axis=0)
    var = ((z - mu) ** 2).mean(axis=0)
    z_hat = (z - mu) / np.sqrt(var + eps)
    g_hat = g * gamma                                      # dE/dz_hat
    g_var = np.sum(g_hat * (z - mu), axis=0) * -0.5 * (var + eps) ** -1.5
    g_mu = np.sum(-g_hat / np.sqrt(var + eps), axis=0) + g_var * np.mean(-2 * (z - mu), axis=0)
    g_z = g_hat / np.sqrt(var + eps) + g_var * 2 * (z - mu) / n + g_mu / n
    return n * g_z, np.sum(g * z_hat, axis=0), np.sum(g, axis=0)


def _clipped(o):
    eps = np.finfo(o.dtype).eps
    return np.clip(o, eps, 1 - eps)


def sample_losses(z, o, y, output, loss):
    """J for every sample, shape (n_samples,)."""
    if loss == "squared_error":
        return 0.5 * np.sum((o - y) ** 2, axis=1)
    if loss == "log_loss":
        if output == "sigmoid":
            return np.sum(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z))), axis=1)
        oc = _clipped(o)
        return -np.sum(y * np.log(oc) + (1 - y) * np.log(1 - oc), axis=1)
    if loss == "poisson":  # half the Poisson deviance, y log(y / o) - y + o
        with np.errstate(divide="ignore", invalid="ignore"):
            y_log_ratio = np.where(y > 0, y * np.log(y / o), 0.0)
        return np.sum(y_log_ratio - y + o, axis=1)
    if loss == "cross_entropy":
        if output == "softmax":
            z_max = z.max(axis=1, keepdims=True)
            log_sum_exp = z_max + np.log(np.sum(np.exp(z - z_max), axis=1, keepdims=True))
            return np.sum(y * (log_sum_exp - z), axis=1)
        return -np.sum(y * np.log(_clipped(o)), axis=1)
    raise ValueError(f"unknown loss {loss!r}")


def loss(z, o, y, output, loss_name, sample_weight=None):
    """E = mean over samples of J, or with ``sample_weight`` sum_k w_k J_k / sum_k w_k."""
    return float(np.average(sample_losses(z, o, y, output, loss_name), weights=sample_weight))


def loss_derivative(o, y, loss):
    """dJ/do element-wise."""
    if loss == "squared_error":
        return o - y
    if loss == "log_loss":
        oc = _clipped(o)
        return (oc - y) / (oc * (1 - oc))
    if loss == "cross_entropy":
        return -y / _clipped(o)
    if loss == "poisson":
        return 1 - y / o
    raise ValueError(f"unknown loss {loss!r}")


def output_delta(z, o, y, output, loss):
    """delta = dJ/dz at the output layer."""
    if (output, loss) in MATCHED_PAIRS:
        return o - y
    g = loss_derivative(o, y, loss)
    if output == "softmax":
        # Jacobian of softmax: do_m/dz_i = o_m (1[m = i] - o_i)
        return o * (g - np.sum(g * o, axis=1, keepdims=True))
    return activation_derivative(output, z, o) * g


def hidden_delta(delta_next, W_next, z, a, name):
    """The delta rule: delta(l) = f'(z(l)) * (delta(l+1) W(l+1))."""
    return activation_derivative(name, z, a) * (delta_next @ W_next)


def gradients(delta, a_prev, mask=None, W=None, l2=0.0):
    """dE/dW = delta^T a_prev / n + l2 W (0 where mask is 0) and dE/db = mean of delta."""
    n = delta.shape[0]
    dW = delta.T @ a_prev / n
    if l2:
        dW = dW + l2 * W
    if mask is not None:
        dW = np.where(mask == 0, 0, dW).astype(dW.dtype)
    return dW, delta.mean(axis=0)


def backprop(weights, biases, masks, X, Y, activations, loss, l2=0.0, batch_norm=None,
             skips=None, skip="activation", sample_weight=None, dropout=None):
    """Gradients of E (+ l2/2 sum ||W||^2) for every layer: (list of dW, list of db, None where
    there is no bias); with ``batch_norm``, also (list of dE/dgamma, list of dE/dbeta), None
    where a layer is not normalised. Batch normalisation in training mode."""
    zs, a_list = forward(weights, biases, X, activations, batch_norm, skips, skip=skip,
                         dropout=dropout)
    return backward(weights, biases, masks, zs, a_list, Y, activations, loss, l2, batch_norm,
                    skips, skip, sample_weight, dropout)


def backward(weights, biases, masks, zs, a_list, Y, activations, loss, l2=0.0, batch_norm=None,
             skips=None, skip="activation", sample_weight=None, dropout=None):
    """The backward half of ``backprop``, from the (zs, a_list) that ``forward`` returned for the
    same parameters and batch (training mode): (list of dW, list of db, None where there is no
    bias), and with ``batch_norm`` (list of dE/dgamma, list of dE/dbeta).

    A residual connection a(s) -> z(t) adds delta(t) to dE/da(s): delta(s) = f'(z(s))
    (delta(s+1) W(s+1) + delta(t)). In the identity form, a(t) = a(s) + f(z(t)), it adds
    dE/da(t) instead, which has no f'(z(t)) in it.

    ``sample_weight`` w makes E = sum_k w_k J_k / sum_k w_k: sample k's output delta is
    multiplied by n w_k / sum_k w_k, so that every gradient stays a mean over the samples.
    ``dropout`` (as in forward) multiplies dE/da of a layer by its factors: a dropped unit
    passes nothing back.
    """
    identity_form = skip == "identity"
    L = len(weights)
    norm = batch_norm or [None] * L
    skips = skips or [None] * L
    deltas = [None] * L                                    # deltas[l] = n dE/dz of layer l+1
    dE_das = [None] * L                                    # dE_das[l] = n dE/da of layer l+1
    deltas[-1] = output_delta(zs[-1], a_list[-1], Y, activations[-1], loss)
    if sample_weight is not None:
        w = np.asarray(sample_weight, dtype=np.float64)
        deltas[-1] = deltas[-1] * (len(w) * w / w.sum())[:, None].astype(deltas[-1].dtype)
    dWs, dbs, dgammas, dbetas = [None] * L, [None] * L, [None] * L, [None] * L
    for l in reversed(range(L)):
        delta = deltas[l]
        if norm[l] is not None:
            z_linear = a_list[l] @ weights[l].T + (0 if biases[l] is None else biases[l])
            delta, dgammas[l], dbetas[l] = batchnorm_backward(delta, z_linear, norm[l][0])
        mask = None if masks is None else masks[l]
        dWs[l], db = gradients(delta, a_list[l], mask, weights[l], l2)
        dbs[l] = db if biases[l] is not None else None
        if l > 0:
            dE_da = delta @ weights[l]                     # n dE/da(l), through layer l+1
            for t in range(l, L):
                if skips[t] == l:                          # and through each skip out of a(l)
                    dE_da = dE_da + (dE_das[t] if identity_form else deltas[t])
            dropped = dropout is not None and dropout[l - 1] is not None
            if dropped:
                dE_da = dE_da * dropout[l - 1]
            dE_das[l - 1] = dE_da
            f_z = a_list[l]                                # f(z(l)) ...
            if dropped or (identity_form and skips[l - 1] is not None):  # ... a(l) holds more
                f_z = activation(activations[l - 1], zs[l - 1])
            deltas[l - 1] = activation_derivative(activations[l - 1], zs[l - 1], f_z) * dE_da
    if batch_norm is None:
        return dWs, dbs
    return dWs, dbs, dgammas, dbetas


# ------------------------------------------------------------------------------ optimizers
# Each returns the new parameter array and the new state, as in torch.optim.

def sgd_update(param, grad, learning_rate):
    """w <- w - alpha g."""
    return param - learning_rate * grad


def momentum_update(param, grad, velocity, learning_rate, momentum, nesterov=False):
    """v <- mu v + g; w <- w - alpha v, or w - alpha (g + mu v) with nesterov."""
    velocity = momentum * velocity + grad
    step = grad + momentum * velocity if nesterov else velocity
    return param - learning_rate * step, velocity


def adagrad_update(param, grad, sum_sq, learning_rate, eps):
    """s <- s + g^2; w <- w - alpha g / (sqrt(s) + eps)."""
    sum_sq = sum_sq + grad**2
    return param - learning_rate * grad / (np.sqrt(sum_sq) + eps), sum_sq


def rmsprop_update(param, grad, mean_sq, learning_rate, rho, eps):
    """s <- rho s + (1 - rho) g^2; w <- w - alpha g / (sqrt(s) + eps)."""
    mean_sq = rho * mean_sq + (1 - rho) * grad**2
    return param - learning_rate * grad / (np.sqrt(mean_sq) + eps), mean_sq


def adam_update(param, grad, m, v, learning_rate, beta1, beta2, eps, t):
    """m <- b1 m + (1 - b1) g; v <- b2 v + (1 - b2) g^2;
    w <- w - alpha (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)."""
    m = beta1 * m + (1 - beta1) * grad
    v = beta2 * v + (1 - beta2) * grad**2
    m_hat = m / (1 - beta1**t)
    v_hat = v / (1 - beta2**t)
    return param - learning_rate * m_hat / (np.sqrt(v_hat) + eps), m, v


def adamw_update(param, grad, m, v, learning_rate, beta1, beta2, eps, weight_decay, t):
    """w <- (1 - alpha lambda) w, then Adam's step (decoupled weight decay)."""
    return adam_update((1 - learning_rate * weight_decay) * param, grad, m, v, learning_rate,
                       beta1, beta2, eps, t)


class _ReferenceOptimizer:
    """Per-array optimizer state, kept in a dict keyed by the parameter's position."""

    def __init__(self, name, learning_rate, momentum=0.9, rho=0.99, beta1=0.9, beta2=0.999,
                 eps=None, weight_decay=0.01):
        self.name, self.lr = name, learning_rate
        self.momentum, self.rho, self.beta1, self.beta2 = momentum, rho, beta1, beta2
        self.weight_decay = weight_decay
        default_eps = {"adagrad": 1e-10, "rmsprop": 1e-8, "adam": 1e-8,
                       "adamw": 1e-8}.get(name, 0.0)
        self.eps = default_eps if eps is None else eps
        self.state = {}
        self.t = 0

    def update(self, key, param, grad):
        if self.name == "sgd":
            return sgd_update(param, grad, self.lr)
        if self.name in ("momentum", "nesterov"):
            v = self.state.get(key, np.zeros_like(param))
            param, self.state[key] = momentum_update(param, grad, v, self.lr, self.momentum,
                                                     nesterov=self.name == "nesterov")
            return param
        if self.name == "adagrad":
            s = self.state.get(key, np.zeros_like(param))
            param, self.state[key] = adagrad_update(param, grad, s, self.lr, self.eps)
            return param
        if self.name == "rmsprop":
            s = self.state.get(key, np.zeros_like(param))
            param, self.state[key] = rmsprop_update(param, grad, s, self.lr, self.rho, self.eps)
            return param
        if self.name == "adam":
            m, v = self.state.get(key, (np.zeros_like(param), np.zeros_like(param)))
            param, m, v = adam_update(param, grad, m, v, self.lr, self.beta1, self.beta2, self.eps,
                                      self.t)
            self.state[key] = (m, v)
            return param
        if self.name == "adamw":
            m, v = self.state.get(key, (np.zeros_like(param), np.zeros_like(param)))
            param, m, v = adamw_update(param, grad, m, v, self.lr, self.beta1, self.beta2,
                                       self.eps, self.weight_decay, self.t)
            self.state[key] = (m, v)
            return param
        raise ValueError(f"unknown optimizer {self.name!r}")


def clip_by_global_norm(grads, max_norm):
    """Every gradient array times min(1, max_norm / (||all of them|| + 1e-6)), as
    torch.nn.utils.clip_grad_norm_; returns (the arrays, the norm before clipping)."""
    present = [g for g in grads if g is not None]
    norm = np.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in present))
    coef = min(1.0, max_norm / (norm + 1e-6))
    return [None if g is None else g * coef for g in grads], norm


def train(weights, biases, masks, X, Y, activations, loss_name, *, epochs, batch_size,
          learning_rate, optimizer="sgd", l2=0.0, orders=None, batch_norm=None, skips=None,
          running=None, clip_norm=None, skip="activation", sample_weight=None, dropout=None,
          dropout_seeds=None, **hyperparameters):
    """Mini-batch gradient descent, one batch at a time in Python.

    ``orders[e]`` is the sample order of epoch e (default: 0..n-1); the last partial batch is
    used, but for a last batch of one sample with batch normalisation. ``hyperparameters`` are
    momentum, rho, beta1, beta2, eps, weight_decay; ``clip_norm`` clips each batch's gradients
    by their global norm (clip_by_global_norm). ``running`` holds the starting running
    (mean, var) of the normalised layers (default 0 and 1). ``sample_weight`` weighs each
    batch's samples (a batch whose weights sum to 0 takes no step), and the epoch's loss is
    then the weighted mean. ``dropout`` (a 32-bit threshold per layer, 0 for none) drops
    activations with the masks of dropout_multiplier for (dropout_seeds[epoch], step, layer),
    step counting the optimizer steps before the batch. Returns (weights, biases, epoch
    losses), where an epoch's loss is the batch losses' mean weighted by batch size, each including
    l2/2 sum ||W||^2 at the weights that batch saw; with ``batch_norm``, (weights, biases,
    epoch losses, batch_norm, running) with the trained (gamma, beta) and running averages.
    """
    L = len(weights)
    weights = [W.copy() for W in weights]
    biases = [None if b is None else b.copy() for b in biases]
    norm = [None if p is None else (p[0].copy(), p[1].copy()) for p in batch_norm or [None] * L]
    if running is None:
        running = [None if p is None else (np.zeros_like(p[0]), np.ones_like(p[0])) for p in norm]
    running = [None if r is None else (r[0].copy(), r[1].copy()) for r in running]
    opt = _ReferenceOptimizer(optimizer, learning_rate, **hyperparameters)
    n = X.shape[0]
    epoch_losses = []
    for e in range(epochs):
        order = np.arange(n) if orders is None else orders[e]
        total = 0.0
        n_used = 0
        for start in range(0, n, batch_size):
            rows = order[start:start + batch_size]
            if len(rows) == 1 and batch_norm is not None:
                break
            Xb, Yb = X[rows], Y[rows]
            wb = None if sample_weight is None else np.asarray(sample_weight)[rows]
            if wb is not None and wb.sum() == 0:
                continue                                   # nothing to learn from: no step
            used = len(rows) if wb is None else float(wb.sum())
            n_used += used
            factors = None
            if dropout is not None:
                factors = [None if t == 0 else
                           dropout_multiplier(dropout_seeds[e], opt.t, l, len(rows),
                                              weights[l].shape[0], t, X.dtype)
                           for l, t in enumerate(dropout)]
            zs, a_list = forward(weights, biases, Xb, activations, norm, skips, skip=skip,
                                 dropout=factors)
            batch_loss = loss(zs[-1], a_list[-1], Yb, activations[-1], loss_name, wb)
            if l2:
                batch_loss += 0.5 * l2 * sum(float(np.sum(W.astype(np.float64) ** 2))
                                             for W in weights)
            total += used * batch_loss
            grads = backward(weights, biases, masks, zs, a_list, Yb, activations, loss_name, l2,
                             norm, skips, skip, wb, factors)
            if clip_norm is not None:  # over every parameter's gradient at once
                groups = [len(g) for g in grads]
                flat, _ = clip_by_global_norm([g for group in grads for g in group], clip_norm)
                grads = [flat[sum(groups[:i]):sum(groups[:i + 1])] for i in range(len(groups))]
            for l in range(L):
                if norm[l] is not None:
                    z = a_list[l] @ weights[l].T + (0 if biases[l] is None else biases[l])
                    mu, var = z.mean(axis=0), z.var(axis=0)
                    running[l] = running_update(*running[l], mu, var, len(rows))
            opt.t += 1
            for l in range(L):
                weights[l] = opt.update(("W", l), weights[l], grads[0][l])
                if biases[l] is not None:
                    biases[l] = opt.update(("b", l), biases[l], grads[1][l])
                if norm[l] is not None:
                    norm[l] = (opt.update(("gamma", l), norm[l][0], grads[2][l]),
                               opt.update(("beta", l), norm[l][1], grads[3][l]))
        epoch_losses.append(total / n_used)
    if batch_norm is None:
        return weights, biases, epoch_losses
    return weights, biases, epoch_losses, norm, running


def model_averaging(weights, biases, shards, activations, loss_name, *, epochs, batch_size,
                    sync_every, learning_rate, optimizer="sgd", **hyperparameters):
    """Local SGD (model averaging) of len(shards) replicas in one process, the reference of
    ``fit(comm=..., sync_every=k)``. shards: [(X_r, Y_r)], each read in order. Every replica
    starts from (weights, biases). An epoch runs in rounds: each replica takes its next
    ``sync_every`` batches (fewer, or none, once its rows run out), each a step of its own
    optimizer; then every replica's parameters and optimizer state become the replicas' mean
    weighted by the samples each trained on in the round, and its step count the largest.
    Returns (weights, biases) after ``epochs`` epochs."""
    L = len(weights)
    replicas = [([W.copy() for W in weights], [None if b is None else b.copy() for b in biases])
                for _ in shards]
    opts = [_ReferenceOptimizer(optimizer, learning_rate, **hyperparameters) for _ in shards]
    n_steps = max(-(-len(X) // batch_size) for X, _ in shards)
    for _ in range(epochs):
        for first in range(0, n_steps, sync_every):
            counts = []
            for (X, Y), (Ws, bs), opt in zip(shards, replicas, opts):
                stop = min((first + sync_every) * batch_size, len(X))
                for start in range(first * batch_size, stop, batch_size):
                    Xb, Yb = X[start:min(start + batch_size, stop)], Y[start:start + batch_size]
                    Yb = Yb[:len(Xb)]
                    zs, a_list = forward(Ws, bs, Xb, activations)
                    dWs, dbs = backward(Ws, bs, [None] * L, zs, a_list, Yb, activations,
                                        loss_name)[:2]
                    opt.t += 1
                    for l in range(L):
                        Ws[l] = opt.update(("W", l), Ws[l], dWs[l])
                        if bs[l] is not None:
                            bs[l] = opt.update(("b", l), bs[l], dbs[l])
                counts.append(max(0, stop - first * batch_size))
            total = sum(counts)

            def mean(arrays, counts=counts, total=total):
                return sum(c * a for c, a in zip(counts, arrays)) / total

            Ws = [mean([r[0][l] for r in replicas]) for l in range(L)]
            bs = [None if biases[l] is None else mean([r[1][l] for r in replicas])
                  for l in range(L)]
            state = {}
            for key in set().union(*(opt.state for opt in opts)):
                found = [opt.state.get(key) for opt in opts]
                if isinstance(next(s for s in found if s is not None), tuple):  # Adam's (m, v)
                    state[key] = tuple(mean([s[i] if s is not None else 0 for s in found])
                                       for i in range(2))
                else:
                    state[key] = mean([s if s is not None else 0 for s in found])
            t = max(opt.t for opt in opts)
            for replica, opt in zip(replicas, opts):
                replica[0][:] = [W.copy() for W in Ws]
                replica[1][:] = [None if b is None else b.copy() for b in bs]
                opt.state = {key: (tuple(v.copy() for v in value) if isinstance(value, tuple)
                                   else value.copy()) for key, value in state.items()}
                opt.t = t
    return replicas[0]
