"""Weight initialisation, seeded by the network's ``np.random.default_rng``; biases start at 0."""

import numpy as np

INITIALIZERS = ("xavier", "xavier_normal", "he", "he_normal")
RELU_LIKE = ("relu", "leaky_relu")


def default_init(hidden_activations):
    """He for networks whose hidden layers are all relu-like, Xavier otherwise."""
    if hidden_activations and all(a in RELU_LIKE for a in hidden_activations):
        return "he"
    return "xavier"


def initial_weights(rng, n_out, n_in, scheme, dtype):
    """A (n_out, n_in) weight matrix drawn by ``scheme``:

    xavier U(+-sqrt(6/(n_in+n_out))), xavier_normal N(0, 2/(n_in+n_out)),
    he U(+-sqrt(6/n_in)), he_normal N(0, 2/n_in).
    """
    if scheme == "xavier":
        limit = np.sqrt(6.0 / (n_in + n_out))
        W = rng.uniform(-limit, limit, size=(n_out, n_in))
    elif scheme == "xavier_normal":
        W = rng.normal(0.0, np.sqrt(2.0 / (n_in + n_out)), size=(n_out, n_in))
    elif scheme == "he":
        limit = np.sqrt(6.0 / n_in)
        W = rng.uniform(-limit, limit, size=(n_out, n_in))
    elif scheme == "he_normal":
        W = rng.normal(0.0, np.sqrt(2.0 / n_in), size=(n_out, n_in))
    else:
        raise ValueError(f"init must be one of {list(INITIALIZERS)}; got {scheme!r}")
    return np.ascontiguousarray(W, dtype=dtype)
