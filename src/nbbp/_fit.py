"""Training a Network: a fit's settings, every argument of ``fit`` and ``partial_fit`` checked
before anything changes, in one frozen ``FitPlan`` (``make_plan``), and the loop over epochs
that follows it (``train``): one compiled call an epoch (training.Epochs), then the history,
validation, early stopping, the callback and the progress display. Also ``step``, the update
of Network.step. (L-BFGS's loop is _lbfgs.train.)"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _validation as check
from . import _warm, passes
from ._interrupts import hold_interrupts_again, let_interrupts_through
from ._jit import start_thread_pool
from ._layout import DROP, N_OUT, Parameters
from ._simd import aligned_zeros
from .history import DivergenceError, History
from .optimizers import SGD_CODE, OptimizerState, optimizer_update, update_in_parallel
from .progress import EpochProgress
from .schedules import Schedule
from .training import Epochs, kernels_on_threads, trains_on_threads


@dataclass(frozen=True)
class FitPlan:
    """What one training call trains on and how.

    X, Y: the inputs and targets (Y empty when ``labels`` holds class labels, which the epoch
    driver one-hots per batch); rows: the rows of X (and Y, labels, sample_weight) to train on,
    or None for all (a validation split leaves the arrays whole); X_val, Y_val: validation data
    or None; split_rng: the generator state after drawing a validation split (the network's
    takes it once training starts), or None; sample_weight: one float64 weight per sample of X
    (sample and class weights multiplied), or None; val_weight: the held-out samples' weights,
    or None.
    """

    X: np.ndarray
    Y: np.ndarray
    labels: np.ndarray
    rows: np.ndarray | None
    sample_weight: np.ndarray | None
    X_val: np.ndarray | None
    Y_val: np.ndarray | None
    val_weight: np.ndarray | None
    batch_size: int
    learning_rate: float | Schedule
    l2: float
    l2_per_batch: bool  # scikit-learn's alpha: l2 / (sum of the batch's weights) per batch
    clip_norm: float  # 0: no clipping
    early_stopping: bool
    patience: int
    callback: Callable[..., Any] | None
    split_rng: np.random.Generator | None
    shuffle: bool
    verbose: bool
    balanced_classes: bool = False  # class_weight="balanced", from this process's classes


def make_plan(net, X, y, batch_size, learning_rate, l2, validation_data,
              validation_fraction, early_stopping, patience, callback, shuffle,
              verbose, schedule_allowed=True, clip_norm=None, sample_weight=None,
              class_weight=None, l2_per_batch=False) -> FitPlan:
    """Validate every training argument before anything changes (the network is only read).
    ``learning_rate`` is a positive number, or with ``schedule_allowed`` a Schedule."""
    net._check_finite_parameters("training")
    if isinstance(learning_rate, Schedule) and schedule_allowed:
        # rebuilt from its attributes, so that changes made after it was built are checked
        learning_rate = type(learning_rate)(**vars(learning_rate))
        check.as_scalar(learning_rate.lr, net.dtype, "learning_rate")
    else:
        if isinstance(learning_rate, Schedule):
            raise TypeError("partial_fit takes a number as learning_rate: a schedule spans the "
                            "epochs of one fit")
        learning_rate = check.check_positive_number(learning_rate, "learning_rate")
        check.as_scalar(learning_rate, net.dtype, "learning_rate")
    l2_value = check.finite_float(l2)
    if l2_value is None or l2_value < 0:
        raise ValueError(f"l2 must be a finite number >= 0; got {l2!r}")
    l2 = l2_value
    check.as_scalar(l2, net.dtype, "l2")
    if clip_norm is not None:
        clip_norm = check.check_positive_number(clip_norm, "clip_norm")
        check.as_scalar(clip_norm, net.dtype, "clip_norm")
    if batch_size is not None:
        batch_size = check.check_count(batch_size, "batch_size")
    for name, flag in (("shuffle", shuffle), ("verbose", verbose), ("l2_per_batch", l2_per_batch)):
        if not isinstance(flag, (bool, np.bool_)):
            raise TypeError(f"{name} must be True or False; got {flag!r}")
    check.check_callback(callback)
    if not isinstance(early_stopping, (bool, np.bool_)):
        raise TypeError(f"early_stopping must be True or False; got {early_stopping!r}")
    if patience is not None:
        patience = check.check_count(patience, "patience")
        if not early_stopping and validation_data is None and validation_fraction is None:
            raise ValueError("patience needs validation data: give validation_data or "
                             "validation_fraction, or early_stopping=True (which holds out "
                             "10% of the data)")
        early_stopping = True
    if validation_data is not None and validation_fraction is not None:
        raise ValueError("give validation_data or validation_fraction, not both")
    if early_stopping and validation_data is None and validation_fraction is None:
        validation_fraction = 0.1
    if validation_fraction is not None and (isinstance(validation_fraction, bool)
                                            or not isinstance(validation_fraction, numbers.Real)
                                            or not 0 < float(validation_fraction) < 1):
        raise ValueError(f"validation_fraction must be in (0, 1); got {validation_fraction!r}")

    # X's finite check wakes the thread pool only where training will use it (a validation
    # pass still does, each epoch, where its forward is over the cut-off)
    def batch(n):  # the batch size a fit on n samples trains with
        return min(batch_size or n, n)

    def threaded(n):
        return trains_on_threads(net._layout, net._theta.size, batch(n))

    X = net._inputs(X, threads=threaded)
    # From an empty cache, the backward kernels compile in a helper process from here on,
    # while this one compiles the rest (a refused call leaves the network as it was; the helper
    # only fills the cache)
    _warm.start(net.dtype, kernels_on_threads(net._layout, net._theta.size, batch(X.shape[0])))
    labels = None
    if net.loss_name == "cross_entropy":
        labels = check.as_labels(y, X.shape[0], net.sizes[-1])
    if labels is None:
        Y = check.as_targets(y, X.shape[0], net.sizes[-1], net.loss_name, net.dtype)
    else:
        Y = np.zeros((0, net.sizes[-1]), dtype=net.dtype)  # the driver one-hots the labels
    weights = check.as_sample_weight(sample_weight, X.shape[0])
    if class_weight is not None:
        per_sample = check.class_weights(class_weight, *_classes(net, labels, Y))
        weights = per_sample if weights is None else weights * per_sample
        if not weights.any():
            raise ValueError("class_weight and sample_weight give every sample the weight 0: "
                             "there is nothing to learn from")
    X_val = Y_val = w_val = split_rng = rows = None
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise ValueError("validation_data must be a pair (X_val, y_val)")
        X_val = check.as_inputs(validation_data[0], net.sizes[0], net.dtype, "validation X")
        Y_val = check.as_targets(validation_data[1], X_val.shape[0], net.sizes[-1],
                                 net.loss_name, net.dtype, "validation y")
    elif validation_fraction is not None:
        n_val = round(validation_fraction * X.shape[0])
        if n_val < 1 or n_val >= X.shape[0]:
            raise ValueError(f"validation_fraction={validation_fraction} of {X.shape[0]} samples "
                             "leaves no validation or no training samples")
        # Draw from a copy of the generator: a call that fails later must not advance it.
        split_rng = np.random.Generator(type(net.rng.bit_generator)())
        split_rng.bit_generator.state = net.rng.bit_generator.state
        perm = split_rng.permutation(X.shape[0])
        val, train = np.sort(perm[:n_val]), np.sort(perm[n_val:])
        if weights is not None:
            w_val = weights[val]
            if not weights[train].any() or not w_val.any():
                raise ValueError(f"validation_fraction={validation_fraction} leaves "
                                 f"{'training' if not weights[train].any() else 'validation'} "
                                 "samples whose weights are all 0")
        # X, Y, labels and weights stay whole (a memmap is not copied): training reads the
        # rows ``train`` in place
        rows = train
        X_val = X[val]
        Y_val = Y[val] if labels is None else check.as_targets(
            labels[val], len(val), net.sizes[-1], net.loss_name, net.dtype)

    n = X.shape[0] if rows is None else len(rows)
    if net._has_batch_norm and (n < 2 or batch_size == 1):
        raise ValueError(
            "batch normalisation needs batches of 2 samples or more (batch statistics); "
            + (f"got {n} training sample" if n < 2 else "got batch_size=1"))
    if batch_size is None:
        batch_size = n
    elif batch_size > n:
        warnings.warn(f"batch_size={batch_size} is larger than the {n} training samples; "
                      f"using {n}", UserWarning, stacklevel=6)  # to fit's caller
        batch_size = n
    if labels is None:
        labels = np.zeros(0, dtype=np.int64)
    return FitPlan(X=X, Y=Y, labels=labels, rows=rows, sample_weight=weights, X_val=X_val,
                   Y_val=Y_val, val_weight=w_val, batch_size=batch_size,
                   learning_rate=learning_rate, l2=float(l2), l2_per_batch=bool(l2_per_batch),
                   clip_norm=0.0 if clip_norm is None else clip_norm,
                   early_stopping=bool(early_stopping),
                   patience=10 if patience is None else patience, callback=callback,
                   split_rng=split_rng, shuffle=bool(shuffle), verbose=bool(verbose),
                   balanced_classes=isinstance(class_weight, str) and class_weight == "balanced")


def _classes(net, labels, Y):
    """(class index of every sample, number of classes) for class weights: the label, or the
    largest entry of a target row, for cross_entropy; y >= 0.5 for log_loss with one output."""
    if net.loss_name == "cross_entropy":
        return (labels if labels is not None else np.argmax(Y, axis=1)), net.sizes[-1]
    if net.loss_name == "log_loss" and net.sizes[-1] == 1:
        return (Y[:, 0] >= 0.5).astype(np.int64), 2
    raise ValueError(f"class_weight needs one class per sample: loss 'cross_entropy', or "
                     f"'log_loss' with one output; this network has loss {net.loss_name!r} "
                     f"and {net.sizes[-1]} outputs")


# History's per-epoch lists, which a failed epoch leaves as they were.
HISTORY_LISTS = ("loss", "grad_norm", "delta_mean", "val_loss", "val_score", "learning_rate")


def step(params: Parameters, X, Y, alpha, loss_code, eps, no_state):
    """``Network.step``: one plain gradient-descent update, theta <- theta - alpha dE/dtheta, on
    the batch (X, Y), in place, with the batch's statistics moving the running averages; all of
    it or (on an error, a divergence or Ctrl-C, which one_trainer holds back) none. Returns E
    before the update. ``no_state``: an empty optimizer state of the usual type."""
    theta, stats = params.theta, params.stats
    saved = (theta.copy(), stats.copy())
    try:  # the running averages change in the forward pass, the weights after it
        grad, E = passes.backprop(X, Y, theta, stats, params.mask_theta, params.layout,
                                  loss_code, eps, update_running=True)
        zero = theta.dtype.type(0)
        optimizer_update(SGD_CODE, theta, grad, theta.dtype.type(1), no_state, alpha, zero, zero,
                         zero, zero, 1, update_in_parallel(theta.size) or None)
        if not (np.isfinite(E) and np.isfinite(theta).all() and np.isfinite(stats).all()):
            raise DivergenceError(f"step diverged: the loss was {E} (a smaller learning_rate, "
                                  "or inputs of a smaller scale); the network keeps its weights")
    except BaseException:
        theta[...], stats[...] = saved
        raise
    return E


def says_stop(result):
    """Whether a callback's return value stops training: False, or a NumPy False (np.False_,
    as ``loss > limit`` on NumPy scalars gives); None, True and anything else go on."""
    return result is False or (isinstance(result, np.bool_) and not result)


def train(net, params: Parameters, plan: FitPlan, epochs: int, opt: OptimizerState,
          completed: list[int], group=None):
    """Train ``net``, whose arrays are ``params``, by ``plan`` for up to ``epochs`` epochs with
    ``opt``, one compiled call an epoch; returns the History, which is also ``net.history``
    from the start. Parameters, running statistics and optimizer state change in place; an
    epoch that raises (a kernel, a divergence, the validation pass, Ctrl-C) is put back, so the
    network is as after the last recorded epoch. ``completed[0]`` counts the epochs recorded
    (a callback may edit history). With ``group`` (a _collective.Group) the ranks train
    together: rank 0's network to all first, then every epoch, validation and stop alike.
    """
    if plan.split_rng is not None:
        net.rng.bit_generator.state = plan.split_rng.bit_generator.state
    if plan.shuffle:
        check.advise_random_reads(plan.X)
    n = plan.X.shape[0] if plan.rows is None else len(plan.rows)
    L, widths = net.n_layers, params.layout[:, N_OUT]

    progress = None

    def set_up():  # the buffers, the progress display and the thread pool
        nonlocal progress
        if plan.verbose and (group is None or group.rank == 0):
            progress = EpochProgress(epochs)
        start_thread_pool()
        return Epochs(params.layout, net.sizes, net.dtype, plan.batch_size,
                      params.stats if net._has_batch_norm or net.residual else None,
                      net._has_batch_norm)

    def rate_of(epoch):
        rate = plan.learning_rate
        if isinstance(rate, Schedule):
            rate = rate.rate(epoch, monitored)
            if check.finite_float(rate) is None or rate < 0:  # a user's Schedule
                raise ValueError(f"the learning-rate schedule gave epoch {epoch} the rate "
                                 f"{rate!r}; a rate is a finite number >= 0")
        return rate

    if group is None:
        epochs_of, grad = set_up(), aligned_zeros(params.theta.size, net.dtype)
    else:  # on every rank, or an error on every rank
        group.share(params)
        try:
            epochs_of = group.agree("fit", lambda: group.allocate(params) or set_up())
        except BaseException:
            if progress is not None:
                progress.close()
            group.done()
            raise
    history = net.history = History()  # filled epoch by epoch, for the caller
    monitored: list[float] = []  # a schedule's input, kept apart: a callback can edit history
    best = None
    stale = 0
    try:
        if group is not None:
            group.start(net, params, plan, opt)  # rank 0's network to every rank
        for epoch in range(epochs):
            # What the epoch changes, to put back if anything raises before it is recorded
            # (a kernel, an overflow, the validation pass): the network is then as after the
            # last complete epoch.
            saved = (params.theta.copy(), opt.state.copy(), opt.steps,
                     params.stats.copy(), net.rng.bit_generator.state,
                     {name: len(getattr(history, name)) for name in HISTORY_LISTS})
            # Ctrl-C is held back (by the training call) over the whole epoch, its validation
            # included, and raised once the epoch is recorded, below (so a recorded epoch is
            # never rolled back for it)
            try:
                if group is not None:  # a user's schedule failing on one rank fails on all
                    rate = group.agree("the learning-rate schedule",
                                       lambda epoch=epoch: rate_of(epoch))
                    order = group.order(net.rng, n, plan.shuffle)
                else:
                    rate = rate_of(epoch)
                    order = net.rng.permutation(n) if plan.shuffle else np.arange(n)
                if plan.rows is not None:
                    order = plan.rows[order]
                drop_seed = None  # the epoch's dropout masks, drawn after its order
                if np.any(params.layout[:, DROP] > 0):
                    drop_seed = net.rng.integers(2**64, dtype=np.uint64)
                grad_norm_sum = np.zeros(L)
                delta_abs_sum = np.zeros(L)
                if group is not None:
                    total, steps, n_used, weight_used = group.epoch(
                        epochs_of.run, net, params, plan, opt, order, rate, grad_norm_sum,
                        delta_abs_sum, drop_seed)
                else:
                    total, steps, n_used, weight_used = epochs_of.run(
                        plan.X, plan.Y, plan.labels, order, params.theta, grad,
                        params.mask_theta, params.layout, net._loss_code, net._eps, plan.l2,
                        opt.optimizer, opt.state, rate, opt.steps, grad_norm_sum, delta_abs_sum,
                        plan.clip_norm, plan.sample_weight, drop_seed, plan.l2_per_batch)
                if weight_used == 0:  # only with batch normalisation's left-out last sample
                    raise ValueError(f"epoch {epoch} trained on no sample of weight > 0")
                E = total / weight_used
                if not (np.isfinite(E) and np.isfinite(params.theta).all()
                        and np.isfinite(params.stats).all()):
                    raise DivergenceError(
                        f"training diverged in epoch {epoch}: the loss became {E} (try a "
                        "smaller learning_rate); the network keeps the weights of the last "
                        "finite epoch", history)
                opt.steps += steps
                history.loss.append(E)
                history.grad_norm.append(grad_norm_sum / steps)
                history.delta_mean.append(delta_abs_sum / (n_used * widths))
                history.learning_rate.append(float(rate))
                shown = {"loss": E}
                if plan.X_val is not None:
                    if group is not None:
                        val_loss, val_score = group.validate(net, plan)
                    else:
                        zs, a_list = net._forward(plan.X_val)
                        val_loss = net._loss(zs[-1], a_list[-1], plan.Y_val, plan.val_weight)
                        val_score = passes.score(a_list[-1], plan.Y_val, net.loss_name,
                                                 plan.val_weight)
                    history.val_loss.append(val_loss)
                    history.val_score.append(val_score)
                    shown.update(val_loss=val_loss, val_score=history.val_score[-1])
                    if plan.early_stopping:
                        # NaN is never an improvement, not even the first one.
                        if np.isfinite(val_loss) and (best is None or val_loss < best[0]):
                            best = (val_loss, epoch, params.theta.copy(),
                                    opt.state.copy(), opt.steps,
                                    params.stats.copy())
                            stale = 0
                        else:
                            stale += 1
                completed[0] = epoch + 1  # recorded: a later error or Ctrl-C keeps it
                monitored.append(val_loss if plan.X_val is not None else E)
            except BaseException:
                (params.theta[...], opt.state[...], opt.steps,
                 params.stats[...], rng_state, lengths) = saved
                net.rng.bit_generator.state = rng_state
                for name, length in lengths.items():
                    del getattr(history, name)[length:]
                raise
            if group is not None:
                # Ctrl-C stays held on MPI ranks, for decide to stop every rank alike; a
                # rank's callback that says stop stops them all
                def progress_and_callback(epoch=epoch, shown=shown):
                    if progress is not None:
                        progress.epoch_done(epoch, shown)
                    return plan.callback is not None and says_stop(plan.callback(epoch, history))
                stop = group.decide(progress_and_callback)
            else:
                hold = let_interrupts_through()  # the epoch is recorded: Ctrl-C may come
                if progress is not None:
                    progress.epoch_done(epoch, shown)
                stop = plan.callback is not None and says_stop(plan.callback(epoch, history))
                hold_interrupts_again(hold)
            if stop or (plan.early_stopping and stale >= plan.patience):
                history.stopped_early = epoch + 1 < epochs
                break
    except BaseException:
        if group is not None and completed[0] == 0:  # as before rank 0's network came
            group.restore(params, opt)
        raise
    finally:
        if progress is not None:
            progress.close()
        if group is not None:
            group.done()
    if plan.early_stopping and best is not None:
        _, history.best_epoch, theta, state, steps, stats = best
        params.theta[...], opt.state[...], opt.steps = theta, state, steps
        params.stats[...] = stats
    return history

