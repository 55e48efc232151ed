"""scikit-learn estimators trained by nbbp: ``MLPClassifier`` and ``MLPRegressor``.

They take the constructor parameters of ``sklearn.neural_network.MLPClassifier`` and
``MLPRegressor`` and train a ``Network``: "sgd" and "adam" one epoch at a time with
``Network.partial_fit``, which keeps the optimizer state between calls; "lbfgs" in one
``Network.fit`` with ``nbbp.LBFGS``. Stopping, learning-rate schedules and early stopping follow
scikit-learn's rules between epochs; the epochs themselves run in nbbp's compiled kernels.

This is the only nbbp module that imports scikit-learn (the ``nbbp[sklearn]`` extra).
"""

from __future__ import annotations

import copy
import itertools
import numbers
import warnings
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import scipy.sparse
from numpy.typing import ArrayLike, DTypeLike
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets, type_of_target, unique_labels
from sklearn.utils.validation import (
    _check_sample_weight,
    check_is_fitted,
    column_or_1d,
    validate_data,
)

from . import _validation as check
from .history import DivergenceError
from .network import Network
from .optimizers import LBFGS, SGD, Adam

# scikit-learn's activation names -> nbbp's.
ACTIVATIONS = {"identity": "identity", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu"}
SOLVERS = ("lbfgs", "sgd", "adam")
LEARNING_RATES = ("constant", "invscaling", "adaptive")
# The output layer: scikit-learn's out_activation_ -> (nbbp output, nbbp loss). These are the
# matched pairs whose output delta is o - y, as in scikit-learn.
OUTPUT_LAYERS = {
    "softmax": ("softmax", "cross_entropy"),
    "logistic": ("sigmoid", "log_loss"),
    "identity": ("identity", "squared_error"),
    "exp": ("exp", "poisson"),
}
# Sparse X becomes dense this many rows at a time (a whole number of batches in training), never
# as a whole: 4,096 rows of 1,000 float64 features are 33 MB.
SPARSE_CHUNK_ROWS = 4096
# scikit-learn's adaptive schedule divides the learning rate by 5 after n_iter_no_change stale
# epochs and stops once it is at most 1e-6.
ADAPTIVE_FACTOR = 5.0
ADAPTIVE_MIN_RATE = 1e-6


def _integer(value, name, low=1):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}; got {value!r}")
    return int(value)


def _flag(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False; got {value!r}")
    return bool(value)


def _stochastic(estimator):
    """partial_fit's availability, as scikit-learn's: the stochastic solvers only."""
    if estimator.solver not in ("sgd", "adam"):
        raise AttributeError(f"partial_fit is only available for stochastic optimizers. "
                             f"{estimator.solver} is not stochastic.")
    return True


def _new_dropout(dropout, n_hidden):
    """The dropout a new network would take, one float per hidden layer, or None for a value
    that Network will refuse (with its own message)."""
    values = list(dropout) if isinstance(dropout, (list, tuple)) else [dropout] * n_hidden
    try:
        return tuple(float(p) for p in values)
    except (TypeError, ValueError):
        return None


def _dense(X):
    """A dense C-ordered array of X's rows (X sparse), or X itself."""
    return np.ascontiguousarray(X.toarray()) if scipy.sparse.issparse(X) else X


def _forward(network, X):
    """network.forward(X); a sparse X a chunk of rows at a time."""
    if not scipy.sparse.issparse(X):
        return network.forward(X)
    return np.concatenate([network.forward(_dense(X[start:start + SPARSE_CHUNK_ROWS]))
                           for start in range(0, X.shape[0], SPARSE_CHUNK_ROWS)])


def _sparse_lbfgs(network, X, targets, weights, l2, params, tol):
    """L-BFGS-B, as Network.fit(optimizer=LBFGS) runs it, on a sparse X: the loss and gradient
    of the whole set summed over chunks of SPARSE_CHUNK_ROWS dense rows, each from the
    network's kernels (loss and gradients), weighted by its share of the samples' weight.
    Leaves the network at the result; returns SciPy's OptimizeResult."""
    from scipy import optimize

    n = X.shape[0]
    w = np.ones(n) if weights is None else weights
    total = float(w.sum())
    arrays = [a for W, b in zip(network.weights, network.biases) for a in (W, b)]
    bounds = np.cumsum([0] + [a.size for a in arrays])

    def set_parameters(x):
        for a, start, stop in zip(arrays, bounds[:-1], bounds[1:]):
            a[...] = x[start:stop].reshape(a.shape)

    def objective(x):
        set_parameters(x)
        E = 0.5 * l2 * sum(float(np.sum(W.astype(np.float64) ** 2)) for W in network.weights)
        grad = []  # in the order of ``arrays``: W(l), then b(l)
        for W, b in zip(network.weights, network.biases):
            grad += [l2 * W.astype(np.float64), np.zeros(b.shape)]
        for start in range(0, n, SPARSE_CHUNK_ROWS):
            rows = slice(start, start + SPARSE_CHUNK_ROWS)
            share = float(w[rows].sum()) / total
            if share == 0:
                continue
            Xc, yc, wc = _dense(X[rows]), targets[rows], None if weights is None else w[rows]
            E += share * network.loss(Xc, yc, training=True, sample_weight=wc)
            dWs, dbs = network.gradients(Xc, yc, sample_weight=wc)
            for i, g in enumerate(g for pair in zip(dWs, dbs) for g in pair):
                grad[i] += share * g
        return E, np.concatenate([g.ravel() for g in grad])

    start = np.concatenate([a.ravel() for a in arrays]).astype(np.float64)
    result = optimize.minimize(objective, start, jac=True, method="L-BFGS-B",
                               options=dict(maxiter=params["max_iter"], maxfun=params["max_fun"],
                                            gtol=tol, maxcor=10))
    set_parameters(result.x)
    if not (np.isfinite(result.fun) and all(np.isfinite(a).all() for a in arrays)):
        raise ValueError(f"training diverged: L-BFGS's loss became {result.fun}. Scale the "
                         "inputs or raise alpha.")
    return result


def _writeable(a):
    """``a`` as a plain writeable ndarray: Numba compiles a separate specialisation of every
    kernel for read-only arrays (a read-only memmap, say), which would cost seconds per kernel."""
    a = np.asarray(a)
    return a if a.flags.writeable else a.copy()


_PARAMETERS = """
    hidden_layer_sizes : int or sequence of int, default=(100,)
        Neurons of each hidden layer.
    activation : {"identity", "logistic", "tanh", "relu"}, default="relu"
        Activation of the hidden layers ("logistic" is nbbp's "sigmoid").
    solver : {"lbfgs", "sgd", "adam"}, default="adam"
        The optimizer: ``nbbp.LBFGS`` (full batch, through SciPy's L-BFGS-B as scikit-learn's;
        no partial_fit, batch_size or early stopping), ``nbbp.SGD`` with ``momentum`` and
        ``nesterovs_momentum``, or ``nbbp.Adam``.
    alpha : float, default=0.0001
        L2 penalty: each batch of b samples adds alpha / (2 b) sum ||W||^2 to its loss, as in
        scikit-learn (biases are not penalised).
    batch_size : int or "auto", default="auto"
        Samples per mini-batch; "auto" is min(200, n_samples). Larger values are clipped to
        n_samples with a warning.
    learning_rate : {"constant", "invscaling", "adaptive"}, default="constant"
        Schedule of the SGD learning rate: constant; learning_rate_init / (t_ + 1) ** power_t
        after every epoch; or divided by 5 whenever n_iter_no_change epochs pass without
        improvement (training stops once it is at most 1e-6). Adam uses learning_rate_init.
    learning_rate_init : float, default=0.001
        The (initial) learning rate.
    power_t : float, default=0.5
        Exponent of the "invscaling" schedule.
    max_iter : int, default=200
        Maximum number of epochs.
    shuffle : bool, default=True
        Shuffle the samples every epoch.
    random_state : int, RandomState instance or None, default=None
        Draws the initial coefs and intercepts, the validation split of early stopping and the
        shuffling, in scikit-learn's order (see Notes).
    tol : float, default=1e-4
        Training stops when the loss (or the validation score, with early_stopping) has not
        improved by at least tol for more than n_iter_no_change consecutive epochs.
    verbose : bool or int, default=False
        Print the loss after every epoch.
    warm_start : bool, default=False
        Start ``fit`` from the current coefs_ and intercepts_ (the optimizer state starts
        fresh, as in scikit-learn).
    momentum : float, default=0.9
        SGD momentum, in [0, 1).
    nesterovs_momentum : bool, default=True
        Nesterov's momentum (with momentum > 0).
    early_stopping : bool, default=False
        Hold out validation_fraction of the training data, stop when its score (accuracy or
        R^2) has not improved by tol for more than n_iter_no_change epochs, and keep the
        parameters of the best epoch.
    validation_fraction : float, default=0.1
        Fraction held out for early stopping, in (0, 1).
    beta_1, beta_2 : float, default=0.9, 0.999
        Adam's decay rates of the first and second moments, in [0, 1).
    epsilon : float, default=1e-8
        Adam's epsilon (torch.optim's placement: added to sqrt(v / (1 - beta_2^t))).
    n_iter_no_change : int or np.inf, default=10
        Stale epochs tolerated before stopping (or, with "adaptive", lowering the rate).
    max_fun : int, default=15000
        With "lbfgs", the most evaluations of the loss (max_iter caps its iterations).
    dropout : float or sequence of float, default=0.0
        Inverted dropout of the hidden activations in training (``nbbp.Network``'s), one
        probability or one per hidden layer; not with "lbfgs". scikit-learn's MLP has none.
    dtype : float32, float64 or None, default=None
        Precision of the network's parameters and computation. None follows the training data,
        as scikit-learn does: float32 X trains in float32 throughout, any other X in float64
        (a warm start or partial_fit keeps the dtype of the first fit). Predictions are float32
        for float32 X and float64 otherwise, as scikit-learn's.
"""

_ATTRIBUTES = """
    loss_ : float
        Training loss of the last epoch, in scikit-learn's convention (see Notes).
    loss_curve_ : list of float
        Training loss of every epoch.
    best_loss_ : float or None
        Lowest training loss so far; None with early_stopping.
    validation_scores_ : list of float or None
        Validation score of every epoch with early_stopping, else None.
    best_validation_score_ : float or None
        Best validation score with early_stopping, else None.
    t_ : int
        Training samples seen (n_samples per epoch).
    coefs_ : list of ndarray
        ``coefs_[l]`` has shape (n_in, n_out): scikit-learn's orientation, the transpose of
        ``Network.weights[l]``. A list of copies: assign to it, or into it, before a warm start.
    intercepts_ : list of ndarray
        ``intercepts_[l]`` has shape (n_out,).
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of str
        Names of the features seen during fit, when X has string column names.
    n_iter_ : int
        Epochs run by the last ``fit`` (1 after ``partial_fit``).
    n_layers_ : int
        Number of layers, input and output included.
    n_outputs_ : int
        Number of output neurons.
    out_activation_ : str
        Activation of the output layer."""

_NOTES = """
    The network starts from scikit-learn's Glorot-uniform coefs and intercepts, drawn from
    random_state in scikit-learn's order, and the early-stopping split and the epochs' shuffles
    draw from it as scikit-learn's do: from the same random_state, an SGD or L-BFGS fit follows
    scikit-learn's to rounding (Adam to about 1e-6, see below).

    Training matches scikit-learn's update rule batch for batch: nbbp's ``l2`` is alpha / b for
    a batch of b samples (the last, partial batch of an epoch gets its own b), SGD momentum in
    torch's form equals scikit-learn's form at a constant learning rate (Nesterov's included),
    and loss_curve_ averages every batch's loss, at the weights that batch saw, over the epoch's
    samples. Two differences: Adam adds epsilon to sqrt(v / (1 - beta_2^t)) rather than to
    sqrt(v), and when "invscaling" or "adaptive" changes the SGD learning rate, the new rate
    scales the whole momentum velocity at once.

    solver="lbfgs" calls scipy.optimize.minimize(method="L-BFGS-B") as scikit-learn does, with
    the loss and gradient of the whole training set from nbbp's kernels (``nbbp.LBFGS``); from
    the same initial weights it follows scikit-learn's iterates to rounding, except for
    multi-output regression: there scikit-learn's loss averages the squared error over the
    outputs while its gradient sums over them, so its line search sees a function whose
    gradient is not the one it is given; nbbp hands L-BFGS the summed loss and its gradient,
    and converges elsewhere.

    With sample_weight, each batch minimises (sum_k w_k J_k + alpha/2 sum ||W||^2) / sum_k w_k,
    scikit-learn's objective (``Network.partial_fit(..., l2=alpha, l2_per_batch=True)``, the
    whole epoch in one compiled call). A batch whose weights are all 0 takes no step.

    Sparse X (CSR; other formats are converted) trains with "sgd" and "adam" and predicts
    without ever being dense as a whole: SPARSE_CHUNK_ROWS rows at a time, whole batches in
    training, with the same results as the dense X (without dropout, whose masks are drawn per
    call). "lbfgs" sums the loss and gradient over the same chunks (equal to the dense X's to
    rounding).
"""


class _BaseMLP(BaseEstimator):
    """Training and prediction shared by MLPClassifier and MLPRegressor."""

    _y_checks: ClassVar[dict[str, bool]] = {}  # validate_data's checks of y
    _stratify = False

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True  # CSR, densified a chunk of rows at a time
        return tags

    def _targets(self, y, dtype, incremental, first_pass, classes):
        """(network targets, n_outputs, out_activation_, attributes to set once all is checked)."""
        raise NotImplementedError

    def _score_outputs(self, output, y, sample_weight=None):
        """The score (accuracy, R^2) of the output layer's activations against y."""
        raise NotImplementedError

    def _weights(self, y, sample_weight, X):
        """The samples' weights (float64), or None: sample_weight (and, in MLPClassifier,
        class_weight)."""
        if sample_weight is None:
            return None
        return _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)

    # ------------------------------------------------------------------- parameter checks
    def _checked_params(self):
        """The constructor parameters validated, and converted to what training needs."""
        sizes = self.hidden_layer_sizes
        if isinstance(sizes, numbers.Integral) and not isinstance(sizes, bool):
            sizes = [sizes]
        try:
            hidden = list(sizes)
        except TypeError:
            hidden = None
        if hidden is None or not all(isinstance(s, numbers.Integral) and not isinstance(s, bool)
                                     and s >= 1 for s in hidden):
            raise ValueError("hidden_layer_sizes must be a positive int or a sequence of positive "
                             f"ints; got {self.hidden_layer_sizes!r}")
        check.check_choice(self.solver, SOLVERS, "solver")
        check.check_choice(self.activation, ACTIVATIONS, "activation")
        check.check_choice(self.learning_rate, LEARNING_RATES, "learning_rate")
        if not (self.batch_size == "auto" if isinstance(self.batch_size, str)
                else isinstance(self.batch_size, numbers.Integral)
                and not isinstance(self.batch_size, bool) and self.batch_size >= 1):
            raise ValueError("batch_size must be 'auto' or an integer >= 1; got "
                             f"{self.batch_size!r}")
        n_iter_no_change = self.n_iter_no_change
        if not (isinstance(n_iter_no_change, numbers.Real) and n_iter_no_change == np.inf):
            n_iter_no_change = _integer(n_iter_no_change, "n_iter_no_change")
        verbose = self.verbose
        if isinstance(verbose, (bool, np.bool_)) or not isinstance(verbose, numbers.Integral):
            verbose = _flag(verbose, "verbose")
        for name in ("shuffle", "warm_start", "nesterovs_momentum", "early_stopping"):
            _flag(getattr(self, name), name)
        for name, low, low_open in (("alpha", 0.0, False), ("learning_rate_init", 0.0, True),
                                    ("power_t", 0.0, False), ("tol", 0.0, False),
                                    ("epsilon", 0.0, True)):
            check.check_real(getattr(self, name), name, low, low_open=low_open)
        for name in ("momentum", "beta_1", "beta_2", "validation_fraction"):
            check.check_real(getattr(self, name), name, 0.0, 1.0, high_open=True)
        if self.early_stopping and self.validation_fraction == 0:
            raise ValueError("validation_fraction must be > 0 with early_stopping=True: early "
                             "stopping scores a held-out fraction of the data; got 0")
        return dict(hidden=[int(s) for s in hidden], max_iter=_integer(self.max_iter, "max_iter"),
                    max_fun=_integer(self.max_fun, "max_fun"),
                    n_iter_no_change=n_iter_no_change, verbose=verbose,
                    dtype=None if self.dtype is None else check.check_dtype(self.dtype))

    def _optimizer(self):
        if self.solver == "adam":
            return Adam(beta1=self.beta_1, beta2=self.beta_2, eps=self.epsilon)
        return SGD(momentum=self.momentum, nesterov=self.nesterovs_momentum and self.momentum > 0)

    # ------------------------------------------------------------------------------ fitting
    def _fit(self, X, y, incremental, classes=None, sample_weight=None):
        """fit and partial_fit. A call that fails before it completes an epoch (bad y after
        validate_data has reset n_features_in_, a network the dtype cannot train) leaves the
        estimator as it was: unfitted, or fitted as before."""
        saved = self.__dict__.copy()
        # The network a partial_fit or warm start trains on: an epoch can be several
        # Network.partial_fit calls (full batches then the last one, or chunks of a sparse X),
        # and a failure in a later one leaves the earlier applied, optimizer state included. A
        # copy is what "as it was" restores.
        if "_network" in saved and (incremental or self.warm_start):  # else a new one trains
            saved["_network"] = copy.deepcopy(saved["_network"])
        completed = [0]  # epochs this call trained
        try:
            return self._fit_epochs(X, y, incremental, classes, completed, sample_weight)
        except BaseException:
            if completed[0] == 0:
                self.__dict__.clear()
                self.__dict__.update(saved)
            raise

    def _fit_epochs(self, X, y, incremental, classes, completed, sample_weight):
        params = self._checked_params()
        if incremental and self.early_stopping:
            raise ValueError("partial_fit does not support early_stopping=True: it trains one "
                             "epoch on the data it is given; use fit")
        first_pass = not hasattr(self, "coefs_") or not (self.warm_start or incremental)
        if params["dtype"] is None:  # X's float dtype, as scikit-learn; or the first fit's
            params["dtype"] = ((np.float64, np.float32) if first_pass
                               else np.dtype(self.coefs_[0].dtype))
        X, y = validate_data(self, X, y, multi_output=True, dtype=params["dtype"], order="C",
                             reset=first_pass, accept_sparse="csr", **self._y_checks)
        params["dtype"] = X.dtype
        if not scipy.sparse.issparse(X):
            X = _writeable(X)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        weights = self._weights(y, sample_weight, X)
        targets, n_outputs, out_activation, encoder = self._targets(
            y, params["dtype"], incremental, first_pass, classes)
        sizes = [X.shape[1], *params["hidden"], n_outputs]
        rng = check_random_state(self.random_state)
        if first_pass:
            network = self._new_network(sizes, out_activation, params["dtype"])
            self._initialize(network, rng)
            if any(network.dropout):
                # the masks follow random_state too (drawn after scikit-learn's draws, which
                # stay in step: with dropout there is no scikit-learn fit to equal anyway)
                network.rng = np.random.default_rng(rng.randint(2**31))
        else:
            if [c.shape for c in self.coefs_] != list(itertools.pairwise(sizes)):
                raise ValueError("hidden_layer_sizes, n_features or the number of outputs changed "
                                 f"since the last fit: layers {sizes} need coefs_ of shapes "
                                 f"{list(itertools.pairwise(sizes))}; got "
                                 f"{[c.shape for c in self.coefs_]}")
            network = self._reusable_network(sizes, params) if incremental else None
            if network is None:  # a warm-started fit starts a fresh optimizer, as scikit-learn's
                network = self._new_network(sizes, out_activation, params["dtype"])
            self._load_parameters(network)
        X_val = y_val = w_val = None
        stochastic = self.solver != "lbfgs"  # L-BFGS trains full batch, without early stopping
        if self.early_stopping and stochastic:
            # As scikit-learn: stratified for a classifier with one output (binary) only.
            stratify = y if self._stratify and n_outputs == 1 else None
            split = train_test_split(X, targets, y, *([] if weights is None else [weights]),
                                     random_state=rng, test_size=self.validation_fraction,
                                     stratify=stratify)
            X, X_val, targets, _, _, y_val = split[:6]
            if weights is not None:
                weights, w_val = split[6:]
                if not weights.any() or not w_val.any():
                    raise ValueError("sample_weight is 0 for every "
                                     f"{'training' if not weights.any() else 'validation'} "
                                     "sample of early stopping's split: there is nothing to "
                                     f"{'learn from' if not weights.any() else 'score'}")
            if X_val.shape[0] < 2:
                raise ValueError(f"validation_fraction={self.validation_fraction} of the data "
                                 f"leaves {X_val.shape[0]} validation sample(s); early stopping "
                                 "needs at least 2")
        n = X.shape[0]
        if self.batch_size == "auto":
            batch_size = min(200, n)
        else:
            if self.batch_size > n and stochastic:  # L-BFGS uses no batch_size
                warnings.warn(f"batch_size={self.batch_size} is larger than the {n} training "
                              f"samples; using {n}", UserWarning, stacklevel=3)
            batch_size = min(self.batch_size, n)

        # Everything is checked: from here on the estimator changes.
        for name, value in encoder.items():
            setattr(self, name, value)
        if first_pass:
            self.n_layers_, self.n_outputs_ = len(sizes), n_outputs
            self.out_activation_ = out_activation
            self.n_iter_ = self.t_ = 0
            self.coefs_, self.intercepts_ = self._read_parameters(network)
        if not stochastic:  # as scikit-learn's: no loss curve nor stopping records
            self._network = network
            try:
                self._train_lbfgs(network, X, targets, weights, params, completed)
            finally:
                self.coefs_, self.intercepts_ = self._read_parameters(network)
            return self
        if first_pass or not hasattr(self, "loss_curve_"):  # (a warm start after lbfgs)
            self.loss_curve_ = []
        if (first_pass or not hasattr(self, "_no_improvement_count")
                or self.early_stopping != (self.validation_scores_ is not None)):
            # The stopping rule's records, which warm starts and partial_fit carry on.
            self._no_improvement_count = 0
            if self.early_stopping:
                self.validation_scores_, self.best_validation_score_ = [], -np.inf
                self.best_loss_ = None
                self._best_parameters = self._read_parameters(network)
            else:
                self.validation_scores_ = self.best_validation_score_ = None
                self.best_loss_ = np.inf
        if network is not getattr(self, "_network", None):  # fresh optimizer state
            self._rate = self.learning_rate_init
        self._network = network
        try:
            self._train(network, X, targets, weights, X_val, y_val, w_val, rng, batch_size,
                        params, incremental, completed)
        finally:
            self.coefs_, self.intercepts_ = self._read_parameters(network)
        if self.early_stopping:
            self.coefs_, self.intercepts_ = ([a.copy() for a in arrays]
                                             for arrays in self._best_parameters)
        return self

    def _train_lbfgs(self, network, X, targets, weights, params, completed):
        """scikit-learn's lbfgs solver: Network.fit with nbbp.LBFGS, its penalty alpha/(2S)
        ||W||^2 on the whole set of weight S (l2 = alpha / S); for a sparse X, _sparse_lbfgs."""
        total_weight = X.shape[0] if weights is None else float(weights.sum())
        l2 = self.alpha / total_weight
        if scipy.sparse.issparse(X):
            result = _sparse_lbfgs(network, X, targets, weights, l2, params, self.tol)
        else:
            try:
                history = network.fit(
                    X, targets, epochs=params["max_iter"], batch_size=None, shuffle=False,
                    optimizer=LBFGS(max_fun=params["max_fun"], tol=self.tol), l2=l2,
                    sample_weight=weights)
            except DivergenceError as exc:
                raise ValueError(f"training diverged: {exc}. Scale the inputs (StandardScaler) "
                                 "or raise alpha.") from exc
            result = history.result
        completed[0] = self.n_iter_ = int(result.nit)
        self.loss_ = self._convert_loss(float(result.fun), network, 1 / total_weight)
        if params["verbose"]:
            print(f"L-BFGS: {result.message} after {result.nit} iterations, loss = "
                  f"{self.loss_:.8f}", flush=True)
        if result.status != 0:
            warnings.warn(f"lbfgs failed to converge after {result.nit} iteration(s) "
                          f"(status={result.status}): {result.message}. Increase max_iter "
                          f"(now {params['max_iter']}) or max_fun (now {params['max_fun']}), "
                          "or scale the data.", ConvergenceWarning, stacklevel=4)

    def _train(self, network, X, targets, weights, X_val, y_val, w_val, rng, batch_size, params,
               incremental, completed):
        """scikit-learn's epoch loop; each epoch runs in Network.partial_fit. Counts the
        epochs done in ``completed[0]``."""
        optimizer = self._optimizer()
        adaptive = self.solver == "sgd" and self.learning_rate == "adaptive"
        n = X.shape[0]
        self.n_iter_ = 0
        order = np.arange(n) if self.shuffle else None
        try:
            for _ in range(params["max_iter"]):
                if order is not None:  # as scikit-learn's: the last order, permuted
                    order = order[rng.permutation(n)]
                self.loss_ = self._epoch(network, X, targets, weights, order, batch_size,
                                         optimizer)
                self.n_iter_ += 1
                completed[0] += 1
                self.t_ += n
                self.loss_curve_.append(self.loss_)
                if params["verbose"]:
                    print(f"Iteration {self.n_iter_}, loss = {self.loss_:.8f}", flush=True)
                self._count_stale_epoch(network, X_val, y_val, w_val, params["verbose"])
                if self.solver == "sgd" and self.learning_rate == "invscaling":
                    self._rate = self.learning_rate_init / (self.t_ + 1) ** self.power_t
                if self._no_improvement_count > params["n_iter_no_change"]:
                    what = "validation score" if self.early_stopping else "training loss"
                    if not adaptive or self._rate <= ADAPTIVE_MIN_RATE:
                        if params["verbose"]:
                            print(f"The {what} did not improve by tol={self.tol} for "
                                  f"{params['n_iter_no_change']} epochs: stopping.", flush=True)
                        break
                    self._rate /= ADAPTIVE_FACTOR
                    self._no_improvement_count = 0
                    if params["verbose"]:
                        print(f"The {what} did not improve by tol={self.tol}: learning rate "
                              f"now {self._rate:g}.", flush=True)
                if incremental:
                    break
                if self.n_iter_ == params["max_iter"]:
                    warnings.warn(
                        f"{type(self).__name__} ran max_iter={params['max_iter']} epochs and the "
                        f"{'validation score' if self.early_stopping else 'training loss'} was "
                        f"still improving by more than tol={self.tol}; increase max_iter.",
                        ConvergenceWarning, stacklevel=4)
        except KeyboardInterrupt:
            warnings.warn(f"Training interrupted after {self.n_iter_} epochs; the estimator keeps "
                          "the parameters trained so far.", UserWarning, stacklevel=4)
        except DivergenceError as exc:
            raise ValueError(f"training diverged: {exc}. Scale the inputs (StandardScaler) or "
                             "lower learning_rate_init.") from exc

    def _epoch(self, network, X, targets, weights, order, batch_size, optimizer):
        """One epoch; returns its loss in scikit-learn's convention.

        scikit-learn's penalty for a batch of b samples is alpha/(2b) ||W||^2 on the batch loss
        (gradient alpha/b W), nbbp's is l2/2 ||W||^2 on the mean sample loss (gradient l2 W):
        l2 = alpha/b. The full batches and the last, partial one therefore run as two calls,
        each with its own l2; Network.partial_fit keeps the optimizer state between them. With
        sample weights b is the batch's sum of weights, which Network's l2_per_batch takes
        batch by batch, in one call. A sparse X is densified by call, in calls of whole batches
        of at most SPARSE_CHUNK_ROWS rows.
        """
        if order is not None:
            X, targets = X[order], targets[order]
            weights = None if weights is None else weights[order]
        n = X.shape[0]
        n_full = n - n % batch_size
        rows = n_full if weights is None else n
        if scipy.sparse.issparse(X):
            rows = max(1, SPARSE_CHUNK_ROWS // batch_size) * batch_size
        ends = (n_full, n) if weights is None else (n,)
        bounds = [(start, min(start + rows, ends[0])) for start in range(0, ends[0], rows)]
        if weights is None and n > n_full:
            bounds.append((n_full, n))
        total = penalty_share = 0.0
        for start, stop in bounds:
            size = min(batch_size, stop - start)
            if weights is None:
                history = network.partial_fit(
                    _dense(X[start:stop]), targets[start:stop], batch_size=size,
                    learning_rate=self._rate, optimizer=optimizer, l2=self.alpha / size,
                    shuffle=False)
                total += history.loss[0] * (stop - start)
                penalty_share += (stop - start) / size
                continue
            # per batch: its weight, and its samples if the weight is not 0 (else no step)
            sums = np.add.reduceat(weights[start:stop], np.arange(0, stop - start, size))
            sizes = np.diff(np.r_[np.arange(0, stop - start, size), stop - start])
            if not sums.any():
                continue
            history = network.partial_fit(
                _dense(X[start:stop]), targets[start:stop], batch_size=size,
                learning_rate=self._rate, optimizer=optimizer, l2=self.alpha, shuffle=False,
                sample_weight=weights[start:stop], l2_per_batch=True)
            total += history.loss[0] * sizes[sums > 0].sum()
            penalty_share += float(np.sum(sizes[sums > 0] / sums[sums > 0]))
        return self._convert_loss(total / n, network, penalty_share / n)

    def _convert_loss(self, loss, network, penalty_share):
        return loss

    def _count_stale_epoch(self, network, X_val, y_val, w_val, verbose):
        """Count epochs that did not improve by tol: scikit-learn's stopping rule."""
        if not self.early_stopping:
            if self.loss_curve_[-1] > self.best_loss_ - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            self.best_loss_ = min(self.best_loss_, self.loss_curve_[-1])
            return
        try:
            score = self._score_outputs(_forward(network, X_val), y_val, w_val)
        except FloatingPointError:  # the validation outputs overflowed
            score = np.nan
        self.validation_scores_.append(score)
        if verbose:
            print(f"Validation score: {score:.6f}", flush=True)
        if score < self.best_validation_score_ + self.tol:
            self._no_improvement_count += 1
        else:
            self._no_improvement_count = 0
        if score > self.best_validation_score_:
            self.best_validation_score_ = score
            self._best_parameters = self._read_parameters(network)

    # ---------------------------------------------------------------- network and parameters
    def _initialize(self, network, rng):
        """scikit-learn's initial parameters, drawn from ``rng`` in its order: per layer,
        coefs U(-b, b) then intercepts U(-b, b), b = sqrt(6 / (n_in + n_out)) (2 for the
        logistic), in float64 and then cast; so the same random_state gives the same start, and
        leaves the generator where scikit-learn's is for the split and the shuffles."""
        factor = 2.0 if self.activation == "logistic" else 6.0
        for W, b in zip(network.weights, network.biases):
            n_out, n_in = W.shape
            bound = np.sqrt(factor / (n_in + n_out))
            W[...] = rng.uniform(-bound, bound, (n_in, n_out)).T
            b[...] = rng.uniform(-bound, bound, n_out)

    def _new_network(self, sizes, out_activation, dtype, seed=0):
        """A Network for the current parameters, with fresh optimizer state."""
        output, loss = OUTPUT_LAYERS[out_activation]
        return Network(sizes, activation=ACTIVATIONS[self.activation], output=output, loss=loss,
                       init="xavier", seed=seed, dtype=dtype, dropout=self.dropout)

    def _reusable_network(self, sizes, params):
        """The network of the last call if partial_fit can go on with its optimizer state."""
        network = getattr(self, "_network", None)
        if (network is None or list(network.sizes) != sizes or network.dtype != params["dtype"]
                or network.dropout != _new_dropout(self.dropout, len(params["hidden"]))
                or network.activation != (ACTIVATIONS[self.activation],) * len(params["hidden"])):
            return None
        return network

    @staticmethod
    def _read_parameters(network):
        """(coefs, intercepts) in scikit-learn's orientation: copies, not views."""
        # W.T.copy(): np.ascontiguousarray(W.T) is a view of W itself when W has one row or one
        # column (a single output), and then followed training
        coefs = [W.T.copy() for W in network.weights]
        return coefs, [b.copy() for b in network.biases]

    def _load_parameters(self, network):
        """Write coefs_ and intercepts_ into the network: they are what the estimator is."""
        if len(self.coefs_) != network.n_layers or len(self.intercepts_) != network.n_layers:
            raise ValueError(f"coefs_ and intercepts_ must hold {network.n_layers} arrays, one per "
                             f"layer; got {len(self.coefs_)} and {len(self.intercepts_)}")
        for l, (W, b) in enumerate(zip(network.weights, network.biases)):
            coef, intercept = np.asarray(self.coefs_[l]), np.asarray(self.intercepts_[l])
            if coef.shape != W.T.shape or intercept.shape != b.shape:
                raise ValueError(f"coefs_[{l}] and intercepts_[{l}] must have shapes {W.T.shape} "
                                 f"and {b.shape}; got {coef.shape} and {intercept.shape}")
            W[...] = coef.T
            b[...] = intercept

    def _holds_parameters(self, network):
        """Whether the network's parameters equal coefs_ and intercepts_ (which a user may
        have changed since training). A comparison, not a copy: predict writes nothing."""
        return (len(self.coefs_) == network.n_layers
                and all(np.array_equal(W.T, coef) and np.array_equal(b, intercept)
                        for W, b, coef, intercept in zip(network.weights, network.biases,
                                                         self.coefs_, self.intercepts_)))

    def _outputs(self, X):
        """The output layer's activations for X, from coefs_ and intercepts_."""
        check_is_fitted(self)
        network = self._network
        # As scikit-learn's: float32 outputs for float32 X, float64 for any other X.
        out_dtype = np.float32 if getattr(X, "dtype", None) == np.float32 else np.float64
        X = validate_data(self, X, dtype=network.dtype, order="C", reset=False,
                          accept_sparse="csr")
        X = X if scipy.sparse.issparse(X) else _writeable(X)
        if not self._holds_parameters(network):  # (an unpickled network's arrays are its own
            self._load_parameters(network)        # writeable copies: Network.__setstate__)
        return _forward(network, X).astype(out_dtype, copy=False)


class MLPClassifier(ClassifierMixin, _BaseMLP):
    __doc__ = f"""A multilayer perceptron classifier: scikit-learn's interface, nbbp's kernels.

    A drop-in replacement for ``sklearn.neural_network.MLPClassifier``, with its three solvers.
    Multiclass targets train a softmax output with cross-entropy; binary and multilabel
    (indicator matrix) targets train logistic outputs with log-loss.

    Parameters
    ----------{_PARAMETERS}    class_weight : "balanced", dict or None, default=None
        Weights of the classes, {{label: weight}} (others 1) or "balanced", n_samples /
        (n_classes * count), as scikit-learn's compute_sample_weight; they multiply
        sample_weight. Not for multilabel y. scikit-learn's MLPClassifier has none.

    Attributes
    ----------
    classes_ : ndarray
        The class labels.{_ATTRIBUTES}

    See Also
    --------
    MLPRegressor : The regressor.
    nbbp.Network : The network that trains.

    Notes
    -----{_NOTES}
    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from nbbp.sklearn import MLPClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = make_pipeline(StandardScaler(), MLPClassifier((16,), max_iter=1000, random_state=0))
    >>> clf.fit(X, y).predict(X[[0, 50, 100]])
    array([0, 1, 2])
    """

    def __init__(self, hidden_layer_sizes: int | Sequence[int] = (100,), activation: str = "relu",
                 *,
                 solver: str = "adam", alpha: float = 0.0001, batch_size: int | str = "auto",
                 learning_rate: str = "constant", learning_rate_init: float = 0.001,
                 power_t: float = 0.5, max_iter: int = 200, shuffle: bool = True,
                 random_state: int | np.random.RandomState | None = None, tol: float = 1e-4,
                 verbose: bool | int = False, warm_start: bool = False, momentum: float = 0.9,
                 nesterovs_momentum: bool = True, early_stopping: bool = False,
                 validation_fraction: float = 0.1, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-8, n_iter_no_change: int | float = 10,
                 max_fun: int = 15000, dropout: float | Sequence[float] = 0.0,
                 class_weight: str | dict | None = None,
                 dtype: DTypeLike | None = None) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.class_weight = class_weight
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.dropout = dropout
        self.dtype = dtype

    def fit(self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None
            ) -> MLPClassifier:
        """Train from scratch (or from coefs_ with warm_start) for up to max_iter epochs.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
            Class labels, or a 0/1 indicator matrix for multilabel classification.
        sample_weight : array-like of shape (n_samples,) or None
            Weights >= 0 of the samples (see Notes); multiplied by class_weight's.

        Returns
        -------
        self
        """
        return self._fit(X, y, incremental=False, sample_weight=sample_weight)

    @available_if(_stochastic)
    def partial_fit(self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None,
                    classes: ArrayLike | None = None) -> MLPClassifier:
        """Train one epoch on (X, y), keeping the optimizer state of the previous call.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
        sample_weight : array-like of shape (n_samples,) or None
        classes : array-like of shape (n_classes,) or None
            Every class label, needed on the first call (y need not hold them all); if given
            later, it must equal classes_. Not needed for a multilabel indicator y.

        Returns
        -------
        self
        """
        return self._fit(X, y, incremental=True, classes=classes, sample_weight=sample_weight)

    def predict(self, X: ArrayLike) -> np.ndarray:
        """Class labels (or the indicator matrix, for multilabel) of the samples in X."""
        output = self._outputs(X)
        return self._label_binarizer.inverse_transform(output[:, 0] if self.n_outputs_ == 1
                                                       else output)

    def predict_proba(self, X: ArrayLike) -> np.ndarray:
        """Class probabilities, shape (n_samples, n_classes), columns ordered as classes_."""
        output = self._outputs(X)
        if self.n_outputs_ == 1:
            return np.hstack([1 - output, output])
        return output

    def predict_log_proba(self, X: ArrayLike) -> np.ndarray:
        """The log of predict_proba."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags

    # ----------------------------------------------------------------------------- internals
    _stratify = True  # early stopping's split, with one output (binary), as scikit-learn's

    def _targets(self, y, dtype, incremental, first_pass, classes):
        check_classification_targets(y)
        multilabel = type_of_target(y).startswith("multilabel")
        if (incremental and not first_pass and classes is not None
                and not np.array_equal(unique_labels(classes), self.classes_)):
            raise ValueError(f"classes={classes!r} differs from classes_={self.classes_!r} "
                             "of the first partial_fit call")
        if first_pass:
            if incremental and classes is None and not multilabel:
                raise ValueError("classes must be given on the first call to partial_fit: every "
                                 "class label, such as np.unique(y_all)")
            binarizer = LabelBinarizer()
            binarizer.fit(y if multilabel or classes is None else unique_labels(classes))
            if classes is not None and not multilabel:
                # LabelBinarizer would one-hot an unknown label as all zeros: class 0 by argmax
                unknown = np.setdiff1d(unique_labels(y), binarizer.classes_)
                if unknown.size:
                    raise ValueError(f"y has classes {unknown!r} that are not in classes="
                                     f"{binarizer.classes_!r}")
            encoder = dict(_label_binarizer=binarizer, classes_=binarizer.classes_)
        else:
            binarizer, encoder = self._label_binarizer, {}
            seen = unique_labels(y)
            if self.warm_start and not incremental and set(seen) != set(self.classes_):
                raise ValueError("warm_start needs y with the classes of the previous fit, "
                                 f"{self.classes_!r}; y has {seen!r}")
            unknown = np.setdiff1d(seen, self.classes_)
            if unknown.size:
                raise ValueError(f"y has classes {unknown!r} that are not in classes_ "
                                 f"{self.classes_!r}")
        Y = binarizer.transform(y)
        out_activation = "softmax" if binarizer.y_type_ == "multiclass" else "logistic"
        if out_activation == "softmax":
            targets = np.argmax(Y, axis=1)  # labels: the network one-hots each batch itself
        else:
            targets = np.ascontiguousarray(Y, dtype=dtype)
        return targets, Y.shape[1], out_activation, encoder

    def _score_outputs(self, output, y, sample_weight=None):
        predicted = self._label_binarizer.inverse_transform(output[:, 0] if self.n_outputs_ == 1
                                                            else output)
        return accuracy_score(y, predicted, sample_weight=sample_weight)

    def _weights(self, y, sample_weight, X):
        weights = super()._weights(y, sample_weight, X)
        if self.class_weight is None:
            return weights
        if type_of_target(y).startswith("multilabel"):
            raise ValueError("class_weight is for one class per sample; y is multilabel")
        per_sample = compute_sample_weight(self.class_weight, y)
        weights = per_sample if weights is None else weights * per_sample
        if not weights.any():
            raise ValueError("class_weight and sample_weight give every sample the weight 0: "
                             "there is nothing to learn from")
        return weights


class MLPRegressor(RegressorMixin, _BaseMLP):
    __doc__ = f"""A multilayer perceptron regressor: scikit-learn's interface, nbbp's kernels.

    A drop-in replacement for ``sklearn.neural_network.MLPRegressor``: identity outputs trained
    on the squared error, or exponential outputs (the log link) on the Poisson deviance, one
    output per target.

    Parameters
    ----------
    loss : {{"squared_error", "poisson"}}, default="squared_error"
        Half the squared error, or half the Poisson deviance, y log(y / o) - y + o with
        o = exp(z), for targets y >= 0 (counts, rates).{_PARAMETERS}
    Attributes
    ----------{_ATTRIBUTES}

    See Also
    --------
    MLPClassifier : The classifier.
    nbbp.Network : The network that trains.

    Notes
    -----{_NOTES}
    scikit-learn's squared loss averages over outputs as well as samples, nbbp's sums over
    outputs; loss_curve_ is divided by n_outputs_ accordingly. With several outputs and
    alpha > 0 the penalty, which is not divided, is then taken at the weights that end each
    epoch rather than at those each batch saw.

    Examples
    --------
    >>> import numpy as np
    >>> from nbbp.sklearn import MLPRegressor
    >>> X = np.linspace(-1, 1, 200).reshape(-1, 1)
    >>> reg = MLPRegressor(hidden_layer_sizes=(32,), learning_rate_init=0.01, random_state=0)
    >>> reg = reg.fit(X, X[:, 0] ** 2)
    >>> bool(reg.score(X, X[:, 0] ** 2) > 0.9)
    True
    """

    def __init__(self, loss: str = "squared_error",
                 hidden_layer_sizes: int | Sequence[int] = (100,), activation: str = "relu", *,
                 solver: str = "adam", alpha: float = 0.0001, batch_size: int | str = "auto",
                 learning_rate: str = "constant", learning_rate_init: float = 0.001,
                 power_t: float = 0.5, max_iter: int = 200, shuffle: bool = True,
                 random_state: int | np.random.RandomState | None = None, tol: float = 1e-4,
                 verbose: bool | int = False, warm_start: bool = False, momentum: float = 0.9,
                 nesterovs_momentum: bool = True, early_stopping: bool = False,
                 validation_fraction: float = 0.1, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-8, n_iter_no_change: int | float = 10,
                 max_fun: int = 15000, dropout: float | Sequence[float] = 0.0,
                 dtype: DTypeLike | None = None) -> None:
        self.loss = loss
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.dropout = dropout
        self.dtype = dtype

    def fit(self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None
            ) -> MLPRegressor:
        """Train from scratch (or from coefs_ with warm_start) for up to max_iter epochs.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
        sample_weight : array-like of shape (n_samples,) or None
            Weights >= 0 of the samples (see Notes).

        Returns
        -------
        self
        """
        return self._fit(X, y, incremental=False, sample_weight=sample_weight)

    @available_if(_stochastic)
    def partial_fit(self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None
                    ) -> MLPRegressor:
        """Train one epoch on (X, y), keeping the optimizer state of the previous call.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
        sample_weight : array-like of shape (n_samples,) or None

        Returns
        -------
        self
        """
        return self._fit(X, y, incremental=True, sample_weight=sample_weight)

    def predict(self, X: ArrayLike) -> np.ndarray:
        """Predicted targets, shape (n_samples,) for one output, else (n_samples, n_outputs)."""
        output = self._outputs(X)
        return output[:, 0] if self.n_outputs_ == 1 else output

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    # ----------------------------------------------------------------------------- internals
    def _checked_params(self):
        if not isinstance(self.loss, str):  # MLPRegressor((32,)): loss comes first, as in sklearn
            raise ValueError(f"loss must be 'squared_error' or 'poisson'; got {self.loss!r} (the "
                             "first positional parameter is loss: give hidden_layer_sizes=... by "
                             "name)")
        check.check_choice(self.loss, ("squared_error", "poisson"), "loss")
        return super()._checked_params()

    _y_checks: ClassVar[dict[str, bool]] = {"y_numeric": True}

    def _targets(self, y, dtype, incremental, first_pass, classes):
        largest = np.abs(y).max(initial=0)
        if largest > np.finfo(dtype).max:  # finite (validate_data), but inf in dtype
            raise ValueError(f"y holds a value too large for {np.dtype(dtype).name} "
                             f"({largest:.6g}; its largest is {np.finfo(dtype).max:.6g})")
        if self.loss == "poisson" and (y < 0).any():
            raise ValueError("Some value(s) of y are negative which is not allowed for Poisson "
                             "regression.")
        targets = _writeable(np.ascontiguousarray(y.reshape(y.shape[0], -1), dtype=dtype))
        return targets, targets.shape[1], "exp" if self.loss == "poisson" else "identity", {}

    def _convert_loss(self, loss, network, penalty_share):
        # nbbp: sum over outputs of (o - y)^2 / 2 + penalty; scikit-learn: mean over outputs +
        # penalty. The penalty is estimated at the epoch's final weights (see Notes).
        k = self.n_outputs_
        if k == 1 or self.loss == "poisson":  # the deviance sums over outputs in both
            return loss
        penalty = 0.0
        if self.alpha > 0:
            penalty = (penalty_share * 0.5 * self.alpha
                       * sum(float(np.sum(W.astype(np.float64) ** 2)) for W in network.weights))
        return (loss - penalty) / k + penalty

    def _score_outputs(self, output, y, sample_weight=None):
        return r2_score(y, output[:, 0] if self.n_outputs_ == 1 else output,
                        sample_weight=sample_weight)
