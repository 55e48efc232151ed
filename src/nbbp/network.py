"""The public ``Network``: validates input once, owns the parameters, and calls the kernels."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from . import _fit, _layout, _lbfgs, passes, persistence
from . import _validation as check
from ._collective import prepared
from ._fit import FitPlan, make_plan
from ._interrupts import one_trainer
from ._layout import BN_OFF, HAS_MASK, STATS_OFF
from ._simd import aligned, aligned_zeros, read_only
from .activations import ACTIVATIONS
from .dropout import threshold
from .history import History
from .initializers import initial_weights
from .losses import LOSSES
from .optimizers import LBFGS, Optimizer, OptimizerState, get_optimizer
from .schedules import Schedule


class Gradients(tuple):
    """``(dW, db)``, the pair ``Network.gradients`` returns, which also carries dE/dgamma and
    dE/dbeta of the batch-normalised layers.

    Attributes
    ----------
    weights, biases : list of ndarray (biases: None where a layer has no bias)
        The pair itself: ``dW, db = net.gradients(X, y)``.
    gammas, betas : list of (ndarray or None)
        Per layer, dE/dgamma and dE/dbeta, shape ``(sizes[l+1],)``, or None where the layer is
        not batch-normalised.
    """

    gammas: list[np.ndarray | None]
    betas: list[np.ndarray | None]

    def __new__(cls, weights, biases, gammas, betas):
        pair = super().__new__(cls, (weights, biases))
        pair.gammas, pair.betas = gammas, betas
        return pair

    @property
    def weights(self) -> list[np.ndarray]:
        return self[0]

    @property
    def biases(self) -> list[np.ndarray | None]:
        return self[1]


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
        Activation of the output layer: a hidden activation, "softmax" or "exp" (o = exp(z) > 0,
        the log link of the poisson loss; squared_error takes it too).
    loss : str, default "cross_entropy"
        "squared_error" (any output), "log_loss" (binary / multi-label, with a sigmoid or softmax
        output), "cross_entropy" (categorical, with a softmax or sigmoid output) or "poisson"
        (half the Poisson deviance, for counts or rates y >= 0, with the "exp" output).
    init : str or None, default None
        "xavier", "xavier_normal", "he" or "he_normal". None picks He when every hidden
        activation is relu-like, Xavier otherwise.
    seed : int or None, default 0
        Seed of the network's ``np.random.default_rng`` (initial weights, shuffling, splits).
    dtype : float32 or float64, default float64
        Precision of parameters, buffers and outputs.
    masks : None or list of (array or None)
        One 0/1 array of shape ``(sizes[l+1], sizes[l])`` per layer, or None for a dense layer.
        Masked weights are 0 and stay 0.
    bias : bool or list of bool, default True
        Whether each layer has a bias.
    batch_norm : bool or list of bool, default False
        Batch normalisation of each hidden layer's pre-activations (one value, or one per hidden
        layer): z_hat_i = (z_i - mu_i) / sqrt(var_i + 1e-5), then gamma_i z_hat_i + beta_i goes
        into f, as in ``torch.nn.BatchNorm1d``. Training uses the batch's mean and (biased)
        variance and updates running averages (momentum 0.1, unbiased variance); ``forward``,
        ``predict`` and ``score`` use the running averages. A batch-normalised layer's bias is
        redundant (its gradient is 0 up to rounding): ``bias=False`` for it saves the work.
    residual : None, int or list of (int, int)
        Residual connections: a pair (s, t) adds a(s), the activation of layer s (0: the input),
        to layer t, after any batch normalisation. Layers count as in ``sizes``; s < t and
        sizes[s] == sizes[t]; at most one skip into each layer. An int k is the pairs
        (s, s + k) for s = 1, 1 + k, 1 + 2k, ... between hidden layers of equal width.
    skip : {"activation", "identity"}, default "activation"
        Where a(s) joins: "activation", a(t) = f(z(t) + a(s)); "identity", a(t) = a(s) +
        f(z(t)) (He et al. 2016), whose backward path dE/da(s) += dE/da(t) has no f' on it,
        the remedy for vanishing gradients (hidden layers only).
    dropout : float or list of float, default 0.0
        Inverted dropout of the hidden activations in fit and partial_fit, per layer: a unit is
        dropped with probability p in [0, 1), the kept scaled by 1 / (1 - p) (nbbp.dropout).

    Attributes
    ----------
    weights : tuple of ndarray
        ``weights[l][i, j]`` is the weight from neuron j of layer l to neuron i of layer l+1,
        shape ``(sizes[l+1], sizes[l])``. Assign into them (``net.weights[0][...] = W``) to set.
    biases : tuple of (ndarray or None)
        ``biases[l]`` has shape ``(sizes[l+1],)``, or is None where layer l+1 has no bias.
    history : History or None
        The record of the last ``fit`` or ``partial_fit``, filled epoch by epoch, so that it is
        there after a KeyboardInterrupt too.
    """

    def __init__(self, sizes: Sequence[int], activation: str | Sequence[str] = "relu",
                 output: str = "softmax", loss: str = "cross_entropy", init: str | None = None,
                 seed: int | None = 0, dtype: DTypeLike = np.float64,
                 masks: Sequence[ArrayLike | None] | None = None,
                 bias: bool | Sequence[bool] = True,
                 batch_norm: bool | Sequence[bool] = False,
                 residual: int | Sequence[tuple[int, int]] | None = None,
                 skip: str = "activation", dropout: float | Sequence[float] = 0.0) -> None:
        args = check.network_arguments(sizes, activation, output, loss, init, seed, dtype, masks,
                                       bias, batch_norm, residual, skip, dropout)
        self.sizes = tuple(args.sizes)
        self.activation = tuple(args.hidden)
        self.output = args.output
        self.loss_name = args.loss
        self.init = args.init
        self.dtype = args.dtype
        self.rng = args.rng
        self.batch_norm = tuple(bool(flag) for flag in args.batch_norm)
        self.residual, self.skip, self.dropout = tuple(args.skips), args.skip, tuple(args.dropout)
        codes = [ACTIVATIONS[a] for a in (*self.activation, self.output)]
        self._layout, n_params, n_stats = _layout.build(
            self.sizes, codes, args.bias, [m is not None for m in args.masks], self.batch_norm,
            self.residual, self.skip == "identity", [threshold(p) for p in self.dropout])
        self._theta = aligned_zeros(n_params, self.dtype)
        self._mask_theta = aligned(np.ones(n_params, dtype=self.dtype))
        self._stats = aligned_zeros(n_stats, self.dtype)
        for gamma, running_var in zip(self.gammas, self.running_vars):
            if gamma is not None and running_var is not None:
                gamma[...] = 1
                running_var[...] = 1
        self._weights, self._biases = _layout.views(self._layout, self._theta)
        for l, (W, M, mask) in enumerate(zip(self._weights, self._mask_views(), args.masks)):
            W[...] = initial_weights(self.rng, self.sizes[l + 1], self.sizes[l], self.init,
                                     self.dtype)
            if mask is not None:
                M[...] = mask
                W[mask == 0] = 0
        self._masked = np.flatnonzero(self._mask_theta == 0)
        self._loss_code = LOSSES[self.loss_name]
        self._eps = self.dtype.type(np.finfo(self.dtype).eps)
        self._opt = OptimizerState.fresh(None, n_params, self.dtype)
        self._trainer: dict[str, int] = {}  # "thread": the thread in a training call, if any
        self.history = None

    def __getstate__(self):
        # copy.deepcopy and pickle: everything but the training claim, which no copy shares.
        state = dict(self.__dict__)
        del state["_trainer"]
        state["_weights"] = state["_biases"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(persistence.pickled_state(state))
        self._trainer = {}
        # unpickled arrays start where NumPy puts them: align the arrays the kernels take
        self._theta, self._mask_theta = aligned(self._theta), aligned(self._mask_theta)
        self._stats, self._opt.state = aligned(self._stats), aligned(self._opt.state)
        self._weights, self._biases = _layout.views(self._layout, self._theta)

    # ----------------------------------------------------------------------------- properties
    @property
    def weights(self) -> tuple[np.ndarray, ...]:
        return tuple(self._weights)

    @property
    def biases(self) -> tuple[np.ndarray | None, ...]:
        return tuple(self._biases)

    @property
    def masks(self) -> tuple[np.ndarray | None, ...]:
        """Per layer, the 0/1 connectivity mask as a read-only view, or None for a dense layer."""
        return tuple(read_only(M) if masked else None
                     for M, masked in zip(self._mask_views(), self._layout[:, HAS_MASK]))

    @property
    def gammas(self) -> tuple[np.ndarray | None, ...]:
        """Per layer, the scale gamma of batch normalisation, shape ``(sizes[l+1],)`` (a view:
        assign into it), or None where the layer is not batch-normalised. Starts at 1."""
        return tuple(self._batch_norm_views(self._theta)[0])

    @property
    def betas(self) -> tuple[np.ndarray | None, ...]:
        """Per layer, the shift beta of batch normalisation, or None. Starts at 0."""
        return tuple(self._batch_norm_views(self._theta)[1])

    @property
    def running_means(self) -> tuple[np.ndarray | None, ...]:
        """Per layer, the running mean of z that inference normalises with, or None. Starts at
        0 and moves by 0.1 towards each training batch's mean."""
        return tuple(self._batch_norm_views(self._stats, STATS_OFF)[0])

    @property
    def running_vars(self) -> tuple[np.ndarray | None, ...]:
        """Per layer, the running (unbiased) variance of z, or None. Starts at 1."""
        return tuple(self._batch_norm_views(self._stats, STATS_OFF)[1])

    @property
    def n_layers(self) -> int:
        """Number of weight layers (len(sizes) - 1)."""
        return len(self.sizes) - 1

    @property
    def n_parameters(self) -> int:
        """Number of trainable parameters, masked weights included."""
        return self._theta.size

    @property
    def optimizer(self) -> Optimizer | None:
        """The optimizer whose state the network holds (after fit or partial_fit), or None."""
        return self._opt.optimizer

    def __repr__(self) -> str:
        return persistence.describe(self)

    # ----------------------------------------------------------------------------- public API
    def forward(self, X: ArrayLike, training: bool = False) -> np.ndarray:
        """Output activations o for every sample.

        Parameters
        ----------
        X : array_like, shape (n_samples, sizes[0])
        training : bool, default False
            Only for batch normalisation: False normalises with the running averages
            (inference, as ``predict``), True with the statistics of this batch (as training
            does, without updating the running averages; needs 2 samples or more).

        Returns
        -------
        ndarray, shape (n_samples, sizes[-1]), of the network's dtype.
        """
        training = check.check_training(training)
        X = self._inputs(X)
        self._check_batch(X, training, "forward(training=True)")
        return self._forward(X, training, what="forward")[1][-1]

    def loss(self, X: ArrayLike, y: ArrayLike, training: bool = False,
             sample_weight: ArrayLike | None = None) -> float:
        """E, the mean over the samples of J(o, y), or with ``sample_weight`` (one weight >= 0
        per sample) sum_k w_k J_k / sum_k w_k.

        ``y`` is (n_samples, sizes[-1]); for cross_entropy also integer labels (n_samples,), and
        for a single output also (n_samples,). ``training`` as in ``forward``: with batch
        normalisation, ``loss(X, y, training=True)`` is the E that ``gradients`` differentiates
        and ``step`` and ``fit`` minimise, and the default the E of what ``predict`` computes.
        """
        training = check.check_training(training)
        X, Y = self._inputs_and_targets(X, y)
        weights = check.as_sample_weight(sample_weight, len(Y))
        self._check_batch(X, training, "loss(training=True)")
        zs, a_list = self._forward(X, training, what="loss")
        return self._loss(zs[-1], a_list[-1], Y, weights)

    def gradients(self, X: ArrayLike, y: ArrayLike,
                  sample_weight: ArrayLike | None = None) -> Gradients:
        """dE/dW and dE/db for every layer, averaged over the batch (weighted: of E as in
        ``loss``; batch normalisation in training mode, its running averages left as they are).

        Returns
        -------
        Gradients
            The pair (list of dW, list of db), shapes as ``weights`` and ``biases``, db None
            where a layer has no bias; its attributes ``gammas`` and ``betas`` hold
            dE/dgamma and dE/dbeta (None where a layer is not batch-normalised).
        """
        X, Y = self._inputs_and_targets(X, y)
        weights = check.as_sample_weight(sample_weight, len(Y))
        self._check_batch(X, True, "gradients")
        grad, _ = self._backprop(X, Y, weights)
        check.finite_gradients(grad, self.dtype, lambda: self._check_finite_layers(
            *self._forward(X, True), "gradients"))
        return Gradients(*_layout.views(self._layout, grad), *self._batch_norm_views(grad))

    @one_trainer
    def step(self, X: ArrayLike, y: ArrayLike, learning_rate: float) -> float:
        """One plain gradient-descent update on this batch: w <- w - alpha dE/dw. With batch
        normalisation, the batch's statistics also update the running averages.

        Returns
        -------
        float
            E on this batch before the update (training mode, as ``loss(training=True)``).
        """
        learning_rate = check.check_positive_number(learning_rate, "learning_rate")
        alpha = check.as_scalar(learning_rate, self.dtype, "learning_rate")
        X, Y = self._inputs_and_targets(X, y)
        self._check_batch(X, True, "step")
        self._check_finite_parameters("step")
        params = _layout.Parameters(self._layout, self._theta, self._mask_theta, self._stats)
        E = _fit.step(params, X, Y, alpha, self._loss_code, self._eps, self._opt.state[:0])
        return E

    @one_trainer
    def fit(self, X: ArrayLike, y: ArrayLike, epochs: int = 10, batch_size: int | None = 32,
            learning_rate: float | Schedule = 0.01, optimizer: str | Optimizer = "sgd",
            l2: float = 0.0, shuffle: bool = True,
            validation_data: tuple[ArrayLike, ArrayLike] | None = None,
            validation_fraction: float | None = None, early_stopping: bool = False,
            patience: int | None = None, verbose: bool = False,
            callback: Callable[[int, History], bool | None] | None = None,
            clip_norm: float | None = None, sample_weight: ArrayLike | None = None,
            class_weight: str | dict[int, float] | None = None, l2_per_batch: bool = False,
            comm=None, sync_every: int = 1) -> History:
        """Train by mini-batch gradient descent, each epoch in one compiled call (or L-BFGS).
        Dropout applies here and in partial_fit only: forward, loss, gradients and step omit it.

        Parameters
        ----------
        X, y : array_like
            Training data, as for ``loss``.
        epochs : int, default 10
        batch_size : int or None, default 32
            None is batch gradient descent, 1 stochastic, k mini-batch. The last partial batch is
            used, except a last batch of one sample with batch normalisation (whose batch
            statistics need two): that sample sits the epoch out. A batch_size larger than the
            data set is clipped, with a warning.
        learning_rate : float or nbbp.schedules.Schedule, default 0.01
            A schedule sets each epoch's rate (``history.learning_rate`` records it).
        optimizer : str or Optimizer, default "sgd"
            "sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw", "lbfgs", or an
            ``nbbp.SGD``, ``nbbp.AdaGrad``, ``nbbp.RMSProp``, ``nbbp.Adam``, ``nbbp.AdamW``
            (decoupled weight decay, as torch.optim.AdamW) or ``nbbp.LBFGS`` (full batch, an
            iteration an epoch; needs SciPy). Its state starts fresh.
        l2 : float, default 0.0
            Adds l2/2 sum ||W||^2 to E (biases are not penalised).
        shuffle : bool, default True
            Shuffle the samples every epoch with the network's seeded generator.
        validation_data : (X_val, y_val) or None
        validation_fraction : float in (0, 1) or None
            Hold out this fraction of (X, y), chosen by the network's generator, for validation.
        early_stopping : bool, default False
            Stop when the validation loss has not improved for ``patience`` epochs and restore
            the best weights. Uses validation_fraction=0.1 when no validation is given.
        patience : int or None
            Epochs without improvement before stopping (default 10). Giving it turns early
            stopping on, and needs validation data.
        verbose : bool, default False
            Show a progress bar over the epochs with the loss (on stderr, when tqdm is
            installed), or print a line per epoch (every k-th epoch past 20 epochs, and the last).
        callback : callable or None
            ``callback(epoch, history)`` after every epoch (its signature is checked before
            training starts); returning False, or NumPy's False, stops training, and any
            other value (None included) goes on. It may read the network, not train it: a
            ``fit``, ``partial_fit`` or ``step`` of the same network from a callback raises
            RuntimeError. An exception from the callback, or from anywhere in an epoch,
            leaves the network (weights, optimizer state and steps, random generator,
            history) as after the last complete epoch. Ctrl-C (in the main thread) is held
            back while an epoch trains and raised once it is recorded, or at once in the
            callback.
        clip_norm : float or None, default None
            Scale each batch's gradients (l2's term included) to at most this global norm over
            every parameter, as ``torch.nn.utils.clip_grad_norm_``; ``history.grad_norm`` is
            before clipping.
        sample_weight : array_like (n_samples,) or None
            Weights >= 0: each batch minimises sum_k w_k J_k / sum_k w_k (scikit-learn's
            definition; a batch of weight 0 takes no step). A held-out split keeps its weights.
        class_weight : "balanced", dict or None
            For cross_entropy, and log_loss with one output: a weight per class index (others
            1), or "balanced", n / (n_classes * count), as scikit-learn's compute_class_weight;
            multiplies sample_weight.
        l2_per_batch : bool, default False
            l2 as scikit-learn's alpha: each batch minimises (sum_k w_k J_k + l2/2 sum ||W||^2)
            / sum_k w_k, and the epoch's loss averages its batches' by their sizes.
        comm : mpi4py communicator or None
            Train on the ranks of ``comm`` (``pip install "nbbp[mpi]"``), each calling fit alike
            on its own X, y, from rank 0's network. A step's gradient is that of the union of
            the ranks' batches (batch_size and batch statistics per rank); all keep the same
            parameters and History. ``sync_every=k`` > 1 is local SGD instead: each rank takes
            k steps of its own, then parameters and optimizer state are averaged.

        Returns
        -------
        History

        Raises
        ------
        DivergenceError
            The loss or a parameter became NaN or inf; the network keeps the weights of the last
            finite epoch.
        """
        def prepare():
            opt = get_optimizer(optimizer, self.dtype)
            return check.check_count(epochs, "epochs"), opt, make_plan(
                self, X, y, None if isinstance(opt, LBFGS) else batch_size, learning_rate, l2,
                validation_data, validation_fraction, early_stopping, patience, callback,
                shuffle, verbose, clip_norm=clip_norm, sample_weight=sample_weight,
                class_weight=class_weight, l2_per_batch=l2_per_batch)
        group, n_epochs, opt, plan = prepared(comm, sync_every, self, "fit", prepare)
        return self._run(plan, n_epochs, opt, fresh_state=True, group=group)

    @one_trainer
    def partial_fit(self, X: ArrayLike, y: ArrayLike, batch_size: int | None = 32,
                    learning_rate: float = 0.01, optimizer: str | Optimizer = "sgd",
                    l2: float = 0.0, shuffle: bool = True,
                    sample_weight: ArrayLike | None = None, l2_per_batch: bool = False,
                    comm=None, sync_every: int = 1) -> History:
        """One epoch of training that keeps the optimizer state (velocity, Adam's m, v and t)
        from the previous ``partial_fit`` or ``fit``. A different optimizer starts fresh state.
        ``sample_weight``, ``l2_per_batch``, ``comm`` and ``sync_every`` as in ``fit``.

        Returns
        -------
        History
            The one epoch.
        """
        def prepare():
            opt = get_optimizer(optimizer, self.dtype)
            _lbfgs.not_incremental(opt)
            return 1, opt, make_plan(self, X, y, batch_size, learning_rate, l2, None, None, False,
                                     None, None, shuffle, False, schedule_allowed=False,
                                     sample_weight=sample_weight, l2_per_batch=l2_per_batch)
        group, _, opt, plan = prepared(comm, sync_every, self, "partial_fit", prepare)
        return self._run(plan, 1, opt, fresh_state=opt != self.optimizer, group=group)

    def predict(self, X: ArrayLike) -> np.ndarray:
        """Class labels for cross_entropy (argmax), 0/1 for log_loss (o >= 0.5), values for
        squared_error. A single-output network gives shape (n_samples,)."""
        O = self.forward(X)
        if self.loss_name == "cross_entropy":
            return np.argmax(O, axis=1)
        if self.loss_name == "log_loss":
            O = (O >= 0.5).astype(np.int64)
        return O[:, 0] if O.shape[1] == 1 else O

    def predict_proba(self, X: ArrayLike) -> np.ndarray:
        """Output probabilities, (n_samples, sizes[-1]), for cross_entropy and log_loss."""
        if self.loss_name not in ("cross_entropy", "log_loss"):
            raise ValueError("predict_proba needs a classification loss ('cross_entropy' or "
                             f"'log_loss'); this network uses {self.loss_name!r}")
        return self.forward(X)

    def score(self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None) -> float:
        """Accuracy for cross_entropy and log_loss (every output right), R^2 for squared_error
        and poisson (averaged over outputs); weighted by ``sample_weight``, as scikit-learn's."""
        X, Y = self._inputs_and_targets(X, y)
        weights = check.as_sample_weight(sample_weight, len(Y))
        _zs, a_list = self._forward(X, what="score")
        return passes.score(a_list[-1], Y, self.loss_name, weights)

    def save(self, path: str | os.PathLike) -> None:
        """Write the network to one ``.npz`` file (no pickle), atomically: its architecture
        (batch normalisation and residual connections included), dtype, parameters, masks,
        running statistics, optimizer state and the state of its random generator. Read it
        back with ``nbbp.load`` (``Network.load``)."""
        self._check_finite_parameters("save")  # load refuses such a file
        persistence.write(path, persistence.entries(self, self._theta, self._mask_theta,
                                                    self._stats, self._opt))

    def to_onnx(self, path: str | os.PathLike | None = None, opset: int | None = None):
        """The network at inference as a checked ``onnx.ModelProto``, also written to ``path``
        if given (``pip install "nbbp[onnx]"``; nbbp.export.to_onnx draws the graph)."""
        from .export import to_onnx
        return to_onnx(self, path, opset)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Network:
        """Read a Network written by ``save``. Raises FileNotFoundError (no file at ``path``) or
        ValueError (a file truncated, corrupted, of another format or version, or whose values
        are not a network's)."""
        return persistence.load(cls, path)

    # ----------------------------------------------------------------------------- internals
    def _restore(self, found):
        """Take the checked values of a file (persistence.values) into this fresh network."""
        self._theta[...] = found["theta"]
        self._mask_theta[...] = found["mask_theta"]
        self._masked = np.flatnonzero(self._mask_theta == 0)
        self._layout[:, HAS_MASK] = found["has_mask"]
        if found["stats"] is not None:
            self._stats[...] = found["stats"]
        self.rng.bit_generator.state = found["rng_state"]
        if found["optimizer"] is not None:
            self._opt = OptimizerState(found["optimizer"],
                                       aligned(np.ascontiguousarray(found["opt_state"])),
                                       found["opt_steps"])

    def _mask_views(self):
        return _layout.views(self._layout, self._mask_theta)[0]

    def _batch_norm_views(self, flat, column=BN_OFF):
        return _layout.batch_norm_views(self._layout, flat, column)

    @property
    def _has_batch_norm(self):
        return bool(np.any(self._layout[:, BN_OFF] >= 0))

    def _forward(self, X, training=False, update_running=False, what=None) -> tuple[list, list]:
        """(zs, [X] + activations), zs[l] the input of f, checked finite for ``what`` if given:
        passes.forward_checked (inference on many rows: by chunks, the output layer alone)."""
        layers = None if what is None else (lambda zs, a_list, first: check.finite_layers(
            zs, a_list, what, lambda: self._check_finite_parameters(what), first))
        return passes.forward_checked(X, self._theta, self._stats, self._layout, training,
                                      update_running, layers)

    def _loss(self, Z, O, Y, sample_weight=None):
        return passes.mean_loss(Z, O, Y, self._layout, self._loss_code, self._eps, sample_weight)

    def _backprop(self, X, Y, sample_weight=None):
        """(dE/dtheta, E) for one batch in training mode: passes.backprop."""
        return passes.backprop(X, Y, self._theta, self._stats, self._mask_theta, self._layout,
                               self._loss_code, self._eps, sample_weight=sample_weight)

    def _run(self, plan: FitPlan, epochs, optimizer, fresh_state, group=None):
        """_fit.train with ``optimizer`` (fresh state, or the state it has); a call failing before
        an epoch completes changes neither optimizer state, generator nor ``history``."""
        saved = (self._opt, self.rng.bit_generator.state, self.history)
        if fresh_state:
            self._opt = OptimizerState.fresh(optimizer, self._theta.size, self.dtype)
        completed = [0]  # epochs recorded: counted here, since a callback can edit history
        try:
            params = _layout.Parameters(self._layout, self._theta, self._mask_theta, self._stats)
            if isinstance(optimizer, LBFGS):
                return _lbfgs.train(self, params, plan, epochs, self._opt, completed)
            return _fit.train(self, params, plan, epochs, self._opt, completed, group)
        except BaseException:
            if completed[0] == 0:
                self._opt, rng_state, self.history = saved
                self.rng.bit_generator.state = rng_state
            raise

    def _check_finite_parameters(self, what):
        check.finite_network(self, (self._theta, self._stats), what)

    def _check_finite_layers(self, zs, a_list, what):
        check.finite_layers(zs, a_list, what, lambda: self._check_finite_parameters(what))

    def _inputs(self, X, threads=None):
        check.masked_weights(self._theta, self._masked, self._weights, self._mask_views)
        return check.as_inputs(X, self.sizes[0], self.dtype, threads=threads)

    def _inputs_and_targets(self, X, y):
        X = self._inputs(X)
        Y = check.as_targets(y, X.shape[0], self.sizes[-1], self.loss_name, self.dtype)
        return X, Y

    def _check_batch(self, X, training, what):
        if training and self._has_batch_norm and X.shape[0] < 2:
            raise ValueError(f"{what}: batch normalisation in training mode needs a batch of 2 "
                             f"samples or more (batch statistics); got {X.shape[0]}")

