"""The SGD update kernel equals the reference: w <- w - alpha g."""

import numpy as np
import pytest
from conftest import DTYPES, tol
from numpy.testing import assert_allclose, assert_array_equal

from nbbp import reference
from nbbp.updates import sgd_update


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1,), (7,), (5, 3), (65, 33)])
def test_sgd_update_equals_reference(rng, variant, shape, dtype):
    W = rng.normal(size=shape).astype(dtype)
    G = rng.normal(size=shape).astype(dtype)
    expected = reference.sgd_update(W, G, dtype(0.05))
    getattr(sgd_update, variant)(W.reshape(-1), G.reshape(-1), dtype(0.05))
    assert_allclose(W, expected, **tol(dtype))


def test_sgd_update_keeps_zero_gradient_entries():
    W = np.array([0.0, 1.0, -2.0])
    sgd_update(W, np.array([0.0, 0.5, 0.0]), 0.1)
    assert_array_equal(W, [0.0, 0.95, -2.0])
