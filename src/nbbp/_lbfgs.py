"""Full-batch L-BFGS (optimizer="lbfgs", ``nbbp.LBFGS``): scipy.optimize.minimize with method
"L-BFGS-B", as scikit-learn's lbfgs solver calls it, on E (+ l2/2 sum ||W||^2) and its
gradient over the whole training set, both from the compiled kernels (passes.backprop). Each
iteration is one epoch of the History. SciPy is imported here, on first use only."""

from __future__ import annotations

import numpy as np

from . import passes
from ._fit import FitPlan, says_stop
from ._interrupts import hold_interrupts_again, let_interrupts_through
from ._layout import Parameters, weight_ranges
from .history import DivergenceError, History
from .optimizers import LBFGS, OptimizerState
from .schedules import Schedule


def scipy_optimize():
    try:
        from scipy import optimize
    except ImportError:
        raise ImportError("optimizer='lbfgs' needs SciPy: pip install scipy (or "
                          "'nbbp[sklearn]')") from None
    return optimize


def not_incremental(optimizer):
    """partial_fit trains by gradient descent: L-BFGS's memory spans the iterations of a fit."""
    if isinstance(optimizer, LBFGS):
        raise ValueError("partial_fit takes a gradient-descent optimizer; L-BFGS runs full "
                         "batch, in fit")


def check(net, plan: FitPlan):
    """What L-BFGS cannot do, refused before anything changes."""
    if isinstance(plan.learning_rate, Schedule):
        raise ValueError("optimizer='lbfgs' takes no learning-rate schedule: L-BFGS sets its own "
                         "step by a line search")
    if plan.l2_per_batch:
        raise ValueError("l2_per_batch is for mini-batches; L-BFGS takes the whole set as one "
                         "batch: give l2 / (sum of the weights) instead")
    if plan.clip_norm > 0:
        raise ValueError("clip_norm is for the gradient-descent optimizers; L-BFGS's line "
                         "search bounds its steps")
    if any(net.dropout):
        raise ValueError("optimizer='lbfgs' does not train with dropout: its masks change the "
                         "loss from step to step, and L-BFGS's line search needs one function")
    if net._has_batch_norm:
        raise ValueError("optimizer='lbfgs' does not train batch-normalised networks: their "
                         "running averages move with each training batch, and L-BFGS evaluates "
                         "E at trial points; use a gradient-descent optimizer")


def train(net, params: Parameters, plan: FitPlan, epochs: int, opt: OptimizerState,
          completed: list[int]) -> History:
    """_fit.train for L-BFGS: up to ``epochs`` iterations, each recorded in the History (loss;
    grad_norm, ||dE/dW(l)|| at the iterate; delta_mean and learning_rate NaN: L-BFGS has
    neither), with validation, early stopping (on the validation loss) and the callback after
    each. theta changes in place; an error, a divergence or Ctrl-C puts back the last recorded
    iterate, or the start if none was. ``history.result`` is scipy's OptimizeResult."""
    optimize = scipy_optimize()
    check(net, plan)
    spec = opt.optimizer
    assert isinstance(spec, LBFGS)
    if plan.split_rng is not None:
        net.rng.bit_generator.state = plan.split_rng.bit_generator.state
    theta, dtype = params.theta, params.theta.dtype
    X, Y, labels, weights = plan.X, plan.Y, plan.labels, plan.sample_weight
    if plan.rows is not None:  # full batch: the training rows as one array
        X = X[plan.rows]
        if labels.size:
            labels = labels[plan.rows]
        else:
            Y = Y[plan.rows]
        if weights is not None:
            weights = weights[plan.rows]
    Y = Y if labels.size == 0 else np.eye(net.sizes[-1], dtype=dtype)[labels]
    W_ranges = weight_ranges(params.layout)
    start = theta.copy()
    last = {"x": start, "grad": np.zeros_like(theta)}  # the last recorded iterate
    evaluated = {}
    history = net.history = History()
    best = None
    stale = 0

    def objective(x):
        theta[...] = x
        grad, E = passes.backprop(X, Y, theta, params.stats, params.mask_theta,
                                  params.layout, net._loss_code, net._eps,
                                  sample_weight=weights, chunked=False)
        if plan.l2 > 0:
            for W in W_ranges:
                E += 0.5 * plan.l2 * float(np.sum(theta[W].astype(np.float64) ** 2))
                grad[W] += dtype.type(plan.l2) * theta[W]
        evaluated["grad"] = grad
        if not np.isfinite(E):
            return np.inf, np.zeros(theta.size)
        return E, grad.astype(np.float64)

    def record(intermediate_result):
        nonlocal best, stale
        epoch = history.epochs
        x, E = intermediate_result.x, float(intermediate_result.fun)
        theta[...] = x
        history.loss.append(E)
        history.grad_norm.append(np.array([np.linalg.norm(evaluated["grad"][W])
                                           for W in W_ranges]))
        history.delta_mean.append(np.full(len(W_ranges), np.nan))
        history.learning_rate.append(float("nan"))
        if plan.X_val is not None:
            zs, a_list = net._forward(plan.X_val)
            val_loss = net._loss(zs[-1], a_list[-1], plan.Y_val, plan.val_weight)
            history.val_loss.append(val_loss)
            history.val_score.append(passes.score(a_list[-1], plan.Y_val, net.loss_name,
                                                  plan.val_weight))
            if plan.early_stopping:
                if np.isfinite(val_loss) and (best is None or val_loss < best[0]):
                    best, stale = (val_loss, epoch, theta.copy()), 0
                else:
                    stale += 1
        last["x"] = theta.copy()
        completed[0] = epoch + 1
        opt.steps += 1
        hold = let_interrupts_through()
        if plan.verbose:
            print(f"L-BFGS iteration {epoch + 1}/{epochs}: loss {E:.6g}", flush=True)
        stop = plan.callback is not None and says_stop(plan.callback(epoch, history))
        hold_interrupts_again(hold)
        if stop or (plan.early_stopping and stale >= plan.patience):
            history.stopped_early = epoch + 1 < epochs
            raise StopIteration

    try:
        result = optimize.minimize(objective, start.astype(np.float64), jac=True,
                                   method="L-BFGS-B", callback=record,
                                   options=dict(maxiter=epochs, maxfun=spec.max_fun,
                                                gtol=spec.tol, maxcor=spec.memory))
        theta[...] = last["x"] if history.stopped_early else result.x
        if not (np.isfinite(result.fun) and np.isfinite(theta).all()):
            raise DivergenceError(f"L-BFGS diverged: the loss became {result.fun}; the network "
                                  "keeps the last finite iterate", history)
    except BaseException:
        theta[...] = last["x"]
        raise
    if plan.early_stopping and best is not None:
        _, history.best_epoch, theta[...] = best
    history.result = result
    return history
