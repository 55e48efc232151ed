"""Optimizers: hyperparameter objects, and one per-parameter update kernel for them all, following
the formulas of ``torch.optim`` (g is dE/dw, alpha the learning rate, t the step count from 1).

The kernel runs over a flat parameter vector in place, parallel over chunks of parameters p. A
masked weight has g = 0 always, so its state stays 0 and the weight stays exactly 0 under each
rule.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np
from numba import prange
from numba.extending import register_jitable

from ._jit import helper, kernel, part
from ._simd import aligned_zeros
from ._validation import Spec, check_real

(SGD_CODE, MOMENTUM_CODE, NESTEROV_CODE, ADAGRAD_CODE, RMSPROP_CODE, ADAM_CODE,
 ADAMW_CODE) = range(7)
# train_epoch with this code leaves theta as it is and the batch's gradient in grad: the local
# pass of training across MPI ranks (nbbp._collective), which reduces the gradients first.
NO_UPDATE = -1

# An update runs on the thread pool from this many parameters (not _jit.PARALLEL_MIN_WORK: an
# update does a few operations per parameter, not a dot product). Float32, 2 threads against 1:
# Adam 84 vs 136 us and SGD 12 vs 16 us at 109,386 parameters (W2), Adam 15 vs 21 us at 16,000.
UPDATE_PARALLEL_MIN = 1 << 15


@register_jitable
def update_in_parallel(n_params):
    """Whether optimizer_update of n_params parameters runs on the thread pool."""
    return n_params >= UPDATE_PARALLEL_MIN


# Each rule takes g, parameter p's gradient times the call's scale (clipping's), read once.
@helper
def _momentum(p, param, g, velocity, alpha, mu, nesterov):
    v = mu * velocity[p] + g
    velocity[p] = v
    if nesterov:
        param[p] -= alpha * (g + mu * v)
    else:
        param[p] -= alpha * v


@helper
def _adagrad(p, param, g, sum_sq, alpha, eps):
    s = sum_sq[p] + g * g
    sum_sq[p] = s
    param[p] -= alpha * g / (np.sqrt(s) + eps)


@helper
def _rmsprop(p, param, g, mean_sq, alpha, rho, eps):
    one = param.dtype.type(1)  # a Python 1 would make Numba compute a float32 update in float64
    s = rho * mean_sq[p] + (one - rho) * g * g
    mean_sq[p] = s
    param[p] -= alpha * g / (np.sqrt(s) + eps)


@helper
def _adam(p, param, g, m, v, alpha, beta1, beta2, eps, bias1, bias2):
    one = param.dtype.type(1)  # (see _rmsprop)
    m_p = beta1 * m[p] + (one - beta1) * g
    v_p = beta2 * v[p] + (one - beta2) * g * g
    m[p] = m_p
    v[p] = v_p
    param[p] -= alpha * (m_p / bias1) / (np.sqrt(v_p / bias2) + eps)


@part
def _update_range(p0, p1, opt_code, param, grad, scale, state, alpha, h0, h1, h2, bias1, bias2,
                  decay):
    """The update of the parameters p0 .. p1 - 1 by the rule opt_code, with the gradient
    grad[p] scale: one loop per rule, each state row taken once (a row taken per parameter
    inside one loop for all rules made every update 10 ns a parameter, unvectorised: 16-66x
    slower). Unsigned indices, as a prange's, so that LLVM vectorises the loops (signed ones
    made SGD 2.5x and Adam 4.5-8x slower). AMD EPYC Zen 4, float32."""
    start, stop = np.uint64(p0), np.uint64(p1)
    if opt_code == SGD_CODE:
        for p in range(start, stop):
            param[p] -= alpha * (grad[p] * scale)
    elif opt_code == MOMENTUM_CODE or opt_code == NESTEROV_CODE:  # noqa: SIM109 - compiled by Numba
        velocity, nesterov = state[0], opt_code == NESTEROV_CODE
        for p in range(start, stop):
            _momentum(p, param, grad[p] * scale, velocity, alpha, h0, nesterov)
    elif opt_code == ADAGRAD_CODE:
        sum_sq = state[0]
        for p in range(start, stop):
            _adagrad(p, param, grad[p] * scale, sum_sq, alpha, h0)
    elif opt_code == RMSPROP_CODE:
        mean_sq = state[0]
        for p in range(start, stop):
            _rmsprop(p, param, grad[p] * scale, mean_sq, alpha, h0, h1)
    elif opt_code == ADAM_CODE:
        m, v = state[0], state[1]
        for p in range(start, stop):
            _adam(p, param, grad[p] * scale, m, v, alpha, h0, h1, h2, bias1, bias2)
    else:  # AdamW: the weight decays first, apart from the gradient's moments
        m, v = state[0], state[1]
        for p in range(start, stop):
            param[p] *= decay
            _adam(p, param, grad[p] * scale, m, v, alpha, h0, h1, h2, bias1, bias2)


# Parameters per task of a parallel update (from UPDATE_PARALLEL_MIN, so at least 8 tasks):
# each rule is elementwise, so a chunk of any size gives the same bits. With 4,096, each rule
# ran as fast as one prange over the parameters at 109,386 parameters and SGD and Adam at
# 2,109,450, on 1 and 2 threads (AMD EPYC Zen 4, float32).
UPDATE_CHUNK = 1 << 12


# One kernel for every rule, not one each: each parallel kernel compiles apart (about 0.7 s
# apiece), and the epoch driver links every rule it may be asked for. Its loops call one part
# over a range of parameters (_update_range, a loop per rule), not the rule's formula inlined
# in each loop: 1.2-1.4 s of compile against 1.7 (AMD EPYC Zen 4), each rule as fast as
# before at 2,410 parameters (one thread) and 109,386 (1 and 2), SGD and Adam at 2,109,450.
@kernel
def optimizer_update(opt_code, param, grad, scale, state, alpha, h0, h1, h2, h3, t,
                     parallel):
    """One step of optimizer opt_code on every parameter p, in place (g_p = grad[p] scale, the
    scale 1 or clipping's factor; t the step count from 1; the state rows are as many as the
    rule needs, each shaped like param):

    - SGD_CODE: w_p <- w_p - alpha g_p;
    - MOMENTUM_CODE, NESTEROV_CODE (h0 = mu; state[0] = v): v_p <- mu v_p + g_p;
      w_p <- w_p - alpha v_p, or with Nesterov w_p - alpha (g_p + mu v_p);
    - ADAGRAD_CODE (h0 = eps; state[0] = s): s_p <- s_p + g_p^2;
      w_p <- w_p - alpha g_p / (sqrt(s_p) + eps);
    - RMSPROP_CODE (h0 = rho, h1 = eps; state[0] = s): s_p <- rho s_p + (1 - rho) g_p^2;
      w_p <- w_p - alpha g_p / (sqrt(s_p) + eps);
    - ADAM_CODE (h0 = b1, h1 = b2, h2 = eps; state[0] = m, state[1] = v):
      m_p <- b1 m_p + (1 - b1) g_p; v_p <- b2 v_p + (1 - b2) g_p^2;
      w_p <- w_p - alpha (m_p / (1 - b1^t)) / (sqrt(v_p / (1 - b2^t)) + eps);
    - ADAMW_CODE (as Adam, h3 = lambda, the weight decay): w_p <- (1 - alpha lambda) w_p, then
      Adam's step (decoupled weight decay, as torch.optim.AdamW).

    h0 .. h3 are the rule's hyperparameters (Optimizer.hyperparameters), 0 where it has fewer.
    """
    # Adam's bias corrections (unused by the other rules), in param's dtype like the rest of the
    # update (a Python 1 here made every parameter's update of a float32 network float64)
    one = param.dtype.type(1)
    bias1 = one - h0**t
    bias2 = one - h1**t
    decay = one - alpha * h3  # AdamW's
    n = param.shape[0]
    if parallel is not None and parallel:
        for c in prange((n + UPDATE_CHUNK - 1) // UPDATE_CHUNK):
            p0 = np.int64(c) * UPDATE_CHUNK
            _update_range(p0, min(p0 + UPDATE_CHUNK, n), opt_code, param, grad, scale, state,
                          alpha, h0, h1, h2, bias1, bias2, decay)
    else:
        _update_range(np.int64(0), n, opt_code, param, grad, scale, state, alpha, h0, h1, h2,
                      bias1, bias2, decay)


@dataclass
class OptimizerState:
    """What a network keeps of its training between calls: the optimizer it trains with (None
    before any), its state (``optimizer.n_state`` rows laid out like theta: velocity, moments)
    and the number of steps taken (Adam's t)."""

    optimizer: Optimizer | None
    state: np.ndarray
    steps: int = 0

    @classmethod
    def fresh(cls, optimizer, n_params, dtype):
        """State of zeros, aligned like the parameters, for ``optimizer`` (None: no rows)."""
        n_state = 0 if optimizer is None else optimizer.n_state
        return cls(optimizer, aligned_zeros((n_state, n_params), dtype), 0)


# ------------------------------------------------------------------- hyperparameter objects
class Optimizer(Spec):
    """Base of the optimizer specs: hyperparameters only. The state (velocity, moments, step
    count) lives in the Network, shaped like its flat parameter vector."""

    code: int | None = None
    n_state = 0  # arrays of state, each shaped like the parameters

    def hyperparameters(self):
        """(h0, h1, h2, h3) for the update kernel, in the order it takes them."""
        raise NotImplementedError


class SGD(Optimizer):
    """SGD with optional (Nesterov) momentum: v <- mu v + g; w <- w - alpha v
    (nesterov: w <- w - alpha (g + mu v))."""

    def __init__(self, momentum: float = 0.0, nesterov: bool = False) -> None:
        self.momentum = check_real(momentum, "momentum", 0.0, 1.0, high_open=True)
        if not isinstance(nesterov, (bool, np.bool_)):
            raise ValueError(f"nesterov must be True or False; got {nesterov!r}")
        if nesterov and self.momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0")
        self.nesterov = bool(nesterov)

    @property
    def code(self):
        if self.momentum == 0:
            return SGD_CODE
        return NESTEROV_CODE if self.nesterov else MOMENTUM_CODE

    @property
    def n_state(self):
        return 0 if self.momentum == 0 else 1

    def hyperparameters(self):
        return (self.momentum, 0.0, 0.0, 0.0)


class AdaGrad(Optimizer):
    """s <- s + g^2; w <- w - alpha g / (sqrt(s) + eps)."""

    code = ADAGRAD_CODE
    n_state = 1

    def __init__(self, eps: float = 1e-10) -> None:
        self.eps = check_real(eps, "eps", 0.0, np.inf, low_open=True, high_open=True)

    def hyperparameters(self):
        return (self.eps, 0.0, 0.0, 0.0)


class RMSProp(Optimizer):
    """s <- rho s + (1 - rho) g^2; w <- w - alpha g / (sqrt(s) + eps)."""

    code = RMSPROP_CODE
    n_state = 1

    def __init__(self, rho: float = 0.99, eps: float = 1e-8) -> None:
        self.rho = check_real(rho, "rho", 0.0, 1.0, high_open=True)
        self.eps = check_real(eps, "eps", 0.0, np.inf, low_open=True, high_open=True)

    def hyperparameters(self):
        return (self.rho, self.eps, 0.0, 0.0)


class Adam(Optimizer):
    """m <- b1 m + (1 - b1) g; v <- b2 v + (1 - b2) g^2;
    w <- w - alpha (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)."""

    code = ADAM_CODE
    n_state = 2

    def __init__(self, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8) -> None:
        self.beta1 = check_real(beta1, "beta1", 0.0, 1.0, high_open=True)
        self.beta2 = check_real(beta2, "beta2", 0.0, 1.0, high_open=True)
        self.eps = check_real(eps, "eps", 0.0, np.inf, low_open=True, high_open=True)

    def hyperparameters(self):
        return (self.beta1, self.beta2, self.eps, 0.0)


class AdamW(Adam):
    """Adam with decoupled weight decay, as torch.optim.AdamW: w <- (1 - alpha lambda) w, then
    Adam's step. The decay applies to every parameter (weights, biases, gamma, beta), as
    torch's does to every parameter of its group; masked weights stay 0."""

    code = ADAMW_CODE

    def __init__(self, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
                 weight_decay: float = 0.01) -> None:
        super().__init__(beta1, beta2, eps)
        self.weight_decay = check_real(weight_decay, "weight_decay", 0.0, np.inf,
                                       high_open=True)

    def hyperparameters(self):
        return (self.beta1, self.beta2, self.eps, self.weight_decay)


class LBFGS(Optimizer):
    """Full-batch L-BFGS, as scikit-learn's "lbfgs" solver: scipy.optimize.minimize with method
    "L-BFGS-B" on E (+ l2/2 sum ||W||^2) and its gradient from the compiled kernels. In
    ``Network.fit`` each epoch is one of its iterations (``epochs`` is maxiter), batch_size
    and learning_rate are not used, and ``max_fun`` caps the evaluations of E, ``tol`` the
    projected gradient (scipy's gtol), ``memory`` the stored corrections (maxcor). Needs SciPy
    (``pip install scipy``, or the ``nbbp[sklearn]`` extra)."""

    def __init__(self, max_fun: int = 15000, tol: float = 1e-5, memory: int = 10) -> None:
        for name, value in (("max_fun", max_fun), ("memory", memory)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"{name} must be an int >= 1; got {value!r}")
        self.max_fun, self.memory = int(max_fun), int(memory)
        self.tol = check_real(tol, "tol", 0.0, np.inf, high_open=True)

    def hyperparameters(self):
        raise TypeError("LBFGS has no compiled update: it runs in nbbp._lbfgs")


OPTIMIZERS = {
    "sgd": SGD,
    "momentum": lambda: SGD(momentum=0.9),
    "nesterov": lambda: SGD(momentum=0.9, nesterov=True),
    "adagrad": AdaGrad,
    "rmsprop": RMSProp,
    "adam": Adam,
    "adamw": AdamW,
    "lbfgs": LBFGS,
}


def get_optimizer(optimizer, dtype=None):
    """A validated Optimizer from a name in OPTIMIZERS or an SGD, AdaGrad, RMSProp, Adam, AdamW
    or LBFGS object, checked for ``dtype`` if given (check_for_dtype). An object is rebuilt from
    its attributes, so hyperparameters changed after it was made are checked again, and the
    network never shares it with the caller."""
    if isinstance(optimizer, str) and optimizer in OPTIMIZERS:
        found = OPTIMIZERS[optimizer]()
    elif type(optimizer) in (SGD, AdaGrad, RMSProp, Adam, AdamW, LBFGS):
        found = type(optimizer)(**vars(optimizer))
    else:
        found = None
    if found is not None:
        if dtype is not None:
            check_for_dtype(found, dtype)
        return found
    raise ValueError(f"optimizer must be one of {list(OPTIMIZERS)} or an nbbp optimizer object "
                     f"(SGD, AdaGrad, RMSProp, Adam, AdamW, LBFGS); got {optimizer!r}")


def check_for_dtype(optimizer, dtype):
    """Refuse hyperparameters that the network's dtype cannot hold: an eps that underflows to 0
    (then 0/0 = NaN for every parameter whose gradient is 0: masked weights, dead units), or a
    decay rate that rounds to 1."""
    for name, value in vars(optimizer).items():
        if isinstance(value, bool):
            continue
        cast = float(dtype.type(value))
        if value > 0 and cast == 0:
            raise ValueError(f"{name}={value!r} underflows to 0 in {dtype}; use a larger {name}")
        if value < 1 and cast == 1:
            raise ValueError(f"{name}={value!r} rounds to 1 in {dtype}; use a smaller {name}")
