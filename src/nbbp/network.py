"""The public ``Network``: validates input once, owns the parameters, and calls the kernels."""

from __future__ import annotations

import contextlib
import inspect
import functools
import numbers
import os
import signal
import threading
import warnings
from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Any, TypeVar, cast

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from . import _validation as check
from ._jit import PARALLEL_MIN_ELEMENTS, start_thread_pool, use_threads
from ._simd import aligned_zeros
from .activations import ACTIVATIONS, HIDDEN_ACTIVATIONS, IDENTITY
from .batchnorm import EPS as BN_EPS
from .batchnorm import MOMENTUM as BN_MOMENTUM
from .batchnorm import batchnorm_backward, batchnorm_inference, batchnorm_train
from .deltas import hidden_delta, output_delta, residual_delta
from .forward import add_skip_and_activate, forward_layer
from .forward import scratch_size as forward_scratch_size
from .gradients import scratch_size, weight_gradients
from .history import DivergenceError, History
from .initializers import INITIALIZERS, default_init, initial_weights
from .losses import LOSSES, VALID_OUTPUTS, sample_losses
from .optimizers import (SGD_CODE, UPDATE_PARALLEL_MIN, Optimizer, check_for_dtype,
                         get_optimizer, optimizer_update)
from .progress import EpochProgress
from .training import (B_OFF, BN_OFF, CODE, HAS_MASK, N_COLUMNS, N_IN, N_OUT, SKIP_FROM,
                       STATS_OFF, W_OFF, train_epoch)


class _Hold:
    """One training call's hold on Ctrl-C: the handler it replaced, and (frame,) of the first
    SIGINT it noted, or None (a frame itself may be None)."""

    def __init__(self):
        self.noted = None
        self.previous = signal.signal(signal.SIGINT, self.note)

    def note(self, signum, frame):
        if self.noted is None:
            self.noted = (frame,)


# The holds of the training calls in progress in the main thread, the innermost last.
_HELD: list[_Hold] = []


def _holding():
    """The innermost hold, when this is the main thread and a training call holds Ctrl-C."""
    if _HELD and threading.current_thread() is threading.main_thread():
        return _HELD[-1]
    return None


@contextlib.contextmanager
def _interrupts_held():
    """Hold back Ctrl-C (SIGINT) over a training call: it is raised as KeyboardInterrupt only
    where parameters, optimizer state (Adam's t included) and History agree: between fit's
    recorded epochs (``_deliver_held_interrupt``), in a callback or the progress display
    (``_let_interrupts_through``), or once the call returns. Nothing else in the call (a
    compiled kernel, Numba's thread-pool lock, the claim on the network) is cut short by it.

    The Python-level handler is swapped for one that only notes the signal, and the previous
    handler runs afterwards. (Masking SIGINT in the main thread is not enough: the kernel then
    delivers it to a worker thread, whose C handler still trips the main thread's next bytecode;
    seen here as a network whose step count disagreed with its weights.) Main thread only: a
    Ctrl-C is the main thread's, and other threads' calls leave it alone.
    """
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is None):  # a handler set from C: leave it be
        yield
        return
    hold = _Hold()
    _HELD.append(hold)
    try:
        yield
    finally:
        _HELD.pop()
        signal.signal(signal.SIGINT, hold.previous)
        if hold.noted is not None:
            _run_handler(hold.previous, hold.noted[0])


def _deliver_held_interrupt():
    """At a point where the network is consistent: raise a Ctrl-C the training call noted,
    through the handler it replaced (KeyboardInterrupt, or the end of the process under
    SIG_DFL)."""
    hold = _holding()
    if hold is not None and hold.noted is not None:
        (frame,), hold.noted = hold.noted, None
        signal.signal(signal.SIGINT, hold.previous)
        _run_handler(hold.previous, frame)
        signal.signal(signal.SIGINT, hold.note)  # a handler that returned (one that logs)


def _let_interrupts_through():
    """Ctrl-C as usual from here (the network is consistent, the user's code runs: a callback,
    the progress display), so a slow callback can still be stopped; ``_hold_interrupts_again``
    ends it. No finally clause puts the hold back: after an exception, the call's own hold
    restores the handler, and a late one here would leave the hold's handler behind."""
    _deliver_held_interrupt()
    hold = _holding()
    if hold is not None:
        signal.signal(signal.SIGINT, hold.previous)
    return hold


def _hold_interrupts_again(hold):
    if hold is not None:
        signal.signal(signal.SIGINT, hold.note)


def _run_handler(handler, frame):
    if callable(handler):
        handler(signal.SIGINT, frame)  # default_int_handler raises KeyboardInterrupt
    elif handler == signal.SIG_DFL:
        signal.raise_signal(signal.SIGINT)


TrainingMethod = TypeVar("TrainingMethod", bound=Callable[..., Any])


def _one_trainer(method: TrainingMethod) -> TrainingMethod:
    """Refuse a second training call (fit, partial_fit, step) on a network that one is already
    updating, from another thread or from a callback: the updates would interleave on the same
    parameters."""

    @functools.wraps(method)
    def guarded(self, *args, **kwargs):
        me = threading.get_ident()
        if self._trainer.get("thread") == me:
            # a callback training its own network: the outer fit would go on with the inner
            # call's optimizer state and weights under its own hyperparameters
            raise RuntimeError(f"{method.__name__}: this network is in a training call already "
                               "(is this a callback?); a callback may read the network and stop "
                               "training by returning False, not train it")
        # Ctrl-C is held back from before the claim until after its release: no claim outlives
        # its call. dict.setdefault claims the network in one step under the GIL.
        with _interrupts_held():
            if self._trainer.setdefault("thread", me) != me:
                raise RuntimeError(f"{method.__name__}: this network is already being trained in "
                                   "another thread; train one network from one thread at a time")
            try:
                return method(self, *args, **kwargs)
            finally:
                del self._trainer["thread"]

    return cast(TrainingMethod, guarded)


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


# History's per-epoch lists, which a failed epoch leaves as they were.
HISTORY_LISTS = ("loss", "grad_norm", "delta_mean", "val_loss", "val_score")


def _says_stop(result):
    """Whether a callback's return value stops training: False, or a NumPy False (np.False_,
    as ``loss > limit`` on NumPy scalars gives); None, True and anything else go on."""
    return result is False or (isinstance(result, np.bool_) and not result)


def _check_callback(callback):
    """A TypeError, before training, for a callback that cannot be called as callback(epoch,
    history)."""
    if callback is None:
        return
    if not callable(callback):
        raise TypeError(f"callback must be callable as callback(epoch, history); got {callback!r}")
    try:
        signature = inspect.signature(callback)
    except (TypeError, ValueError):  # a builtin without a signature: take it on trust
        return
    try:
        signature.bind(0, None)
    except TypeError as exc:
        raise TypeError(f"callback must be callable as callback(epoch, history); "
                        f"{getattr(callback, '__name__', callback)!r}{signature} cannot: {exc}") from None


def parameter_count(sizes, bias, batch_norm):
    """(length of theta, length of stats) for these layer widths, bias flags (one per layer)
    and batch_norm flags (one per hidden layer), in Python integers: W(l), b(l) where the layer
    has a bias, gamma(l) and beta(l) (and two running statistics) where it is normalised."""
    n_layers = len(sizes) - 1
    n_params = n_stats = 0
    for l in range(n_layers):
        n_params += sizes[l] * sizes[l + 1] + (sizes[l + 1] if bias[l] else 0)
        if l < n_layers - 1 and batch_norm[l]:
            n_params += 2 * sizes[l + 1]
            n_stats += 2 * sizes[l + 1]
    return n_params, n_stats


def _physical_memory():
    """Bytes of memory of this machine, or None where the OS does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _check_memory(sizes, bias, batch_norm, dtype):
    """A ValueError, before anything is allocated, for a network whose parameters and their
    masks (two flat vectors) would not fit in this machine's memory, or whose count would not
    fit the int64 offsets of the layout."""
    n_params, _ = parameter_count(sizes, bias, batch_norm)
    need = 2 * n_params * dtype.itemsize
    available = _physical_memory()
    if n_params >= 1 << 62 or (available is not None and need > available):
        have = "" if available is None else f", more than this machine's {available / 2**30:,.1f} GiB"
        raise ValueError(f"sizes {list(sizes)} make {n_params:,} parameters: {need:,} bytes "
                         f"({need / 2**30:,.1f} GiB) for them and their masks in {dtype.name}{have}")


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
        to z(t) before f: a(t) = f(z(t) + a(s)), after any batch normalisation. Layers count
        as in ``sizes``; s < t and sizes[s] == sizes[t]; at most one skip into each layer. An
        int k is the pairs (s, s + k) for s = 1, 1 + k, 1 + 2k, ... between hidden layers of
        equal width.

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
                 residual: int | Sequence[tuple[int, int]] | None = None) -> None:
        sizes = self._check_sizes(sizes)
        n_layers = len(sizes) - 1
        if isinstance(activation, str) or not isinstance(activation, (list, tuple)):
            check.check_choice(activation, HIDDEN_ACTIVATIONS + ("softmax",), "activation")
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
        if loss == "cross_entropy" and sizes[-1] < 2:
            raise ValueError("loss 'cross_entropy' needs at least 2 output neurons, one per class; "
                             f"got sizes[-1] = {sizes[-1]} (use 'sigmoid' with 'log_loss' for one)")
        init = default_init(hidden) if init is None else check.check_choice(init, INITIALIZERS, "init")
        dtype = check.check_dtype(dtype)
        bias = check.per_layer(bias, n_layers, "bias")
        for b in bias:
            if not isinstance(b, (bool, np.bool_)):
                raise TypeError(f"bias must be a bool or a list of bools; got {b!r}")
        masks = self._check_masks(masks, sizes, dtype)
        batch_norm = check.per_layer(batch_norm, n_layers - 1, "batch_norm")
        for flag in batch_norm:
            if not isinstance(flag, (bool, np.bool_)):
                raise TypeError(f"batch_norm must be a bool or a list of bools, one per hidden "
                                f"layer; got {flag!r}")
        skips = self._check_residual(residual, sizes)
        _check_memory(sizes, bias, batch_norm, dtype)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)
                                 or seed < 0):
            raise TypeError(f"seed must be None or a non-negative int; got {seed!r}")
        rng = np.random.default_rng(seed)

        self.sizes = tuple(sizes)
        self.activation = tuple(hidden)
        self.output = output
        self.loss_name = loss
        self.init = init
        self.dtype = dtype
        self.rng = rng
        self.batch_norm = tuple(bool(flag) for flag in batch_norm)
        self.residual = tuple(skips)
        codes = [ACTIVATIONS[a] for a in self.activation + (output,)]
        skip_from = dict((t, s) for s, t in skips)

        # One flat parameter vector: W(l) row-major, then b(l) where the layer has a bias, then
        # gamma(l) and beta(l) where it is batch-normalised; see nbbp.training.
        layout = np.full((n_layers, N_COLUMNS), -1, dtype=np.int64)
        offset = stats_offset = 0
        for l in range(n_layers):
            n_in, n_out = sizes[l], sizes[l + 1]
            layout[l, N_IN], layout[l, N_OUT] = n_in, n_out
            layout[l, CODE], layout[l, HAS_MASK] = codes[l], masks[l] is not None
            layout[l, W_OFF] = offset
            offset += n_in * n_out
            if bias[l]:
                layout[l, B_OFF] = offset
                offset += n_out
            if l < n_layers - 1 and self.batch_norm[l]:
                layout[l, BN_OFF], layout[l, STATS_OFF] = offset, stats_offset
                offset += 2 * n_out
                stats_offset += 2 * n_out
            layout[l, SKIP_FROM] = skip_from.get(l + 1, -1)
        self._layout = layout
        self._theta = aligned_zeros(offset, dtype)
        self._mask_theta = np.ones(offset, dtype=dtype)
        self._stats = np.zeros(stats_offset, dtype=dtype)
        for gamma, running_var in zip(self.gammas, self.running_vars):
            if gamma is not None and running_var is not None:
                gamma[...] = 1
                running_var[...] = 1
        self._weights, self._biases = self._views(self._theta)
        for l, (W, M) in enumerate(zip(self._weights, self._views(self._mask_theta)[0])):
            W[...] = initial_weights(rng, sizes[l + 1], sizes[l], init, dtype)
            if masks[l] is not None:
                M[...] = masks[l]
                W[masks[l] == 0] = 0
        self._masked = np.flatnonzero(self._mask_theta == 0)
        self._loss_code = LOSSES[loss]
        self._eps = dtype.type(np.finfo(dtype).eps)
        self._no_mask = np.zeros((0, 0), dtype=dtype)
        self._optimizer: Optimizer | None = None
        self._opt_state = np.zeros((0, offset), dtype=dtype)
        self._opt_steps = 0
        self._trainer: dict[str, int] = {}  # "thread": the thread in a training call, if any
        self.history = None

    def __getstate__(self):
        # copy.deepcopy and pickle: everything but the training claim, which no copy shares.
        state = dict(self.__dict__)
        del state["_trainer"]
        state["_weights"] = state["_biases"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._trainer = {}
        self._weights, self._biases = self._views(self._theta)

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
        masks = []
        for M, masked in zip(self._views(self._mask_theta)[0], self._layout[:, HAS_MASK]):
            if masked:
                M = M.view()
                M.flags.writeable = False
            masks.append(M if masked else None)
        return tuple(masks)

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
        return self._optimizer

    def __repr__(self) -> str:
        extra = ""
        if any(self.batch_norm):
            extra += f", batch_norm={list(self.batch_norm)}"
        if self.residual:
            extra += f", residual={list(self.residual)}"
        return (f"Network(sizes={list(self.sizes)}, activation={list(self.activation)}, "
                f"output={self.output!r}, loss={self.loss_name!r}{extra}, dtype={self.dtype.name})")

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
        training = self._check_training(training)
        X = self._inputs(X)
        self._check_batch(X, training, "forward(training=True)")
        zs, a_list = self._forward(X, training)
        self._check_finite_layers(zs, a_list, "forward")
        return a_list[-1]

    def loss(self, X: ArrayLike, y: ArrayLike, training: bool = False) -> float:
        """E, the mean over the samples of J(o, y).

        ``y`` is (n_samples, sizes[-1]); for cross_entropy also integer labels (n_samples,), and
        for a single output also (n_samples,). ``training`` as in ``forward``: with batch
        normalisation, ``loss(X, y, training=True)`` is the E that ``gradients`` differentiates
        and ``step`` and ``fit`` minimise, and the default the E of what ``predict`` computes.
        """
        training = self._check_training(training)
        X, Y = self._inputs_and_targets(X, y)
        self._check_batch(X, training, "loss(training=True)")
        zs, a_list = self._forward(X, training)
        self._check_finite_layers(zs, a_list, "loss")
        return self._loss(zs[-1], a_list[-1], Y)

    def gradients(self, X: ArrayLike, y: ArrayLike) -> Gradients:
        """dE/dW and dE/db for every layer, averaged over the batch (batch normalisation in
        training mode, its running averages left as they are).

        Returns
        -------
        Gradients
            The pair (list of dW, list of db), shapes as ``weights`` and ``biases``, db None
            where a layer has no bias; its attributes ``gammas`` and ``betas`` hold
            dE/dgamma and dE/dbeta (None where a layer is not batch-normalised).
        """
        X, Y = self._inputs_and_targets(X, y)
        self._check_batch(X, True, "gradients")
        grad, _ = self._backprop(X, Y)
        if check.first_non_finite_row(grad.reshape(1, -1)) >= 0:
            zs, a_list = self._forward(X, True)
            self._check_finite_layers(zs, a_list, "gradients")  # names the layer, if the
            raise FloatingPointError(  # forward pass overflowed already
                "gradients: the gradients overflowed (inf or NaN) for finite inputs; the inputs "
                f"or weights are too large for {self.dtype.name}")
        return Gradients(*self._views(grad), *self._batch_norm_views(grad))

    @_one_trainer
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
        saved = (self._theta.copy(), self._stats.copy())
        try:  # the running averages change in the forward pass, the weights after it
            grad, E = self._backprop(X, Y, update_running=True)
            zero = self.dtype.type(0)
            optimizer_update(SGD_CODE, self._theta, grad, self._opt_state[:0], alpha, zero, zero,
                             zero, 1, self._theta.size >= UPDATE_PARALLEL_MIN)
            if not (np.isfinite(E) and np.isfinite(self._theta).all()
                    and np.isfinite(self._stats).all()):
                raise DivergenceError(f"step diverged: the loss was {E} (a smaller "
                                      "learning_rate, or inputs of a smaller scale); the network "
                                      "keeps its weights")
        except BaseException:  # all of the step, or none (Ctrl-C waits for it: _one_trainer)
            self._theta[...], self._stats[...] = saved
            raise
        return E

    @_one_trainer
    def fit(self, X: ArrayLike, y: ArrayLike, epochs: int = 10, batch_size: int | None = 32,
            learning_rate: float = 0.01, optimizer: str | Optimizer = "sgd", l2: float = 0.0,
            shuffle: bool = True, validation_data: tuple[ArrayLike, ArrayLike] | None = None,
            validation_fraction: float | None = None, early_stopping: bool = False,
            patience: int | None = None, verbose: bool = False,
            callback: Callable[[int, History], bool | None] | None = None) -> History:
        """Train by mini-batch gradient descent; each epoch runs in one compiled call.

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
        learning_rate : float, default 0.01
        optimizer : str or Optimizer, default "sgd"
            "sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", or an ``nbbp.SGD``,
            ``nbbp.AdaGrad``, ``nbbp.RMSProp`` or ``nbbp.Adam``. Its state starts fresh.
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

        Returns
        -------
        History

        Raises
        ------
        DivergenceError
            The loss or a parameter became NaN or inf; the network keeps the weights of the last
            finite epoch.
        """
        epochs = self._check_count(epochs, "epochs")
        opt = get_optimizer(optimizer)
        check_for_dtype(opt, self.dtype)
        plan = self._plan(X, y, batch_size, learning_rate, l2, validation_data,
                          validation_fraction, early_stopping, patience, callback, shuffle,
                          verbose)
        return self._run(plan, epochs, opt, fresh_state=True)

    @_one_trainer
    def partial_fit(self, X: ArrayLike, y: ArrayLike, batch_size: int | None = 32,
                    learning_rate: float = 0.01, optimizer: str | Optimizer = "sgd",
                    l2: float = 0.0, shuffle: bool = True) -> History:
        """One epoch of training that keeps the optimizer state (velocity, Adam's m, v and t)
        from the previous ``partial_fit`` or ``fit``. A different optimizer starts fresh state.

        Returns
        -------
        History
            The one epoch.
        """
        opt = get_optimizer(optimizer)
        check_for_dtype(opt, self.dtype)
        plan = self._plan(X, y, batch_size, learning_rate, l2, None, None, False, None, None,
                          shuffle, False)
        return self._run(plan, 1, opt, fresh_state=opt != self._optimizer)

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
        if self.loss_name == "squared_error":
            raise ValueError("predict_proba needs a classification loss ('cross_entropy' or "
                             "'log_loss'); this network uses 'squared_error'")
        return self.forward(X)

    def score(self, X: ArrayLike, y: ArrayLike) -> float:
        """Accuracy for cross_entropy and log_loss (every output right), R^2 for squared_error
        (averaged over outputs)."""
        X, Y = self._inputs_and_targets(X, y)
        zs, a_list = self._forward(X)
        self._check_finite_layers(zs, a_list, "score")
        return self._score(a_list[-1], Y)

    def save(self, path: str | os.PathLike) -> None:
        """Write the network to one ``.npz`` file (no pickle), atomically: see ``nbbp.load``."""
        from .persistence import save

        save(self, path)

    # ----------------------------------------------------------------------------- internals
    def _views(self, flat):
        """Per-layer (weights, biases) views into a flat vector laid out like theta."""
        weights, biases = [], []
        for n_in, n_out, w_off, b_off in self._layout[:, [N_IN, N_OUT, W_OFF, B_OFF]]:
            weights.append(flat[w_off:w_off + n_in * n_out].reshape(n_out, n_in))
            biases.append(flat[b_off:b_off + n_out] if b_off >= 0 else None)
        return weights, biases

    def _batch_norm_views(self, flat, column=BN_OFF):
        """Per-layer (gamma, beta) views into a vector laid out like theta, or with
        column=STATS_OFF (running mean, running var) views into one laid out like stats; None
        where a layer is not batch-normalised."""
        first, second = [], []
        for n_out, off in self._layout[:, [N_OUT, column]]:
            first.append(flat[off:off + n_out] if off >= 0 else None)
            second.append(flat[off + n_out:off + 2 * n_out] if off >= 0 else None)
        return first, second

    @property
    def _has_batch_norm(self):
        return bool(np.any(self._layout[:, BN_OFF] >= 0))

    def _forward(self, X, training=False, update_running=False):
        """(zs, [X] + activations): see _forward_layers."""
        zs, a_list, _ = self._forward_layers(X, training, update_running)
        return zs, a_list

    def _forward_layers(self, X, training=False, update_running=False):
        """(zs, [X] + activations, norm) for a batch, layer by layer as training.forward_pass
        (zs[l] the input of f), with the running averages of batch normalisation, or with
        ``training`` the batch's statistics (``update_running``: moving the running averages).
        norm[l] is (z_hat, 1/sqrt(var + eps)) of a normalised layer in training mode, else None.

        Kernels called from here, not a compiled pass over the layers: such a pass would be one
        more serial function linking the parallel kernels, to compile and to keep safe in the
        cache (see _jit.start_thread_pool), for calls that are not in the training loop.
        """
        n = X.shape[0]
        dt = self.dtype.type
        gammas, betas = self._batch_norm_views(self._theta)
        means, variances = self._batch_norm_views(self._stats, STATS_OFF)
        zs, a_list, norm = [], [X], []
        for l in range(self.n_layers):
            n_out, code, bn_off, skip_from = self._layout[l, [N_OUT, CODE, BN_OFF, SKIP_FROM]]
            W, b = self._weights[l], self._biases[l]
            bias = self._theta[:0] if b is None else b
            Z = np.empty((n, n_out), dtype=self.dtype)
            A = np.empty_like(Z)
            parallel = use_threads(n * W.size)
            scratch = np.empty(forward_scratch_size(n, W.shape[1], n_out), dtype=self.dtype)
            cache = None
            if bn_off < 0 and skip_from < 0:
                forward_layer(a_list[-1], W, bias, b is not None, code, Z, A, parallel, scratch)
            else:
                forward_layer(a_list[-1], W, bias, b is not None, IDENTITY, Z, Z, parallel,
                              scratch)
                elementwise = n * n_out >= PARALLEL_MIN_ELEMENTS
                if bn_off >= 0 and training:
                    cache = (np.empty_like(Z), np.empty(n_out, dtype=self.dtype))
                    batchnorm_train(Z, gammas[l], betas[l], dt(BN_EPS), dt(BN_MOMENTUM),
                                    update_running, means[l], variances[l], cache[0],
                                    np.empty(n_out, dtype=self.dtype), cache[1], elementwise)
                elif bn_off >= 0:
                    batchnorm_inference(Z, gammas[l], betas[l], dt(BN_EPS), means[l],
                                        variances[l], elementwise)
                add_skip_and_activate(Z, a_list[skip_from] if skip_from >= 0 else Z,
                                      skip_from >= 0, code, A)
            zs.append(Z)
            a_list.append(A)
            norm.append(cache)
        return zs, a_list, norm

    def _loss(self, Z, O, Y):
        J = np.empty(Z.shape[0], dtype=np.float64)
        sample_losses(Z, O, Y, self._layout[-1, CODE], self._loss_code, self._eps, J)
        return float(J.mean())

    def _score(self, O, Y):
        if self.loss_name == "cross_entropy":
            return float(np.mean(np.argmax(O, axis=1) == np.argmax(Y, axis=1)))
        if self.loss_name == "log_loss":
            return float(np.mean(np.all((O >= 0.5) == (Y == 1), axis=1)))
        residual = np.sum((Y - O) ** 2, axis=0, dtype=np.float64)
        total = np.sum((Y - Y.mean(axis=0)) ** 2, axis=0, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            r2 = np.where(total > 0, 1 - residual / total, np.where(residual == 0, 1.0, 0.0))
        return float(np.mean(r2))

    def _backprop(self, X, Y, update_running=False):
        """(flat gradient laid out like theta, E) for one batch, in training mode, layer by
        layer as training.backward_pass."""
        zs, a_list, norm = self._forward_layers(X, True, update_running)
        E = self._loss(zs[-1], a_list[-1], Y)
        n, L = X.shape[0], self.n_layers
        grad = np.zeros_like(self._theta)
        dWs, dbs = self._views(grad)
        dgammas, dbetas = self._batch_norm_views(grad)
        gammas, _ = self._batch_norm_views(self._theta)
        # Writeable views: the read-only ones of ``masks`` would compile a second
        # weight_gradients (Numba types read-only arrays apart).
        masks = [M if masked else None for M, masked in
                 zip(self._views(self._mask_theta)[0], self._layout[:, HAS_MASK])]
        skip_from = self._layout[:, SKIP_FROM]
        deltas = [None] * L  # deltas[l] = n dE/dz of layer l, complete before it is used
        deltas[-1] = np.empty_like(zs[-1])
        output_delta(zs[-1], a_list[-1], Y, self._layout[-1, CODE], self._loss_code, self._eps,
                     deltas[-1])
        for l in reversed(range(L)):
            delta = deltas[l]
            if norm[l] is not None:
                delta_lin = np.empty_like(delta)
                batchnorm_backward(delta, norm[l][0], gammas[l], norm[l][1], dgammas[l],
                                   dbetas[l], delta_lin, delta.size >= PARALLEL_MIN_ELEMENTS)
            else:
                delta_lin = delta
            has_mask = masks[l] is not None
            parallel = use_threads(n * self._weights[l].size)
            scratch = np.empty(scratch_size(n, self.sizes[l], self.sizes[l + 1]),
                               dtype=self.dtype)
            weight_gradients(delta_lin, a_list[l], self._weights[l], self.dtype.type(0),
                             masks[l] if has_mask else self._no_mask, has_mask, dWs[l],
                             self._theta[:0] if dbs[l] is None else dbs[l], dbs[l] is not None,
                             parallel, scratch)
            if l > 0:
                code = self._layout[l - 1, CODE]
                targets = [m for m in range(L - 1, l - 1, -1) if skip_from[m] == l]
                delta_prev = np.empty_like(zs[l - 1])
                hidden_delta(delta_lin, self._weights[l], zs[l - 1], a_list[l],
                             IDENTITY if targets else code, delta_prev, parallel, scratch)
                for i, m in enumerate(targets):  # f' once, on the sum of every path's delta
                    residual_delta(delta_prev, deltas[m], zs[l - 1], a_list[l],
                                   code if i == len(targets) - 1 else IDENTITY)
                deltas[l - 1] = delta_prev
        return grad, E

    def _plan(self, X, y, batch_size, learning_rate, l2, validation_data, validation_fraction,
              early_stopping, patience, callback, shuffle, verbose):
        """Validate every training argument before anything changes; return what _train needs."""
        self._check_finite_parameters("training")
        learning_rate = check.check_positive_number(learning_rate, "learning_rate")
        l2_value = check.finite_float(l2)
        if l2_value is None or l2_value < 0:
            raise ValueError(f"l2 must be a finite number >= 0; got {l2!r}")
        l2 = l2_value
        check.as_scalar(learning_rate, self.dtype, "learning_rate")
        check.as_scalar(l2, self.dtype, "l2")
        if batch_size is not None:
            batch_size = self._check_count(batch_size, "batch_size")
        for name, flag in (("shuffle", shuffle), ("verbose", verbose)):
            if not isinstance(flag, (bool, np.bool_)):
                raise TypeError(f"{name} must be True or False; got {flag!r}")
        _check_callback(callback)
        if not isinstance(early_stopping, (bool, np.bool_)):
            raise TypeError(f"early_stopping must be True or False; got {early_stopping!r}")
        if patience is not None:
            patience = self._check_count(patience, "patience")
            if not early_stopping and validation_data is None and validation_fraction is None:
                raise ValueError("patience needs validation data: give validation_data or "
                                 "validation_fraction, or early_stopping=True (which holds out "
                                 "10% of the data)")
            early_stopping = True
        if validation_data is not None and validation_fraction is not None:
            raise ValueError("give validation_data or validation_fraction, not both")
        if early_stopping and validation_data is None and validation_fraction is None:
            validation_fraction = 0.1
        if validation_fraction is not None:
            if (isinstance(validation_fraction, bool) or not isinstance(validation_fraction, numbers.Real)
                    or not 0 < validation_fraction < 1):
                raise ValueError(f"validation_fraction must be in (0, 1); got {validation_fraction!r}")

        X = self._inputs(X)
        labels = None
        if self.loss_name == "cross_entropy":
            labels = check.as_labels(y, X.shape[0], self.sizes[-1])
        if labels is None:
            Y = check.as_targets(y, X.shape[0], self.sizes[-1], self.loss_name, self.dtype)
        else:
            Y = np.zeros((0, self.sizes[-1]), dtype=self.dtype)  # the driver one-hots the labels
        X_val = Y_val = split_rng = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ValueError("validation_data must be a pair (X_val, y_val)")
            X_val = check.as_inputs(validation_data[0], self.sizes[0], self.dtype, "validation X")
            Y_val = check.as_targets(validation_data[1], X_val.shape[0], self.sizes[-1],
                                     self.loss_name, self.dtype, "validation y")
        elif validation_fraction is not None:
            n_val = int(round(validation_fraction * X.shape[0]))
            if n_val < 1 or n_val >= X.shape[0]:
                raise ValueError(f"validation_fraction={validation_fraction} of {X.shape[0]} samples "
                                 "leaves no validation or no training samples")
            # Draw from a copy of the generator: a call that fails later must not advance it.
            split_rng = np.random.Generator(type(self.rng.bit_generator)())
            split_rng.bit_generator.state = self.rng.bit_generator.state
            perm = split_rng.permutation(X.shape[0])
            val, train = np.sort(perm[:n_val]), np.sort(perm[n_val:])
            if labels is None:
                X, Y, X_val, Y_val = X[train], Y[train], X[val], Y[val]
            else:
                X_val = X[val]
                Y_val = check.as_targets(labels[val], len(val), self.sizes[-1], self.loss_name,
                                         self.dtype)
                X, labels = X[train], labels[train]

        n = X.shape[0]
        if self._has_batch_norm and (n < 2 or batch_size == 1):
            raise ValueError(
                "batch normalisation needs batches of 2 samples or more (batch statistics); "
                + (f"got {n} training sample" if n < 2 else "got batch_size=1"))
        if batch_size is None:
            batch_size = n
        elif batch_size > n:
            warnings.warn(f"batch_size={batch_size} is larger than the {n} training samples; "
                          f"using {n}", UserWarning, stacklevel=3)
            batch_size = n
        if labels is None:
            labels = np.zeros(0, dtype=np.int64)
        return dict(X=X, Y=Y, labels=labels, X_val=X_val, Y_val=Y_val, batch_size=batch_size,
                    learning_rate=learning_rate, l2=float(l2), early_stopping=bool(early_stopping),
                    patience=10 if patience is None else patience, callback=callback,
                    split_rng=split_rng, shuffle=bool(shuffle), verbose=bool(verbose))

    def _run(self, plan, epochs, opt, fresh_state):
        """_train with ``opt``; a call that fails before completing an epoch leaves the
        optimizer, its state, the random generator and ``history`` as they were."""
        saved = (self._optimizer, self._opt_state, self._opt_steps, self.rng.bit_generator.state,
                 self.history)
        if fresh_state:
            self._optimizer = opt
            self._opt_state = aligned_zeros((opt.n_state, self._theta.size), self.dtype)
            self._opt_steps = 0
        completed = [0]  # epochs recorded: counted here, since a callback can edit history
        try:
            return self._train(plan, epochs, completed)
        except BaseException:
            if completed[0] == 0:
                self._optimizer, self._opt_state, self._opt_steps, rng_state, self.history = saved
                self.rng.bit_generator.state = rng_state
            raise

    def _train(self, plan, epochs, completed):
        shuffle, verbose = plan["shuffle"], plan["verbose"]
        if plan["split_rng"] is not None:
            self.rng.bit_generator.state = plan["split_rng"].bit_generator.state
        X, Y, labels, batch_size = plan["X"], plan["Y"], plan["labels"], plan["batch_size"]
        n, L, dt = X.shape[0], self.n_layers, self.dtype.type
        widths = self._layout[:, N_OUT]
        # Buffers for one batch of every layer, allocated once per call.
        x_buf = aligned_zeros(batch_size * self.sizes[0], self.dtype)
        y_buf = aligned_zeros(batch_size * self.sizes[-1], self.dtype)
        z_buf, a_buf, d_buf = (aligned_zeros(batch_size * int(widths.sum()), self.dtype)
                               for _ in range(3))
        # A dense network passes None for these: its epoch driver compiles no batch
        # normalisation or skip kernels (see training.forward_pass).
        stats = self._stats if self._has_batch_norm or self.residual else None
        h_buf = s_buf = None
        if stats is not None:
            h_buf = aligned_zeros(z_buf.size if self._has_batch_norm else 0, self.dtype)
            s_buf = np.empty_like(self._stats)
        J = np.empty(batch_size, dtype=np.float64)
        scratch = aligned_zeros(max(scratch_size(batch_size, n_in, n_out) for n_in, n_out in
                                    zip(self.sizes[:-1], self.sizes[1:])), self.dtype)
        grad = aligned_zeros(self._theta.size, self.dtype)
        h0, h1, h2 = (dt(h) for h in self._optimizer.hyperparameters())
        history = self.history = History()
        best = None
        stale = 0
        progress = EpochProgress(epochs) if verbose else None
        start_thread_pool()
        try:
            for epoch in range(epochs):
                # What the epoch changes, to put back if anything raises before it is recorded
                # (a kernel, an overflow, the validation pass): the network is then as after the
                # last complete epoch.
                saved = (self._theta.copy(), self._opt_state.copy(), self._opt_steps,
                         self._stats.copy(), self.rng.bit_generator.state,
                         {name: len(getattr(history, name)) for name in HISTORY_LISTS})
                # Ctrl-C is held back (by the training call) over the whole epoch, its validation
                # included, and raised once the epoch is recorded, below (so a recorded epoch is
                # never rolled back for it)
                try:
                    order = self.rng.permutation(n) if shuffle else np.arange(n)
                    grad_norm_sum = np.zeros(L)
                    delta_abs_sum = np.zeros(L)
                    total, steps, n_used = train_epoch(
                        X, Y, labels, order, batch_size, self._theta, grad, self._mask_theta,
                        self._layout, stats, dt(BN_EPS), dt(BN_MOMENTUM), self._loss_code,
                        self._eps, dt(plan["l2"]), self._optimizer.code, self._opt_state,
                        dt(plan["learning_rate"]), h0, h1, h2, self._opt_steps, x_buf,
                        y_buf, z_buf, a_buf, h_buf, s_buf, d_buf, J, scratch, grad_norm_sum,
                        delta_abs_sum)
                    E = total / n_used
                    if not (np.isfinite(E) and np.isfinite(self._theta).all()
                            and np.isfinite(self._stats).all()):
                        raise DivergenceError(
                            f"training diverged in epoch {epoch}: the loss became {E} (try a "
                            "smaller learning_rate); the network keeps the weights of the last "
                            "finite epoch", history)
                    self._opt_steps += steps
                    history.loss.append(E)
                    history.grad_norm.append(grad_norm_sum / steps)
                    history.delta_mean.append(delta_abs_sum / (n_used * widths))
                    shown = {"loss": E}
                    if plan["X_val"] is not None:
                        zs, a_list = self._forward(plan["X_val"])
                        val_loss = self._loss(zs[-1], a_list[-1], plan["Y_val"])
                        history.val_loss.append(val_loss)
                        history.val_score.append(self._score(a_list[-1], plan["Y_val"]))
                        shown.update(val_loss=val_loss, val_score=history.val_score[-1])
                        if plan["early_stopping"]:
                            # NaN is never an improvement, not even the first one.
                            if np.isfinite(val_loss) and (best is None or val_loss < best[0]):
                                best = (val_loss, epoch, self._theta.copy(),
                                        self._opt_state.copy(), self._opt_steps,
                                        self._stats.copy())
                                stale = 0
                            else:
                                stale += 1
                    completed[0] = epoch + 1  # recorded: a later error or Ctrl-C keeps it
                except BaseException:
                    (self._theta[...], self._opt_state[...], self._opt_steps,
                     self._stats[...], rng_state, lengths) = saved
                    self.rng.bit_generator.state = rng_state
                    for name, length in lengths.items():
                        del getattr(history, name)[length:]
                    raise
                hold = _let_interrupts_through()  # the epoch is recorded: Ctrl-C may come
                if progress is not None:
                    progress.epoch_done(epoch, shown)
                stop = plan["callback"] is not None and _says_stop(plan["callback"](epoch, history))
                _hold_interrupts_again(hold)
                if stop or (plan["early_stopping"] and stale >= plan["patience"]):
                    history.stopped_early = epoch + 1 < epochs
                    break
        finally:
            if progress is not None:
                progress.close()
        if plan["early_stopping"] and best is not None:
            _, history.best_epoch, theta, state, steps, stats = best
            self._theta[...], self._opt_state[...], self._opt_steps = theta, state, steps
            self._stats[...] = stats
        return history

    def _non_finite_parameter(self):
        """The name of the first parameter array holding NaN or inf ("weights[0]", ...), or None.
        Training never leaves one (a diverging epoch is rolled back), so it was set by hand."""
        vectors = (self._theta, self._stats)
        if all(check.first_non_finite_row(v.reshape(1, -1)) < 0 for v in vectors if v.size):
            return None
        for name in ("weights", "biases", "gammas", "betas", "running_means", "running_vars"):
            for l, a in enumerate(getattr(self, name)):
                if a is not None and not np.isfinite(a).all():
                    return f"{name}[{l}]"
        return "a parameter"

    def _check_finite_parameters(self, what):
        """Refuse to train or save a network whose parameters hold NaN or inf: training would
        spread them and report a divergence, and ``load`` refuses such a file."""
        name = self._non_finite_parameter()
        if name is not None:
            raise ValueError(f"{what}: {name} holds NaN or inf (set by hand?); give it finite "
                             "values first")

    def _check_finite_layers(self, zs, a_list, what):
        """A FloatingPointError naming the first layer whose pre-activations or activations are
        not finite, for inputs that were (checked on the way in): an overflow, which would
        otherwise come out as NaN probabilities, and class 0 from predict. (A ValueError naming
        the parameter if the cause is a NaN or inf set by hand in the parameters.)"""
        for l, (Z, A) in enumerate(zip(zs, a_list[1:])):
            rows = [r for r in (check.first_non_finite_row(Z), check.first_non_finite_row(A))
                    if r >= 0]
            if rows:
                self._check_finite_parameters(what)
                raise FloatingPointError(
                    f"{what}: layer {l} (of {len(zs)}) overflowed: its values are inf or NaN for "
                    f"finite inputs (first at sample {min(rows)}); the inputs or weights are too "
                    f"large for {Z.dtype.name}")

    def _check_parameters(self):
        if self._masked.size and np.any(self._theta[self._masked] != 0):
            layer = next(l for l, W in enumerate(self._views(self._mask_theta)[0])
                         if np.any(self._weights[l][W == 0] != 0))
            raise ValueError(f"weights[{layer}] has nonzero entries where masks[{layer}] is 0; "
                             "masked weights must stay 0")

    def _inputs(self, X):
        self._check_parameters()
        return check.as_inputs(X, self.sizes[0], self.dtype)

    def _inputs_and_targets(self, X, y):
        X = self._inputs(X)
        Y = check.as_targets(y, X.shape[0], self.sizes[-1], self.loss_name, self.dtype)
        return X, Y

    @staticmethod
    def _check_training(training):
        if not isinstance(training, (bool, np.bool_)):
            raise TypeError(f"training must be True or False; got {training!r}")
        return bool(training)

    def _check_batch(self, X, training, what):
        if training and self._has_batch_norm and X.shape[0] < 2:
            raise ValueError(f"{what}: batch normalisation in training mode needs a batch of 2 "
                             f"samples or more (batch statistics); got {X.shape[0]}")

    @staticmethod
    def _check_residual(residual, sizes):
        """The skips as sorted (s, t) pairs: a(s) is added to z(t)."""
        L = len(sizes) - 1
        if residual is None:
            return []
        if isinstance(residual, numbers.Integral) and not isinstance(residual, bool):
            k = int(residual)
            if k < 1:
                raise ValueError(f"residual must be an int >= 1 (a skip every k layers), a list "
                                 f"of (from, to) pairs, or None; got {residual!r}")
            pairs = [(s, s + k) for s in range(1, L - k, k) if sizes[s] == sizes[s + k]]
            if not pairs:
                raise ValueError(f"residual={k} adds no skip: sizes {sizes} have no hidden "
                                 f"layers s and s + {k} of equal width (s = 1, 1 + {k}, ...)")
            return pairs
        if isinstance(residual, (str, bytes)) or not isinstance(residual, (list, tuple)):
            raise TypeError(f"residual must be None, an int or a list of (from, to) pairs; got "
                            f"{residual!r}")
        pairs = []
        for pair in residual:
            if (not isinstance(pair, (list, tuple)) or len(pair) != 2
                    or any(isinstance(v, bool) or not isinstance(v, numbers.Integral) for v in pair)):
                raise TypeError(f"residual must be a list of (from, to) pairs of layer indices; "
                                f"got the entry {pair!r}")
            s, t = int(pair[0]), int(pair[1])
            if not 0 <= s < t <= L:
                raise ValueError(f"residual pair ({s}, {t}) must have 0 <= from < to <= {L} "
                                 "(layers count as in sizes, 0 the input)")
            if sizes[s] != sizes[t]:
                raise ValueError(f"residual pair ({s}, {t}) joins layers of different widths: "
                                 f"sizes[{s}] = {sizes[s]}, sizes[{t}] = {sizes[t]}")
            if any(t == other for _, other in pairs):
                raise ValueError(f"residual has two skips into layer {t}; at most one per layer")
            pairs.append((s, t))
        return sorted(pairs, key=lambda pair: pair[1])

    @staticmethod
    def _check_count(value, name):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1; got {value!r}")
        return int(value)

    @staticmethod
    def _check_sizes(sizes):
        # An ordered sequence: a set would come out sorted, a dict as its keys, and a 0-d array
        # has a __len__ that raises
        if (isinstance(sizes, (str, bytes, AbstractSet, Mapping)) or not hasattr(sizes, "__len__")
                or np.ndim(sizes) == 0):  # a list, tuple, array or pandas Series
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
            try:
                arr = np.asarray(m)
            except (ValueError, TypeError) as exc:  # ragged rows
                raise ValueError(f"masks[{l}] must be a 0/1 array of shape "
                                 f"{(sizes[l + 1], sizes[l])}; could not make an array of it: "
                                 f"{exc}") from None
            shape = (sizes[l + 1], sizes[l])
            if arr.shape != shape:
                raise ValueError(f"masks[{l}] must have shape {shape} (sizes[{l + 1}], sizes[{l}]); "
                                 f"got {arr.shape}")
            if arr.dtype.kind not in "biuf" or not np.all((arr == 0) | (arr == 1)):
                raise ValueError(f"masks[{l}] must hold only 0 and 1")
            out.append(np.array(arr, dtype=dtype, order="C"))  # a copy: the caller's array stays theirs
        return out
