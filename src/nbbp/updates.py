"""Parameter updates. Optimizers with state (momentum, Adam, ...) extend this module."""

from numba import prange

from ._jit import kernel


@kernel(work=lambda param, *_: param.shape[0])
def sgd_update(param, grad, learning_rate):
    """w_p <- w_p - alpha g_p for every parameter p of a flat (raveled) array.

    param, grad: (n_params,) of one dtype; learning_rate of that dtype. Updates param in place.
    Parallel over parameters p. Masked weights have g = 0, so they stay 0.
    """
    for p in prange(param.shape[0]):
        param[p] -= learning_rate * grad[p]
