"""The public ``Network``: validates input once, owns the parameters, and calls the kernels."""

import numbers

import numpy as np

from . import _validation as check
from .activations import ACTIVATIONS, HIDDEN_ACTIVATIONS
from .deltas import hidden_delta, output_delta
from .forward import forward_layer
from .gradients import weight_gradients
from .initializers import INITIALIZERS, default_init, initial_weights
from .losses import LOSSES, VALID_OUTPUTS, sample_losses
from .updates import sgd_update


class Network:
    """A multilayer perceptron trained by backpropagation with compiled per-neuron kernels.

    Parameters
    ----------
    sizes : sequence of int
        Neurons per layer, input first: ``[2, 3, 2, 1]`` has 2 inputs, hidden layers of 3 and 2
        neurons, and 1 output.
    activation : str or list of str, default "relu"
        Activation of the hidden layers, or one name per hidden layer. One of "identity",
        "sigmoid", "tanh", "relu", "leaky_relu".
    output : str, default "softmax"
        Activation of the output layer: a hidden activation or "softmax".
    loss : str, default "cross_entropy"
        "squared_error", "log_loss" (binary / multi-label, with a sigmoid or softmax output) or
        "cross_entropy" (categorical, with a softmax or sigmoid output).
    init : str or None, default None
        "xavier", "xavier_normal", "he" or "he_normal". None picks He when every hidden
        activation is relu-like, Xavier otherwise.
    seed : int or None, default 0
        Seed of the network's ``np.random.default_rng``.
    dtype : float32 or float64, default float64
        Precision of parameters, buffers and outputs.
    masks : None or list of (array or None)
        One 0/1 array of shape ``(sizes[l+1], sizes[l])`` per layer, or None for a dense layer.
        Masked weights are 0 and stay 0.
    bias : bool or list of bool, default True
        Whether each layer has a bias.

    Attributes
    ----------
    weights : tuple of ndarray
        ``weights[l][i, j]`` is the weight from neuron j of layer l to neuron i of layer l+1,
        shape ``(sizes[l+1], sizes[l])``. Assign into them (``net.weights[0][...] = W``) to set.
    biases : tuple of (ndarray or None)
        ``biases[l]`` has shape ``(sizes[l+1],)``, or is None where layer l+1 has no bias.
    """

    def __init__(self, sizes, activation="relu", output="softmax", loss="cross_entropy",
                 init=None, seed=0, dtype=np.float64, masks=None, bias=True):
        sizes = self._check_sizes(sizes)
        n_layers = len(sizes) - 1
        hidden = check.per_layer(activation, n_layers - 1, "activation")
        for name in hidden:
            if name == "softmax":
                raise ValueError("activation 'softmax' is for the output layer only; hidden layers "
                                 f"take one of {list(HIDDEN_ACTIVATIONS)}")
            check.check_choice(name, HIDDEN_ACTIVATIONS, "activation")
        check.check_choice(loss, LOSSES, "loss")
        check.check_choice(output, ACTIVATIONS, "output")
        if output not in VALID_OUTPUTS[loss]:
            raise ValueError(f"loss {loss!r} needs outputs in (0, 1): output must be one of "
                             f"{list(VALID_OUTPUTS[loss])}; got {output!r}")
        if output == "softmax" and sizes[-1] < 2:
            raise ValueError("output 'softmax' needs at least 2 output neurons; got sizes[-1] = "
                             f"{sizes[-1]} (use 'sigmoid' with 'log_loss' for one)")
        init = default_init(hidden) if init is None else check.check_choice(init, INITIALIZERS, "init")
        dtype = check.check_dtype(dtype)
        bias = check.per_layer(bias, n_layers, "bias")
        for b in bias:
            if not isinstance(b, (bool, np.bool_)):
                raise TypeError(f"bias must be a bool or a list of bools; got {b!r}")
        masks = self._check_masks(masks, sizes, dtype)
        try:
            rng = np.random.default_rng(seed)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"seed must be None or a non-negative int; got {seed!r} ({exc})") from None

        self.sizes = tuple(sizes)
        self.activation = tuple(hidden)
        self.output = output
        self.loss_name = loss
        self.init = init
        self.dtype = dtype
        self.rng = rng
        self.masks = tuple(masks)
        self._weights = []
        self._biases = []
        for l in range(n_layers):
            W = initial_weights(rng, sizes[l + 1], sizes[l], init, dtype)
            if masks[l] is not None:
                W[masks[l] == 0] = 0
            self._weights.append(W)
            self._biases.append(np.zeros(sizes[l + 1], dtype=dtype) if bias[l] else None)
        self._codes = tuple(ACTIVATIONS[a] for a in self.activation + (output,))
        self._loss_code = LOSSES[loss]
        self._eps = dtype.type(np.finfo(dtype).eps)
        self._no_bias = np.zeros(0, dtype=dtype)
        self._no_mask = np.zeros((0, 0), dtype=dtype)
        self._masked = [None if m is None else np.flatnonzero(m == 0) for m in masks]

    # ----------------------------------------------------------------------------- properties
    @property
    def weights(self):
        return tuple(self._weights)

    @property
    def biases(self):
        return tuple(self._biases)

    @property
    def n_layers(self):
        """Number of weight layers (len(sizes) - 1)."""
        return len(self.sizes) - 1

    def __repr__(self):
        return (f"Network(sizes={list(self.sizes)}, activation={list(self.activation)}, "
                f"output={self.output!r}, loss={self.loss_name!r}, dtype={self.dtype.name})")

    # ----------------------------------------------------------------------------- public API
    def forward(self, X):
        """Output activations o for every sample.

        Parameters
        ----------
        X : array_like, shape (n_samples, sizes[0])

        Returns
        -------
        ndarray, shape (n_samples, sizes[-1]), of the network's dtype.
        """
        X = self._inputs(X)
        _, a_list = self._forward(X)
        return a_list[-1]

    def loss(self, X, y):
        """E, the mean over the samples of J(o, y).

        ``y`` is (n_samples, sizes[-1]); for cross_entropy also integer labels (n_samples,), and
        for a single output also (n_samples,).
        """
        X, Y = self._inputs_and_targets(X, y)
        zs, a_list = self._forward(X)
        return self._loss(zs[-1], a_list[-1], Y)

    def gradients(self, X, y):
        """dE/dW and dE/db for every layer, averaged over the batch.

        Returns
        -------
        (list of ndarray, list of ndarray or None)
            Shapes as ``weights`` and ``biases``; db is None where a layer has no bias.
        """
        X, Y = self._inputs_and_targets(X, y)
        dWs, dbs, _ = self._backprop(X, Y)
        return dWs, [db if b is not None else None for db, b in zip(dbs, self._biases)]

    def step(self, X, y, learning_rate):
        """One gradient-descent update on this batch: w <- w - alpha dE/dw.

        Returns
        -------
        float
            E on this batch before the update.
        """
        learning_rate = check.check_positive_number(learning_rate, "learning_rate")
        X, Y = self._inputs_and_targets(X, y)
        dWs, dbs, E = self._backprop(X, Y)
        alpha = self.dtype.type(learning_rate)
        for W, dW, b, db in zip(self._weights, dWs, self._biases, dbs):
            sgd_update(W.reshape(-1), dW.reshape(-1), alpha)
            if b is not None:
                sgd_update(b, db, alpha)
        return E

    # ----------------------------------------------------------------------------- internals
    def _forward(self, X):
        n = X.shape[0]
        zs, a_list = [], [X]
        for l in range(self.n_layers):
            Z = np.empty((n, self.sizes[l + 1]), dtype=self.dtype)
            A = np.empty_like(Z)
            b = self._biases[l]
            forward_layer(a_list[-1], self._weights[l], self._no_bias if b is None else b,
                          b is not None, self._codes[l], Z, A)
            zs.append(Z)
            a_list.append(A)
        return zs, a_list

    def _loss(self, Z, O, Y):
        J = np.empty(Z.shape[0], dtype=np.float64)
        sample_losses(Z, O, Y, self._codes[-1], self._loss_code, self._eps, J)
        return float(J.mean())

    def _backprop(self, X, Y):
        zs, a_list = self._forward(X)
        E = self._loss(zs[-1], a_list[-1], Y)
        delta = np.empty_like(zs[-1])
        output_delta(zs[-1], a_list[-1], Y, self._codes[-1], self._loss_code, self._eps, delta)
        dWs, dbs = [None] * self.n_layers, [None] * self.n_layers
        for l in reversed(range(self.n_layers)):
            mask = self.masks[l]
            dWs[l] = np.empty_like(self._weights[l])
            dbs[l] = np.empty(self.sizes[l + 1], dtype=self.dtype)
            weight_gradients(delta, a_list[l], self._no_mask if mask is None else mask,
                             mask is not None, dWs[l], dbs[l], self._biases[l] is not None)
            if l > 0:
                delta_prev = np.empty_like(zs[l - 1])
                hidden_delta(delta, self._weights[l], zs[l - 1], a_list[l], self._codes[l - 1],
                             delta_prev)
                delta = delta_prev
        return dWs, dbs, E

    def _check_parameters(self):
        for l, idx in enumerate(self._masked):
            if idx is not None and np.any(self._weights[l].reshape(-1)[idx] != 0):
                raise ValueError(f"weights[{l}] has nonzero entries where masks[{l}] is 0; masked "
                                 "weights must stay 0")

    def _inputs(self, X):
        self._check_parameters()
        return check.as_inputs(X, self.sizes[0], self.dtype)

    def _inputs_and_targets(self, X, y):
        X = self._inputs(X)
        Y = check.as_targets(y, X.shape[0], self.sizes[-1], self.loss_name, self.dtype)
        return X, Y

    @staticmethod
    def _check_sizes(sizes):
        if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__len__"):
            raise TypeError(f"sizes must be a list of layer widths such as [2, 3, 1]; got {sizes!r}")
        sizes = list(sizes)
        if len(sizes) < 2:
            raise ValueError(f"sizes needs at least 2 entries (inputs and outputs); got {sizes!r}")
        for s in sizes:
            if isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 1:
                raise ValueError(f"sizes must hold positive integers; got {sizes!r}")
        return [int(s) for s in sizes]

    @staticmethod
    def _check_masks(masks, sizes, dtype):
        n_layers = len(sizes) - 1
        if masks is None:
            return [None] * n_layers
        if not isinstance(masks, (list, tuple)) or len(masks) != n_layers:
            raise ValueError(f"masks must be None or a list of {n_layers} entries (one per layer, "
                             "each a 0/1 array or None)")
        out = []
        for l, m in enumerate(masks):
            if m is None:
                out.append(None)
                continue
            arr = np.asarray(m)
            shape = (sizes[l + 1], sizes[l])
            if arr.shape != shape:
                raise ValueError(f"masks[{l}] must have shape {shape} (sizes[{l + 1}], sizes[{l}]); "
                                 f"got {arr.shape}")
            if arr.dtype.kind not in "biuf" or not np.all((arr == 0) | (arr == 1)):
                raise ValueError(f"masks[{l}] must hold only 0 and 1")
            out.append(np.ascontiguousarray(arr, dtype=dtype))
        return out
