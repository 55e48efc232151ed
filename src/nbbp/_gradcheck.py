"""``nbbp.gradcheck``: backpropagation's gradients against central differences of the loss, as
``torch.autograd.gradcheck`` does it, for people who change the code and want to know their
gradients are still right."""

from __future__ import annotations

import copy
import numbers

import numpy as np

# Below this size of both derivatives, their difference is compared with it instead of with
# their size (torch.autograd.gradcheck's atol).
FLOOR = 1e-5
ULP = float(np.finfo(np.float64).eps)


def gradcheck(net, X, y, eps: float = 1e-6, sample: int | None = None,
              seed: int = 0) -> list[float]:
    """The worst relative error, per layer, between ``net.gradients(X, y)`` and central
    differences (E(w + eps) - E(w - eps)) / (2 eps) of ``net.loss(X, y, training=True)``, the E
    that the gradients differentiate.

    Every parameter of a layer (W, b, and gamma and beta with batch normalisation) is checked,
    or with ``sample`` a seeded sample of that many per layer (for large networks: each one
    costs two evaluations of the loss); masked weights are not parameters. The relative error
    of one parameter is (|g - d| - r) / max(|g|, |d|, 1e-5), where r = 4 ulp(E) / (2 eps) is
    the central difference's own round-off (a derivative that is 0, as a batch-normalised
    layer's bias's, comes out of it as about 1e-10), and below 1e-5 (torch's atol) the
    difference counts against 1e-5. The network is not changed: the differences are taken on
    a copy.

    Parameters
    ----------
    net : Network
        A float64 network (float32 differences are too coarse to check anything).
    X, y : array_like
        A batch, as for ``net.loss``.
    eps : float, default 1e-6
    sample : int or None
        Parameters checked per layer; None: all of them.
    seed : int, default 0
        Seed of the sample.

    Returns
    -------
    list of float, one per layer. Backpropagation done right gives about 1e-6 or less.
    """
    from .network import Network

    if not isinstance(net, Network):
        raise TypeError(f"gradcheck needs an nbbp.Network; got {type(net).__name__}")
    if net.dtype != np.float64:
        raise ValueError(f"gradcheck needs a float64 network (central differences in {net.dtype} "
                         "are too coarse); build one with dtype=np.float64")
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not 0 < eps < 1:
        raise ValueError(f"eps must be a number in (0, 1); got {eps!r}")
    if sample is not None and (isinstance(sample, bool) or not isinstance(sample, numbers.Integral)
                               or sample < 1):
        raise ValueError(f"sample must be None or an integer >= 1; got {sample!r}")
    probe = copy.deepcopy(net)
    grads = probe.gradients(X, y)  # checks X and y too
    rng = np.random.default_rng(seed)
    worst = []
    for l in range(probe.n_layers):
        # (parameter array, its gradient, flat index) of every free parameter of the layer: a
        # masked weight is not one (its gradient is 0 by definition)
        arrays = [(probe.weights[l], grads.weights[l], probe.masks[l]),
                  (probe.biases[l], grads.biases[l], None),
                  (probe.gammas[l], grads.gammas[l], None),
                  (probe.betas[l], grads.betas[l], None)]
        entries = [(values.reshape(-1), gradient.reshape(-1), i)
                   for values, gradient, mask in arrays if values is not None
                   for i in range(values.size) if mask is None or mask.reshape(-1)[i] != 0]
        if sample is not None and sample < len(entries):
            entries = [entries[i] for i in np.sort(rng.choice(len(entries), sample, replace=False))]
        errors = [0.0]
        for values, gradient, i in entries:
            kept = values[i]
            values[i] = kept + eps
            up = probe.loss(X, y, training=True)
            values[i] = kept - eps
            down = probe.loss(X, y, training=True)
            values[i] = kept
            numeric = (up - down) / (2 * eps)
            analytic = gradient[i]
            # the central difference's own round-off: a few ulps of E, over 2 eps
            noise = 4 * ULP * max(abs(up), abs(down)) / (2 * eps)
            errors.append(max(abs(analytic - numeric) - noise, 0.0)
                          / max(abs(analytic), abs(numeric), FLOOR))
        worst.append(float(max(errors)))
    return worst
