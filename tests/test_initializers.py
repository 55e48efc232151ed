"""Weight initialisation: each scheme draws from the distribution its formula gives (bound,
variance, mean and shape measured on large layers, with fan_in told apart from fan_out), biases
start at 0, the default follows the hidden activations, seeding is reproducible, and masks hold
from the start."""

import re

import numpy as np
import pytest
from conftest import DTYPES
from numpy.testing import assert_array_equal

import nbbp
from nbbp.initializers import INITIALIZERS, initial_weights

# scheme: (distribution, variance as a function of fan_in = n_in and fan_out = n_out).
# Uniform U(+-limit) has variance limit^2 / 3, so xavier's limit sqrt(6/(n_in+n_out)) gives
# 2/(n_in+n_out) and he's limit sqrt(6/n_in) gives 2/n_in: each uniform scheme has the variance
# of its normal twin, which only the shape (bound, kurtosis) tells apart.
SCHEMES = {
    "xavier": ("uniform", lambda n_in, n_out: 2 / (n_in + n_out)),
    "xavier_normal": ("normal", lambda n_in, n_out: 2 / (n_in + n_out)),
    "he": ("uniform", lambda n_in, n_out: 2 / n_in),
    "he_normal": ("normal", lambda n_in, n_out: 2 / n_in),
}
EXCESS_KURTOSIS = {"uniform": -1.2, "normal": 0.0}
STAT_RTOL = 0.05
# Square, more inputs than outputs, more outputs than inputs, and a deeper net in which every
# layer must use its own fans. The smallest layer has 3.2e5 weights: the variance estimate's
# relative standard error is about sqrt(2 / 3.2e5) = 0.25%, far inside 5%.
SIZES = [[1000, 1000], [1000, 500], [500, 1000], [800, 400, 1200]]


def network(sizes, init, dtype=np.float64, seed=0, **kwargs):
    return nbbp.Network(sizes, activation="tanh", output="identity", loss="squared_error",
                        init=init, seed=seed, dtype=dtype, **kwargs)


@pytest.mark.parametrize("sizes", SIZES, ids=str)
@pytest.mark.parametrize("init", list(SCHEMES))
@pytest.mark.parametrize("dtype", DTYPES)
def test_weights_follow_the_scheme_formula(init, sizes, dtype):
    net = network(sizes, init, dtype)
    shape, variance = SCHEMES[init]
    for l, W in enumerate(net.weights):
        n_in, n_out = sizes[l], sizes[l + 1]
        assert W.shape == (n_out, n_in)
        assert W.dtype == dtype
        w = W.astype(np.float64).ravel()
        expected_var = variance(n_in, n_out)
        assert w.var() == pytest.approx(expected_var, rel=STAT_RTOL), f"layer {l}"
        # |mean| within 5 standard errors of 0.
        assert abs(w.mean()) < 5 * np.sqrt(expected_var / w.size), f"layer {l}"
        centred = w - w.mean()
        kurtosis = np.mean(centred**4) / np.mean(centred**2) ** 2 - 3
        assert kurtosis == pytest.approx(EXCESS_KURTOSIS[shape], abs=0.05), f"layer {l}"
        largest = np.abs(W).max()
        if shape == "uniform":
            limit = np.sqrt(3 * expected_var)  # sqrt(6/(n_in+n_out)) or sqrt(6/n_in)
            assert largest <= W.dtype.type(limit), f"layer {l}"  # never beyond the bound
            assert largest >= (1 - STAT_RTOL) * limit, f"layer {l}"
        else:
            # ~1e6 normal draws reach 4 to 5 standard deviations; a uniform never passes 1.73.
            assert largest > 3.5 * np.sqrt(expected_var), f"layer {l}"


@pytest.mark.parametrize("init", ["he", "he_normal"])
def test_he_depends_on_fan_in_only(init):
    # Same fan_in, fan_out from 250 to 2000: the variance stays 2/fan_in.
    variances = [network([1000, n_out], init).weights[0].var() for n_out in (250, 1000, 2000)]
    for v in variances:
        assert v == pytest.approx(2 / 1000, rel=STAT_RTOL)
    # Same fan_out, fan_in halved: the variance doubles.
    assert network([500, 1000], init).weights[0].var() == pytest.approx(2 / 500, rel=STAT_RTOL)


@pytest.mark.parametrize("init", ["xavier", "xavier_normal"])
def test_xavier_depends_on_fan_in_plus_fan_out(init):
    # Swapping fan_in and fan_out keeps the variance; changing their sum changes it.
    forward = network([1000, 500], init).weights[0].var()
    backward = network([500, 1000], init).weights[0].var()
    assert forward == pytest.approx(2 / 1500, rel=STAT_RTOL)
    assert backward == pytest.approx(2 / 1500, rel=STAT_RTOL)
    assert network([1000, 2000], init).weights[0].var() == pytest.approx(2 / 3000, rel=STAT_RTOL)


@pytest.mark.parametrize("init", [None, *INITIALIZERS])
@pytest.mark.parametrize("dtype", DTYPES)
def test_biases_start_at_exactly_zero(init, dtype):
    net = network([7, 9, 5, 4], init, dtype, bias=[True, False, True])
    assert net.biases[1] is None
    for b, n in ((net.biases[0], 9), (net.biases[2], 4)):
        assert b.dtype == dtype
        assert b.shape == (n,)
        assert_array_equal(b, np.zeros(n, dtype=dtype))
        assert not np.any(np.signbit(b))  # +0.0, not -0.0


@pytest.mark.parametrize("activation, expected", [
    ("relu", "he"),
    ("leaky_relu", "he"),
    (["relu", "leaky_relu"], "he"),
    (["leaky_relu", "relu"], "he"),
    ("sigmoid", "xavier"),
    ("tanh", "xavier"),
    ("identity", "xavier"),
    (["relu", "tanh"], "xavier"),
    (["sigmoid", "leaky_relu"], "xavier"),
    (["identity", "relu"], "xavier"),
], ids=str)
def test_default_init_is_he_for_relu_like_hidden_layers_and_xavier_otherwise(activation, expected):
    def net(init):
        return nbbp.Network([30, 40, 20, 3], activation=activation, init=init, seed=3)
    default = net(None)
    assert default.init == expected
    for got, want in zip(default.weights, net(expected).weights):
        assert_array_equal(got, want)
    other = "xavier" if expected == "he" else "he"
    assert not np.array_equal(default.weights[0], net(other).weights[0])


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "tanh"])
def test_default_init_is_xavier_without_hidden_layers(activation):
    # No hidden layer, so no relu to suit He: even with activation="relu" (the default).
    def net(init, **kwargs):
        return nbbp.Network([30, 3], init=init, seed=3, **kwargs)
    default = net(None, activation=activation)
    assert default.init == "xavier"
    assert net(None).init == "xavier"
    assert_array_equal(default.weights[0], net("xavier").weights[0])
    assert not np.array_equal(default.weights[0], net("he").weights[0])


@pytest.mark.parametrize("init", [None, *INITIALIZERS])
@pytest.mark.parametrize("dtype", DTYPES)
def test_same_seed_same_weights_other_seed_other_weights(rng, init, dtype):
    seed, other = (int(s) for s in rng.choice(2**31, size=2, replace=False))

    def params(s):
        net = network([6, 8, 5, 3], init, dtype, seed=s)
        return net.weights + tuple(b for b in net.biases if b is not None)

    for a, b in zip(params(seed), params(seed)):
        assert a.dtype == dtype
        assert a.tobytes() == b.tobytes()
    for a, b in zip(params(seed)[:3], params(other)[:3]):
        assert not np.array_equal(a, b)


@pytest.mark.parametrize("init", list(INITIALIZERS))
def test_float32_network_has_float32_weights(init):
    net = network([6, 8, 3], init, np.float32)
    assert net.dtype == np.float32
    for W in net.weights:
        assert W.dtype == np.float32
        assert W.flags.c_contiguous
    for b in net.biases:
        assert b.dtype == np.float32
    assert initial_weights(np.random.default_rng(0), 3, 6, init, np.float32).dtype == np.float32


@pytest.mark.parametrize("bad", ["glorot", "He", "xavier_uniform", "", " he", 3, b"he"], ids=repr)
def test_unknown_init_raises_value_error_listing_the_choices(bad):
    with pytest.raises(ValueError, match="init must be one of") as info:
        network([4, 3], bad)
    message = str(info.value)
    assert message.startswith("init must be one of")
    assert message.endswith(f"got {bad!r}")
    for name in INITIALIZERS:
        assert repr(name) in message


def test_initial_weights_rejects_an_unknown_scheme_listing_the_choices():
    with pytest.raises(ValueError, match=re.escape(f"init must be one of {list(INITIALIZERS)}; "
                                                  "got 'glorot'")):
        initial_weights(np.random.default_rng(0), 3, 4, "glorot", np.float64)


@pytest.mark.parametrize("init", [None, *INITIALIZERS])
@pytest.mark.parametrize("dtype", DTYPES)
def test_masked_weights_are_zero_from_the_start(rng, init, dtype):
    sizes = [9, 12, 7, 4]
    masks = [rng.integers(0, 2, size=(12, 9)), None, rng.integers(0, 2, size=(4, 7))]
    for M in (masks[0], masks[2]):
        assert 0 < M.sum() < M.size  # some weights masked, some not
    net = network(sizes, init, dtype, masks=masks)
    for l, (W, M) in enumerate(zip(net.weights, masks)):
        if M is None:
            assert np.all(W != 0)
            continue
        assert_array_equal(net.masks[l], M)
        assert np.all(W[M == 0] == 0), f"layer {l}"
        assert np.all(W[M == 1] != 0), f"layer {l}"
