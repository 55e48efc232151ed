"""Forward pass of one layer: z_i = sum_j w_ij a_j + b_i, a_i = f(z_i)."""

from numba import prange

from ._jit import kernel
from .activations import activate_row


@kernel(work=lambda A_prev, W, *_: A_prev.shape[0] * W.size)
def forward_layer(A_prev, W, b, has_bias, code, Z, A):
    """z_ki = sum_j w_ij a_kj + b_i, then a_k = f(z_k), for every sample k.

    A_prev: (n_samples, n_in); W: (n_out, n_in); b: (n_out,) (ignored unless ``has_bias``).
    Writes Z and A, (n_samples, n_out), in place. Parallel over samples k.
    """
    n_samples, n_out = Z.shape
    n_in = W.shape[1]
    for k in prange(n_samples):
        for i in range(n_out):
            z_i = Z.dtype.type(0)
            for j in range(n_in):
                z_i += W[i, j] * A_prev[k, j]
            if has_bias:
                z_i += b[i]
            Z[k, i] = z_i
        activate_row(Z[k], code, A[k])
