"""Optimizer update kernels equal their reference twins (torch.optim formulas), keep masked
weights at 0, and reject bad hyperparameters."""

import numpy as np
import pytest
from conftest import DTYPES, assert_equivalent
from numpy.testing import assert_allclose

import nbbp
from nbbp import reference
from nbbp.optimizers import get_optimizer, optimizer_update

SIZES = [1, 7, 1000, 70_000]
N_STEPS = 4


def run_kernel(name, param, grads, lr, dtype, parallel):
    """Apply N_STEPS updates with the nbbp kernel; returns the final parameters."""
    optimizer = get_optimizer(name)
    param = param.copy()
    state = np.zeros((optimizer.n_state, param.size), dtype)
    h0, h1, h2, h3 = (dtype(h) for h in optimizer.hyperparameters())
    for t, g in enumerate(grads, start=1):
        optimizer_update(optimizer.code, param, g, dtype(1), state, dtype(lr), h0, h1, h2, h3, t,
                         parallel)
    return param


def run_reference(name, param, grads, lr):
    s1, s2 = np.zeros_like(param), np.zeros_like(param)
    for t, g in enumerate(grads, start=1):
        if name == "sgd":
            param = reference.sgd_update(param, g, lr)
        elif name in ("momentum", "nesterov"):
            param, s1 = reference.momentum_update(param, g, s1, lr, 0.9, name == "nesterov")
        elif name == "adagrad":
            param, s1 = reference.adagrad_update(param, g, s1, lr, 1e-10)
        elif name == "rmsprop":
            param, s1 = reference.rmsprop_update(param, g, s1, lr, 0.99, 1e-8)
        elif name == "adam":
            param, s1, s2 = reference.adam_update(param, g, s1, s2, lr, 0.9, 0.999, 1e-8, t)
        else:
            param, s1, s2 = reference.adamw_update(param, g, s1, s2, lr, 0.9, 0.999, 1e-8, 0.01,
                                                   t)
    return param


OPTIMIZER_NAMES = ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("name", OPTIMIZER_NAMES)
def test_update_kernels_equal_reference(rng, parallel, name, size, dtype):
    param = rng.normal(size=size).astype(dtype)
    grads = [rng.normal(size=size).astype(dtype) for _ in range(N_STEPS)]
    got = run_kernel(name, param, grads, 0.01, dtype, parallel)
    assert_equivalent(got, run_reference(name, param, grads, dtype(0.01)), dtype)


@pytest.mark.parametrize("name", OPTIMIZER_NAMES)
def test_zero_weight_with_zero_gradient_stays_exactly_zero(rng, name):
    # A masked weight: w = 0 and g = 0 at every step, so every state stays 0 and so does w.
    param = np.array([0.0, 1.0])
    grads = [np.array([0.0, rng.normal()]) for _ in range(N_STEPS)]
    got = run_kernel(name, param, grads, 0.1, np.float64, False)
    assert got[0] == 0.0


def test_adam_first_step_by_hand():
    # t = 1: m_hat = g and v_hat = g^2, so w <- w - alpha g / (|g| + eps) ~ w - alpha sign(g).
    param = np.array([1.0, 1.0])
    run = run_kernel("adam", param, [np.array([0.5, -2.0])], 0.1, np.float64, False)
    assert_allclose(run, [0.9, 1.1], rtol=1e-7)


def test_momentum_two_steps_by_hand():
    # v1 = g1 = 1, w1 = 0 - 0.1 * 1 = -0.1; v2 = 0.9 * 1 + 2 = 2.9, w2 = -0.1 - 0.29 = -0.39
    got = run_kernel("momentum", np.array([0.0]), [np.array([1.0]), np.array([2.0])], 0.1,
                     np.float64, False)
    assert_allclose(got, [-0.39], rtol=1e-15)


@pytest.mark.parametrize("name, expected", [
    ("sgd", nbbp.SGD()), ("momentum", nbbp.SGD(momentum=0.9)),
    ("nesterov", nbbp.SGD(momentum=0.9, nesterov=True)), ("adagrad", nbbp.AdaGrad()),
    ("rmsprop", nbbp.RMSProp()), ("adam", nbbp.Adam()),
    ("adamw", nbbp.AdamW(weight_decay=0.01)),
])
def test_names_map_to_the_documented_hyperparameters(name, expected):
    assert get_optimizer(name) == expected


@pytest.mark.parametrize("make, match", [
    (lambda: nbbp.SGD(momentum=-0.1), "momentum"),
    (lambda: nbbp.SGD(momentum=1.0), "momentum"),
    (lambda: nbbp.SGD(momentum=float("nan")), "momentum"),
    (lambda: nbbp.SGD(nesterov=True), "nesterov"),
    (lambda: nbbp.SGD(momentum=0.5, nesterov="yes"), "nesterov"),
    (lambda: nbbp.AdaGrad(eps=0.0), "eps"),
    (lambda: nbbp.RMSProp(rho=1.0), "rho"),
    (lambda: nbbp.RMSProp(eps=-1e-8), "eps"),
    (lambda: nbbp.Adam(beta1=1.0), "beta1"),
    (lambda: nbbp.Adam(beta2=-0.5), "beta2"),
    (lambda: nbbp.Adam(eps="small"), "eps"),
    (lambda: nbbp.AdamW(weight_decay=-0.1), "weight_decay"),
    (lambda: nbbp.AdamW(weight_decay=float("inf")), "weight_decay"),
    (lambda: get_optimizer("lamb"), "sgd.*momentum.*nesterov.*adagrad.*rmsprop.*adam.*adamw"),
    (lambda: get_optimizer(None), "optimizer must be one of"),
])
def test_bad_hyperparameters_are_rejected(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_a_float32_update_computes_in_float32():
    # A Python int in the update (1 - beta1, 1 - rho, 1 - beta1^t) made Numba compute every
    # parameter's update of a float32 network in float64. The only float64 left is the powers
    # beta^t, once a call (Numba's float32 ** int is llvm.pow.f64): the hyperparameters h0 and
    # h1 are the only floats widened. Compiled afresh, since cached code cannot be inspected.
    import re

    import numba

    from nbbp._jit import FASTMATH
    from nbbp.optimizers import ADAM_CODE

    fresh = numba.njit(parallel=True, fastmath=set(FASTMATH), error_model="numpy")(
        optimizer_update.py_func)
    dt = np.float32
    param, grad, state = np.zeros(64, dt), np.ones(64, dt), np.zeros((2, 64), dt)
    fresh(ADAM_CODE, param, grad, dt(1), state, dt(0.1), dt(0.9), dt(0.999), dt(1e-8), dt(0), 3,
          False)
    ir = fresh.inspect_llvm(fresh.signatures[0])
    widened = re.findall(r"fpext float (%[\w.]+) to double", ir)
    assert widened, widened
    assert set(widened) <= {"%arg.h0", "%arg.h1"}, widened
    assert not re.findall(r"= f(?:add|sub|mul|div) [a-z ]*double", ir)



def test_adamw_decays_the_weights_apart_from_the_moments():
    # with g = 0 throughout, the moments stay 0 and only the decay moves w: w_t = (1 - alpha
    # lambda)^t w_0, where Adam with l2 would not move it at all
    got = run_kernel("adamw", np.array([2.0, 0.0]), [np.zeros(2)] * 3, 0.1, np.float64, False)
    assert_allclose(got, [2.0 * (1 - 0.1 * 0.01) ** 3, 0.0], rtol=1e-15)


@pytest.mark.parametrize("parallel", [False, True])
def test_adamw_equals_torch(rng, parallel):
    torch = pytest.importorskip("torch")
    param = rng.normal(size=40_000 if parallel else 50)
    grads = [rng.normal(size=param.size) for _ in range(6)]
    optimizer = nbbp.AdamW(beta1=0.8, beta2=0.99, eps=1e-7, weight_decay=0.05)
    ours = param.copy()
    state = np.zeros((2, param.size))
    for t, g in enumerate(grads, start=1):
        optimizer_update(optimizer.code, ours, g, 1.0, state, 0.01, *optimizer.hyperparameters(),
                         t, parallel)
    w = torch.tensor(param.copy(), requires_grad=True)
    theirs = torch.optim.AdamW([w], lr=0.01, betas=(0.8, 0.99), eps=1e-7, weight_decay=0.05)
    for g in grads:
        w.grad = torch.tensor(g)
        theirs.step()
    assert_allclose(ours, w.detach().numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", OPTIMIZER_NAMES)
def test_a_gradient_scale_is_the_gradient_scaled_first(rng, name):
    # clipping's factor, applied as the update reads each gradient: an update of the scaled
    # gradients, to rounding (fastmath may fold the scale into alpha: alpha s g for SGD)
    optimizer = get_optimizer(name)
    param = rng.normal(size=50)
    grads = [rng.normal(size=50) for _ in range(3)]
    results = []
    for scale, gs in ((0.3, grads), (1.0, [0.3 * g for g in grads])):
        p, state = param.copy(), np.zeros((optimizer.n_state, 50))
        for t, g in enumerate(gs, start=1):
            optimizer_update(optimizer.code, p, g, scale, state, 0.05,
                             *optimizer.hyperparameters(), t, False)
        results.append(p)
    assert_allclose(results[0], results[1], rtol=1e-14, atol=1e-15)
    assert not np.allclose(results[0], param)
