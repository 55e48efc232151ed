"""Gradients of E: dE/dw_ij = mean_k delta_ki a_kj (+ lambda w_ij with l2) and
dE/db_i = mean_k delta_ki."""

from numba import prange

from ._jit import kernel


@kernel(work=lambda delta, A_prev, *_: delta.shape[1] * A_prev.size)
def weight_gradients(delta, A_prev, W, l2, mask, has_mask, dW, db, has_bias):
    """dW_ij = (1/n) sum_k delta_ki a_kj + l2 w_ij, 0 where mask_ij == 0; db_i = (1/n) sum_k delta_ki.

    delta: (n, n_out); A_prev: (n, n_in); W, mask: (n_out, n_in) (mask read only if ``has_mask``).
    Writes dW (n_out, n_in) and, if ``has_bias``, db (n_out,) in place. Parallel over neurons i,
    so each gradient has one owner and the k-sum order does not depend on the thread count.
    Biases are not penalised.
    """
    n_samples = delta.shape[0]
    n_out, n_in = dW.shape
    for i in prange(n_out):
        for j in range(n_in):
            dW[i, j] = 0
        db_i = dW.dtype.type(0)
        for k in range(n_samples):
            d_i = delta[k, i]
            db_i += d_i
            for j in range(n_in):
                dW[i, j] += d_i * A_prev[k, j]
        for j in range(n_in):
            if has_mask and mask[i, j] == 0:
                dW[i, j] = 0
            else:
                dW[i, j] = dW[i, j] / n_samples + l2 * W[i, j]
        if has_bias:
            db[i] = db_i / n_samples
