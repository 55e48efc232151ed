"""Inverted dropout of hidden activations in training, with counter-based masks.

Unit j of sample row r in layer l is dropped, in the batch of optimizer step t, when
hash(seed, t, l, r, j) < threshold: a pure function of its indices (SplitMix64's finaliser,
chained), so no mask is stored, the backward pass computes the same one again, and the masks
are the same bits on any number of threads. A kept unit is scaled by 2^32 / (2^32 - threshold),
1 / (1 - p) for p = threshold / 2^32, so E[a] is unchanged; inference uses no dropout.
"""

import numpy as np

from ._jit import helper, part

TWO_32 = 4294967296  # 2^32: thresholds are 32-bit


def threshold(p):
    """The 32-bit threshold of a dropout probability p in [0, 1)."""
    return min(round(p * TWO_32), TWO_32 - 1)


@helper
def _mix(x):
    """SplitMix64's finaliser: a bijection of uint64 that scatters every input bit."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


@helper
def row_key(seed, step, layer, row):
    """The hash of a sample row's indices, which each unit's hash continues. (The seed is
    cast: an int64 one would make every operation signed, and the shifts sign-extend.)"""
    x = _mix(np.uint64(seed) ^ np.uint64(step))
    x = _mix(x ^ np.uint64(layer))
    return _mix(x ^ np.uint64(row))


# O(width) work per sample, serial like deltas.output_delta; the same pass drops a forward
# activation and the delta that flows back through it.
@part
def dropout_rows(A, seed, step, layer, drop_threshold):
    """a_rj <- 0 where hash(seed, step, layer, r, j) < drop_threshold, else a_rj / (1 - p) with
    p = drop_threshold / 2^32, for every row r of A (n_samples, width), in place.

    On a layer's activations in the forward pass; on dE/da of the same layer, with the same
    arguments, in the backward pass (a dropped unit passes no gradient back)."""
    scale = A.dtype.type(TWO_32 / (TWO_32 - drop_threshold))
    zero = A.dtype.type(0)
    cut = np.uint64(drop_threshold)
    for r in range(A.shape[0]):
        key = row_key(seed, step, layer, r)
        for j in range(A.shape[1]):
            if (_mix(key ^ np.uint64(j)) >> np.uint64(32)) < cut:
                A[r, j] = zero
            else:
                A[r, j] *= scale
