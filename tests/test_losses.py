"""Per-sample losses equal the reference, and stay finite at outputs of exactly 0 and 1."""

import numpy as np
import pytest
from conftest import DTYPES, LAYER_SHAPES, OUTPUT_LOSS_PAIRS, assert_equivalent, random_targets
from numpy.testing import assert_allclose

from nbbp import reference
from nbbp.activations import ACTIVATIONS
from nbbp.losses import LOSSES, sample_losses


def _losses(Z, O, Y, output, loss):
    J = np.empty(Z.shape[0])
    sample_losses(Z, O, Y, ACTIVATIONS[output], LOSSES[loss],
                  Z.dtype.type(np.finfo(Z.dtype).eps), J)
    return J


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("output, loss", OUTPUT_LOSS_PAIRS)
@pytest.mark.parametrize("n_samples, _, n_out", LAYER_SHAPES)
def test_sample_losses_equal_reference(rng, n_samples, _, n_out, output, loss, dtype):
    Z = rng.normal(size=(n_samples, n_out)).astype(dtype)
    O = reference.activation(output, Z)
    Y = random_targets(rng, n_samples, n_out, loss, dtype)
    assert_equivalent(_losses(Z, O, Y, output, loss),
                      reference.sample_losses(Z, O, Y, output, loss), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("output, loss", [("sigmoid", "log_loss"), ("softmax", "cross_entropy"),
                                          ("softmax", "log_loss"), ("sigmoid", "cross_entropy")])
def test_saturated_outputs_give_finite_loss(dtype, output, loss):
    # Logits of +-1000 make outputs exactly 0 and 1, and the target disagrees with them.
    Z = np.array([[1000.0, -1000.0], [-1000.0, 1000.0]], dtype=dtype)
    O = reference.activation(output, Z)
    Y = np.array([[0.0, 1.0], [1.0, 0.0]], dtype=dtype)
    J = _losses(Z, O, Y, output, loss)
    assert np.isfinite(J).all()
    assert (J > 0).all()
    assert np.isfinite(reference.sample_losses(Z, O, Y, output, loss)).all()


def test_matched_pairs_from_logits_by_hand():
    # log_loss, z = 1000, y = 0: -log(1 - sigmoid(1000)) = 1000 exactly as z -> inf.
    Z = np.array([[1000.0]])
    assert_allclose(_losses(Z, np.ones((1, 1)), np.zeros((1, 1)), "sigmoid", "log_loss"), [1000.0])
    # cross_entropy, equal logits over 4 classes: log 4.
    Z = np.zeros((1, 4))
    Y = np.array([[0.0, 0.0, 1.0, 0.0]])
    assert_allclose(_losses(Z, np.full((1, 4), 0.25), Y, "softmax", "cross_entropy"), [np.log(4)],
                    rtol=1e-15)
    # squared_error: 1/2 ((1 - 0)^2 + (2 - 4)^2) = 2.5
    O = np.array([[1.0, 2.0]])
    assert_allclose(_losses(O, O, np.array([[0.0, 4.0]]), "identity", "squared_error"), [2.5])
