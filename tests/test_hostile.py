"""The public API under attack by a careless, clumsy or malicious user: wrong types, shapes,
dtypes, layouts and values; absurd hyperparameters; misbehaving callbacks; copies, pickles and
threads; unwritable paths and hostile files; the command line and the scikit-learn estimators.

Bad input raises a clear error that names the problem, and a call that fails changes nothing
(parameters, optimizer state and steps, running statistics, random generator, history).
Valid-but-odd input (big-endian, read-only, broadcast or float16 arrays, NumPy scalars) gives
exactly what the same call gives on clean input. Cases the existing test files cover are not
repeated here. The 19 library bugs this suite found when it was written are among its cases.
"""

import copy
import decimal
import fractions
import gzip
import io
import json
import os
import pickle
import re
import stat
import threading
import tracemalloc
import zipfile

import numpy as np
import pytest
from numpy.testing import assert_array_equal

import nbbp
from nbbp.cli import main

N_IN, N_OUT = 4, 3
SIZES = [N_IN, 5, N_OUT]


def problem(n=12, seed=0):
    """A tiny 3-class problem on 4 features: X float64 (n, 4), integer labels (n,)."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, N_IN)), np.arange(n) % N_OUT


X, Y = problem()
FIT = dict(epochs=1, batch_size=4, learning_rate=0.05, optimizer="adam")


def fresh(**kwargs):
    return nbbp.Network(kwargs.pop("sizes", SIZES), seed=kwargs.pop("seed", 1), **kwargs)


def trained(**kwargs):
    """A network with a history, Adam state and a moved generator: all a failed call must keep."""
    net = fresh(**kwargs)
    net.fit(X, Y, **FIT)
    return net


def state(net):
    history = net.history
    return dict(theta=net._theta.copy(), opt_state=net._opt.state.copy(), steps=net._opt.steps,
                stats=net._stats.copy(), optimizer=net.optimizer,
                rng=net.rng.bit_generator.state, history=history,
                record=None if history is None else history.as_arrays())


def assert_same_state(net, before):
    after = state(net)
    for key in ("theta", "opt_state", "stats"):
        assert after[key].shape == before[key].shape, key
        assert_array_equal(after[key], before[key], err_msg=key)
    assert after["steps"] == before["steps"]
    assert after["optimizer"] == before["optimizer"]
    assert after["rng"] == before["rng"]
    assert after["history"] is before["history"]
    if before["record"] is not None:
        for key, values in before["record"].items():
            assert_array_equal(after["record"][key], values, err_msg=key)


def cases(table):
    """pytest.param for each (id, *values) row of ``table``; rows already made by pytest.param
    pass as they are."""
    return [row if hasattr(row, "marks") else pytest.param(*row[1:], id=row[0]) for row in table]


def assert_rejected(net, call, exc, match):
    """``call(net)`` raises ``exc`` whose message matches ``match``; the network is unchanged."""
    before = state(net)
    with pytest.raises(exc, match=match):
        call(net)
    assert_same_state(net, before)


# ------------------------------------------------------------------------------------------------
# Constructor: containers that are not lists, wrong types, names that are almost right
# ------------------------------------------------------------------------------------------------
def ragged_mask():
    return [[1, 1, 1, 1], [1, 1], [1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 1, 1]]


BAD_CONSTRUCTOR = [
    ("sizes None", dict(sizes=None), TypeError, "sizes must be a list of layer widths"),
    ("sizes a generator", dict(sizes=(s for s in SIZES)), TypeError,
     "sizes must be a list of layer widths"),
    ("sizes a 2-D array", dict(sizes=np.array([SIZES])), ValueError, "sizes needs at least 2"),
    ("sizes nested lists", dict(sizes=[[4], [5], [3]]), ValueError,
     "sizes must hold positive integers"),
    pytest.param(dict(sizes=np.array(4)), TypeError, "sizes must be a list of layer widths",
                 id="sizes a 0-d array"),
    pytest.param(dict(sizes={4, 5, 3}), TypeError, "sizes must be a list of layer widths",
                 id="sizes a set"),
    pytest.param(dict(sizes={4: "in", 5: "hidden", 3: "out"}), TypeError,
                 "sizes must be a list of layer widths", id="sizes a dict"),
    ("activation None", dict(activation=None), ValueError,
     "activation must be one of .*; got None"),
    ("activation bytes", dict(activation=b"relu"), ValueError,
     "activation must be one of .*b'relu'"),
    ("activation ReLU", dict(activation="ReLU"), ValueError, "activation must be one of .*'ReLU'"),
    ("activation padded", dict(activation=" relu"), ValueError,
     "activation must be one of .*' relu'"),
    ("activation an array", dict(activation=np.array(["tanh"])), ValueError,
     "activation must be one of"),
    ("activation for no hidden layer", dict(sizes=[4, 3], activation=["relu"]), ValueError,
     re.escape("activation must be one value or a list of 0 (one per layer); got a list of 1")),
    ("output None", dict(output=None), ValueError, "output must be one of .*; got None"),
    ("output a list", dict(output=["softmax"]), ValueError, "output must be one of"),
    ("loss None", dict(loss=None), ValueError, "loss must be one of .*; got None"),
    ("init empty", dict(init=""), ValueError, "init must be one of .*; got ''"),
    ("init an int", dict(init=1), ValueError, "init must be one of .*; got 1"),
    ("seed 1.5", dict(seed=1.5), TypeError, "seed must be None or a non-negative int; got 1.5"),
    ("seed a string", dict(seed="1"), TypeError,
     "seed must be None or a non-negative int; got '1'"),
    ("seed True", dict(seed=True), TypeError, "seed must be None or a non-negative int; got True"),
    ("seed a list", dict(seed=[1, 2]), TypeError, "seed must be None or a non-negative int"),
    ("dtype big-endian", dict(dtype=">f8"), ValueError,
     "dtype must be float32 or float64; got '>f8'"),
    ("dtype longdouble", dict(dtype=np.longdouble), ValueError, "dtype must be float32 or float64"),
    ("bias None", dict(bias=None), TypeError, "bias must be a bool or a list of bools; got None"),
    ("bias 0", dict(bias=0), TypeError, "bias must be a bool or a list of bools; got 0"),
    ("bias an array", dict(bias=np.array([True, False])), TypeError, "bias must be a bool"),
    ("batch_norm None", dict(batch_norm=None), TypeError, "batch_norm must be a bool"),
    ("masks an object array", dict(masks=np.array([None, None], dtype=object)), ValueError,
     "masks must be None or a list of 2 entries"),
    ("masks a string", dict(masks="none"), ValueError, "masks must be None or a list of 2 entries"),
    ("masks a generator", dict(masks=(m for m in [None, None])), ValueError,
     "masks must be None or a list of 2 entries"),
    ("mask a scalar", dict(masks=[1, None]), ValueError,
     re.escape("masks[0] must have shape (5, 4) (sizes[1], sizes[0]); got ()")),
    ("mask of Nones", dict(masks=[np.full((5, 4), None), None]), ValueError,
     re.escape("masks[0] must hold only 0 and 1")),
    pytest.param(dict(masks=[ragged_mask(), None]), ValueError, re.escape("masks[0]"),
                 id="mask ragged"),
    ("residual an array of pairs", dict(sizes=[4, 5, 5, 3], residual=np.array([[1, 2]])),
     TypeError, "residual must be None, an int or a list of"),
    ("residual a set", dict(sizes=[4, 5, 5, 3], residual={(1, 2)}), TypeError,
     "residual must be None, an int or a list of"),
    ("residual 10**20", dict(sizes=[4, 5, 5, 3], residual=10**20), ValueError,
     "residual=100000000000000000000 adds no skip"),
]


@pytest.mark.parametrize("kwargs, exc, match", cases(BAD_CONSTRUCTOR))
def test_bad_constructor_arguments_name_the_problem(kwargs, exc, match):
    kwargs = {"sizes": SIZES, **kwargs}
    with pytest.raises(exc, match=match):
        nbbp.Network(**kwargs)


@pytest.mark.parametrize("odd, plain", [
    (dict(sizes=np.array([np.int8(4), np.uint64(5), 3], dtype=object)), dict()),
    (dict(sizes=np.array(SIZES, dtype=np.int16)), dict()),
    (dict(seed=np.int64(1)), dict(seed=1)),
    (dict(dtype="f4"), dict(dtype=np.float32)),
    (dict(activation=("tanh",)), dict(activation="tanh")),
    (dict(masks=[np.eye(5, 4, dtype=bool), None]), dict(masks=[np.eye(5, 4), None])),
    (dict(bias=[np.True_, np.False_]), dict(bias=[True, False])),
], ids=["sizes of NumPy integers", "sizes an int16 array", "seed np.int64", "dtype 'f4'",
        "activation a tuple", "boolean mask", "bias np.bool_"])
def test_odd_but_valid_constructor_arguments_build_the_same_network(odd, plain):
    a = nbbp.Network(**{"sizes": SIZES, "seed": 1, **odd})
    b = nbbp.Network(**{"sizes": SIZES, "seed": 1, **plain})
    assert a.sizes == b.sizes
    assert all(type(s) is int for s in a.sizes)
    assert a.dtype == b.dtype
    assert_array_equal(a._theta, b._theta)
    assert_array_equal(a._mask_theta, b._mask_theta)
    assert_array_equal(a.forward(X), b.forward(X))


# ------------------------------------------------------------------------------------------------
# X of odd layouts, byte orders and dtypes: the same numbers as a clean C-ordered float array
# ------------------------------------------------------------------------------------------------
def read_only(a):
    a = a.copy()
    a.flags.writeable = False
    return a


ODD_X = {
    "big-endian float64": lambda X: X.astype(">f8"),
    "big-endian float32": lambda X: X.astype(">f4"),
    "big-endian int": lambda X: np.round(X * 4).astype(">i4"),
    "float16": lambda X: X.astype(np.float16),
    "read-only": read_only,
    "broadcast rows (zero stride, read-only)": lambda X: np.broadcast_to(X[:1], X.shape),
    "a view with a negative column stride": lambda X: X[:, ::-1].copy()[:, ::-1],
    "a memoryview": lambda X: memoryview(np.ascontiguousarray(X)),
    "nested lists": lambda X: X.tolist(),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", list(ODD_X))
def test_odd_X_gives_the_output_of_its_clean_float_copy(name, dtype):
    net = fresh(dtype=dtype)
    odd = ODD_X[name](X)
    clean = np.array(np.asarray(odd), dtype=dtype, order="C")
    out = net.forward(odd)
    assert out.dtype == dtype
    assert_array_equal(out, net.forward(clean))
    assert_array_equal(net.predict(odd), net.predict(clean))


@pytest.mark.parametrize("name", ["big-endian float64", "read-only", "float16"])
def test_fit_on_odd_X_and_labels_equals_fit_on_clean_ones(name):
    odd_X = ODD_X[name](X)
    odd_y = Y.astype(">i8") if name == "big-endian float64" else read_only(Y)
    a, b = fresh(), fresh()
    ha = a.fit(odd_X, odd_y, epochs=2, batch_size=4, optimizer="adam")
    hb = b.fit(np.asarray(odd_X, dtype=np.float64), np.asarray(Y), epochs=2, batch_size=4,
               optimizer="adam")
    assert_array_equal(a._theta, b._theta)
    assert_array_equal(a._opt.state, b._opt.state)
    assert ha.loss == hb.loss


# ------------------------------------------------------------------------------------------------
# X that is not a 2-D numeric array, through training and inference
# ------------------------------------------------------------------------------------------------
BAD_X = [
    ("None", None, TypeError, "X must be a numeric array .* got dtype object"),
    ("a dict", {"a": 1}, TypeError, "X must be a numeric array .* got dtype object"),
    ("a generator", (row for row in X), TypeError, "X must be a numeric array .* got dtype object"),
    ("a string", "1,2,3,4", TypeError, "X must be a numeric array .* got dtype <U7"),
    ("bytes", b"1234", TypeError, "X must be a numeric array .* got dtype \\|S4"),
    ("datetime64", np.zeros((4, 4), dtype="datetime64[s]"), TypeError, "got dtype datetime64"),
    ("timedelta64", np.zeros((4, 4), dtype="timedelta64[s]"), TypeError, "got dtype timedelta64"),
    ("structured", np.zeros((4, 4), dtype=[("a", "f8")]), TypeError, "X must be a numeric array"),
    ("an int beyond int64", [[10**400, 0, 0, 0]], TypeError, "got dtype object"),
    ("a 0-d float", np.float64(3.0), ValueError,
     re.escape("X must be 2-D, (n_samples, 4); got shape ()")),
    ("True", True, ValueError, re.escape("X must be 2-D, (n_samples, 4); got shape ()")),
    ("no features", np.zeros((4, 0)), ValueError,
     re.escape("X has 0 features per sample; this network takes 4 (sizes[0])")),
    ("float16 inf", np.full((2, 4), np.inf, dtype=np.float16), ValueError,
     re.escape("X contains NaN or inf (first at row 0)")),
]


@pytest.mark.parametrize("method", ["fit", "partial_fit", "predict", "gradients"])
@pytest.mark.parametrize("bad, exc, match", [pytest.param(*c[1:], id=c[0]) for c in BAD_X])
def test_bad_X_is_rejected_and_changes_nothing(method, bad, exc, match):
    call = {"fit": lambda net: net.fit(bad, Y[:4], **FIT),
            "partial_fit": lambda net: net.partial_fit(bad, Y[:4], batch_size=4, optimizer="adam"),
            "predict": lambda net: net.predict(bad),
            "gradients": lambda net: net.gradients(bad, Y[:4])}[method]
    assert_rejected(trained(), call, exc, match)


def test_a_nan_already_in_float64_X_is_not_blamed_on_the_conversion_to_float32():
    bad = X.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError,
                       match=re.escape("X contains NaN or inf (first at row 3)")) as info:
        fresh(dtype=np.float32).forward(bad)
    assert "after conversion" not in str(info.value)


# ------------------------------------------------------------------------------------------------
# y through fit and partial_fit (integer labels stay labels there: a path of its own)
# ------------------------------------------------------------------------------------------------
def with_value(a, index, value):
    out = np.array(a, dtype=np.float64)
    out[index] = value
    return out


BAD_LABELS = [
    ("label 3 of 3 outputs", np.where(Y == 2, 3, Y), ValueError,
     "y has class label 3 out of range: cross_entropy with 3 outputs takes labels 0..2"),
    ("label -1", np.where(Y == 0, -1, Y), ValueError, "y has class label -1 out of range"),
    ("label 0.5", with_value(Y, 5, 0.5), ValueError,
     "y as class labels must be whole numbers; got 0.5"),
    ("label NaN", with_value(Y, 7, np.nan), ValueError,
     re.escape("y contains NaN or inf (first at row 7)")),
    ("label inf", with_value(Y, 2, np.inf), ValueError,
     re.escape("y contains NaN or inf (first at row 2)")),
    ("label 1e20", with_value(Y, 0, 1e20), ValueError, "y has class label 1e\\+20 out of range"),
    ("label uint64 max", np.full(12, 2**64 - 1, dtype=np.uint64), ValueError,
     "y has class label 18446744073709551615 out of range"),
    ("label beyond int64", [10**400] + [0] * 11, TypeError,
     "y must be a numeric array .* got dtype object"),
    ("labels as objects", np.array(list(Y), dtype=object), TypeError, "got dtype object"),
    ("labels as strings", Y.astype(str), TypeError, "y must be a numeric array .* got dtype <U"),
    ("labels complex", Y.astype(complex), TypeError, "got dtype complex128"),
    ("y None", None, TypeError, "y must be a numeric array"),
    ("y 0-d", np.int64(1), ValueError, re.escape("y must be 1-D or 2-D; got shape ()")),
    ("y 3-D", np.zeros((12, 3, 1)), ValueError,
     re.escape("y must be 1-D or 2-D; got shape (12, 3, 1)")),
    ("y a column of labels", Y[:, None], ValueError,
     re.escape("y must have 3 columns, one per output neuron; got shape (12, 1)")),
    ("y empty", np.zeros(0), ValueError, "X has 12 samples but y has 0"),
    ("y one label short", Y[:-1], ValueError, "X has 12 samples but y has 11"),
    ("y one label long", np.append(Y, 0), ValueError, "X has 12 samples but y has 13"),
]


@pytest.mark.parametrize("method", ["fit", "partial_fit"])
@pytest.mark.parametrize("bad, exc, match", [pytest.param(*c[1:], id=c[0]) for c in BAD_LABELS])
def test_bad_labels_in_training_are_rejected_and_change_nothing(method, bad, exc, match):
    call = {"fit": lambda net: net.fit(X, bad, **FIT),
            "partial_fit": lambda net: net.partial_fit(X, bad, batch_size=4,
                                                       optimizer="adam")}[method]
    assert_rejected(trained(), call, exc, match)


@pytest.mark.parametrize("odd", [Y.astype(np.uint8), Y.astype(">i2"), Y.astype(np.float32),
                                 np.eye(3, dtype=bool)[Y], read_only(np.eye(3)[Y])],
                         ids=["uint8", "big-endian int16", "whole floats", "one-hot booleans",
                              "read-only one-hot rows"])
def test_odd_but_valid_labels_train_exactly_as_int64_labels(odd):
    a, b = fresh(), fresh()
    a.fit(X, odd, **FIT)
    b.fit(X, Y, **FIT)
    assert_array_equal(a._theta, b._theta)


# ------------------------------------------------------------------------------------------------
# Hyperparameters of fit and partial_fit: wrong types, bools for numbers, absurd values
# ------------------------------------------------------------------------------------------------
BAD_FIT = [
    ("epochs True", dict(epochs=True), ValueError, "epochs must be an integer >= 1; got True"),
    ("epochs 2.0", dict(epochs=2.0), ValueError, "epochs must be an integer >= 1; got 2.0"),
    ("epochs -1", dict(epochs=-1), ValueError, "epochs must be an integer >= 1; got -1"),
    ("epochs a string", dict(epochs="3"), ValueError, "epochs must be an integer >= 1; got '3'"),
    ("batch_size True", dict(batch_size=True), ValueError,
     "batch_size must be an integer >= 1; got True"),
    ("batch_size a numpy float", dict(batch_size=np.float64(4)), ValueError,
     "batch_size must be an integer"),
    ("learning_rate a Decimal", dict(learning_rate=decimal.Decimal("0.1")), TypeError,
     "learning_rate must be a positive number; got Decimal"),
    ("learning_rate complex", dict(learning_rate=0.1 + 0j), TypeError,
     "learning_rate must be a positive number; got complex"),
    ("l2 True", dict(l2=True), ValueError, "l2 must be a finite number >= 0; got True"),
    ("l2 a string", dict(l2="0.1"), ValueError, "l2 must be a finite number >= 0; got '0.1'"),
    ("l2 inf", dict(l2=np.inf), ValueError, "l2 must be a finite number >= 0; got inf"),
    ("l2 NaN", dict(l2=np.nan), ValueError, "l2 must be a finite number >= 0; got nan"),
    ("validation_fraction 0", dict(validation_fraction=0), ValueError,
     re.escape("validation_fraction must be in (0, 1); got 0")),
    ("validation_fraction True", dict(validation_fraction=True), ValueError,
     re.escape("validation_fraction must be in (0, 1); got True")),
    ("validation_fraction NaN", dict(validation_fraction=np.nan), ValueError,
     re.escape("validation_fraction must be in (0, 1); got nan")),
    ("validation_fraction a string", dict(validation_fraction="0.2"), ValueError,
     "validation_fraction must be in"),
    ("validation_fraction leaving no sample", dict(validation_fraction=0.01), ValueError,
     "validation_fraction=0.01 of 12 samples leaves no validation or no training samples"),
    ("validation_fraction leaving no training", dict(validation_fraction=0.99), ValueError,
     "leaves no validation or no training samples"),
    ("validation_data a triple", dict(validation_data=(X, Y, Y)), ValueError,
     re.escape("validation_data must be a pair (X_val, y_val)")),
    ("validation_data a dict", dict(validation_data={"X": X, "y": Y}), ValueError,
     "validation_data must be a pair"),
    ("validation_data an iterator", dict(validation_data=iter([X, Y])), ValueError,
     "validation_data must be a pair"),
    ("validation y None", dict(validation_data=(X, None)), TypeError,
     "validation y must be a numeric array"),
    ("validation y short", dict(validation_data=(X, Y[:3])), ValueError,
     "X has 12 samples but validation y has 3"),
    ("validation X empty", dict(validation_data=(X[:0], Y[:0])), ValueError,
     "validation X is empty: it has 0 samples"),
    ("patience 2.0", dict(patience=2.0, validation_fraction=0.25), ValueError,
     "patience must be an integer >= 1; got 2.0"),
    ("patience True", dict(patience=True, validation_fraction=0.25), ValueError,
     "patience must be an integer >= 1; got True"),
    ("optimizer None", dict(optimizer=None), ValueError, "optimizer must be one of .*; got None"),
    ("optimizer in capitals", dict(optimizer="ADAM"), ValueError,
     "optimizer must be one of .*; got 'ADAM'"),
    ("optimizer a class", dict(optimizer=nbbp.Adam), ValueError, "optimizer must be one of"),
    ("optimizer a list", dict(optimizer=["adam"]), ValueError, "optimizer must be one of"),
    ("shuffle 1", dict(shuffle=1), TypeError, "shuffle must be True or False; got 1"),
    ("shuffle None", dict(shuffle=None), TypeError, "shuffle must be True or False; got None"),
    ("verbose None", dict(verbose=None), TypeError, "verbose must be True or False; got None"),
    ("callback keyword-only", dict(callback=lambda *, epoch, history: None), TypeError,
     re.escape("callback must be callable as callback(epoch, history)")),
    ("callback a string", dict(callback="print"), TypeError, "callback must be callable"),
    ("an unknown keyword", dict(momentum=0.9), TypeError, "unexpected keyword argument 'momentum'"),
    # the loss of the first batch is finite; the weights after its update are not
    ("l2 1e308", dict(l2=1e308), nbbp.DivergenceError, "training diverged in epoch 0"),
]


@pytest.mark.parametrize("kwargs, exc, match", [pytest.param(*c[1:], id=c[0]) for c in BAD_FIT])
def test_bad_fit_arguments_are_rejected_and_change_nothing(kwargs, exc, match):
    assert_rejected(trained(), lambda net: net.fit(X, Y, **{**FIT, "epochs": 2, **kwargs}), exc,
                    match)


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(shuffle="no"), TypeError, "shuffle must be True or False"),
    (dict(batch_size=0), ValueError, "batch_size must be an integer >= 1; got 0"),
    (dict(l2=-1.0), ValueError, "l2 must be a finite number >= 0"),
    (dict(optimizer="lamb"), ValueError, "optimizer must be one of"),
    (dict(optimizer=nbbp.SGD(momentum=0.5), learning_rate=np.inf), ValueError,
     "learning_rate must be a finite number > 0; got inf"),
], ids=["shuffle a string", "batch_size 0", "negative l2", "unknown optimizer",
        "another optimizer with an infinite rate"])
def test_bad_partial_fit_arguments_change_nothing(kwargs, exc, match):
    assert_rejected(trained(), lambda net: net.partial_fit(X, Y, **{"batch_size": 4, **kwargs}),
                    exc, match)


def test_absurd_but_valid_counts_work():
    # 10**30 epochs stopped by a callback, and a batch larger than any array: no OverflowError
    net = fresh()
    h = net.fit(X, Y, epochs=10**30, batch_size=4, callback=lambda epoch, history: False)
    assert h.epochs == 1
    assert h.stopped_early
    a, b = fresh(), fresh()
    with pytest.warns(UserWarning, match="batch_size=9223372036854775808 is larger than the 12"):
        a.fit(X, Y, epochs=2, batch_size=2**63)
    b.fit(X, Y, epochs=2, batch_size=None)
    assert_array_equal(a._theta, b._theta)


def test_numpy_scalars_for_counts_and_rates_train_as_python_numbers():
    a, b = fresh(), fresh()
    a.fit(X, Y, epochs=np.int64(2), batch_size=np.int32(4), learning_rate=np.float64(0.05),
          l2=np.float32(0.0), shuffle=np.True_)
    b.fit(X, Y, epochs=2, batch_size=4, learning_rate=0.05, l2=0.0, shuffle=True)
    assert_array_equal(a._theta, b._theta)


def test_a_fraction_learning_rate_steps_as_its_float():
    a, b = fresh(), fresh()
    assert a.step(X, Y, fractions.Fraction(1, 10)) == b.step(X, Y, 0.1)
    assert_array_equal(a._theta, b._theta)


def test_a_fraction_l2_trains_as_its_float():
    a, b = fresh(), fresh()
    a.fit(X, Y, l2=fractions.Fraction(1, 100), **FIT)
    b.fit(X, Y, l2=0.01, **FIT)
    assert_array_equal(a._theta, b._theta)


def test_a_fraction_momentum_is_its_float():
    assert nbbp.SGD(momentum=fractions.Fraction(9, 10)) == nbbp.SGD(momentum=0.9)


@pytest.mark.parametrize("make, match", [
    (lambda: nbbp.SGD(momentum=True), "momentum must be a finite number; got True"),
    (lambda: nbbp.SGD(momentum="0.9"), "momentum must be a finite number; got '0.9'"),
    (lambda: nbbp.Adam(eps=np.inf), "eps must be a finite number; got inf"),
    (lambda: nbbp.RMSProp(eps=np.array([1e-8])),
     re.escape("eps must be a finite number; got array(")),
    (lambda: nbbp.RMSProp(rho=None), "rho must be a finite number; got None"),
    (lambda: nbbp.SGD(momentum=0.9, nesterov=1), "nesterov must be True or False; got 1"),
], ids=["momentum True", "momentum a string", "eps inf", "eps an array", "rho None",
        "nesterov 1"])
def test_bad_optimizer_objects_name_the_hyperparameter(make, match):
    with pytest.raises(ValueError, match=match):
        make()


# ------------------------------------------------------------------------------------------------
# Overflow and non-finite parameters: reported, never returned as NaN
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype, big", [(np.float64, 1e308), (np.float32, 3e38)])
def test_gradients_of_an_overflowing_batch_are_reported_not_returned(dtype, big):
    net = nbbp.Network([2, 3, 2], seed=0, dtype=dtype)
    with pytest.raises(FloatingPointError, match=r"layer 0 \(of 2\) overflowed"):
        net.gradients(np.array([[1.0, 2.0], [big, big]], dtype=dtype), [0, 1])


@pytest.mark.parametrize("method", ["fit", "partial_fit", "step"])
def test_a_nan_weight_set_by_hand_is_named_before_training(method):
    net = trained()
    net.weights[0][2, 1] = np.nan
    call = {"fit": lambda net: net.fit(X, Y, **FIT),
            "partial_fit": lambda net: net.partial_fit(X, Y, batch_size=4, optimizer="adam"),
            "step": lambda net: net.step(X, Y, 0.1)}[method]
    assert_rejected(net, call, ValueError,
                    re.escape(f"{'step' if method == 'step' else 'training'}: weights[0] holds "
                              "NaN or inf (set by hand?)"))


def test_save_refuses_parameters_that_load_would_refuse(tmp_path):
    # load refuses a file whose parameters hold NaN or inf: save must not write one
    net = trained()
    net.biases[1][0] = np.inf
    with pytest.raises(ValueError, match=re.escape("save: biases[1] holds NaN or inf")):
        net.save(tmp_path / "nan.npz")
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------------------------------------
# Callbacks that misbehave
# ------------------------------------------------------------------------------------------------
class Boom(Exception):
    pass


@pytest.mark.parametrize("fail_after", [0, 1])
@pytest.mark.parametrize("exc", [Boom, KeyError, StopIteration])
def test_a_callback_that_raises_leaves_the_network_after_its_epoch(fail_after, exc):
    # an exception from the callback leaves the network as after the last complete epoch: the
    # one the callback saw, exactly as a run of that many epochs
    def callback(epoch, history):
        if epoch == fail_after:
            raise exc("from the callback")

    net, reference = trained(), trained()
    with pytest.raises(exc):
        net.fit(X, Y, **{**FIT, "epochs": 4}, callback=callback)
    reference.fit(X, Y, **{**FIT, "epochs": fail_after + 1})
    assert_array_equal(net._theta, reference._theta)
    assert_array_equal(net._opt.state, reference._opt.state)
    assert net._opt.steps == reference._opt.steps
    assert net.rng.bit_generator.state == reference.rng.bit_generator.state
    assert net.history.loss == reference.history.loss


@pytest.mark.parametrize("value", [0, 0.0, "", [], None, np.int64(0)],
                         ids=["0", "0.0", "empty string", "empty list", "None", "np.int64(0)"])
def test_only_false_stops_training_other_falsy_returns_go_on(value):
    h = fresh().fit(X, Y, **{**FIT, "epochs": 3}, callback=lambda epoch, history: value)
    assert h.epochs == 3
    assert not h.stopped_early


def test_a_callback_that_empties_the_history_and_raises_leaves_a_consistent_network():
    def callback(epoch, history):
        history.loss.clear()
        raise Boom

    net = trained()
    before = state(net)
    reference = trained()
    reference.fit(X, Y, **FIT)  # the state after the epoch the callback saw
    with pytest.raises(Boom):
        net.fit(X, Y, **{**FIT, "epochs": 3}, callback=callback)
    rolled_back = (np.array_equal(net._theta, before["theta"])
                   and np.array_equal(net._opt.state, before["opt_state"])
                   and net._opt.steps == before["steps"])
    kept = (np.array_equal(net._theta, reference._theta)
            and np.array_equal(net._opt.state, reference._opt.state)
            and net._opt.steps == reference._opt.steps)
    assert rolled_back or kept


def test_a_callback_may_save_the_network_each_epoch(tmp_path):
    net = fresh()
    snapshots = []

    def callback(epoch, history):
        net.save(tmp_path / f"epoch{epoch}.npz")
        snapshots.append(net._theta.copy())

    net.fit(X, Y, **{**FIT, "epochs": 3}, callback=callback)
    for epoch, theta in enumerate(snapshots):
        assert_array_equal(nbbp.load(tmp_path / f"epoch{epoch}.npz")._theta, theta)
    assert sorted(os.listdir(tmp_path)) == ["epoch0.npz", "epoch1.npz", "epoch2.npz"]


def test_a_deep_copy_made_in_a_callback_trains_on_its_own():
    # the copy does not inherit the claim of the training call it was made in
    net = fresh()
    copies = []

    def callback(epoch, history):
        twin = copy.deepcopy(net)
        twin.fit(X, Y, **FIT)
        copies.append(twin)

    net.fit(X, Y, **FIT, callback=callback)
    reference = fresh()
    reference.fit(X, Y, **FIT)
    reference.fit(X, Y, **FIT)
    assert_array_equal(copies[0]._theta, reference._theta)


# ------------------------------------------------------------------------------------------------
# Copies, pickles, threads
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_a_pickled_network_resumes_training_exactly(protocol):
    net = trained(batch_norm=True, sizes=[4, 6, 6, 3], residual=[(1, 2)])
    twin = pickle.loads(pickle.dumps(net, protocol=protocol))
    assert_same_state(twin, {**state(net), "history": twin.history})
    net.partial_fit(X, Y, batch_size=4, optimizer="adam")
    twin.partial_fit(X, Y, batch_size=4, optimizer="adam")
    assert_array_equal(twin._theta, net._theta)
    assert_array_equal(twin._stats, net._stats)
    assert twin._opt.steps == net._opt.steps


def test_two_networks_trained_in_two_threads_equal_serial_runs():
    serial = [fresh(seed=s) for s in (1, 2)]
    for net in serial:
        net.fit(X, Y, **{**FIT, "epochs": 20})
    threaded = [fresh(seed=s) for s in (1, 2)]
    errors = []

    def train(net):
        try:
            net.fit(X, Y, **{**FIT, "epochs": 20})
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=train, args=(net,)) for net in threaded]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    assert not any(t.is_alive() for t in threads)
    for a, b in zip(threaded, serial):
        assert_array_equal(a._theta, b._theta)


# ------------------------------------------------------------------------------------------------
# save: odd paths, unwritable places, special files
# ------------------------------------------------------------------------------------------------
def test_save_onto_a_directory_raises_and_leaves_it_alone(tmp_path):
    (tmp_path / "inside.txt").write_text("keep me")
    with pytest.raises(IsADirectoryError, match=re.escape(str(tmp_path))):
        trained().save(tmp_path)
    assert os.listdir(tmp_path) == ["inside.txt"]
    assert (tmp_path / "inside.txt").read_text() == "keep me"
    assert not [name for name in os.listdir(tmp_path.parent) if name.startswith(".nbbp-")]


@pytest.mark.parametrize("path", [None, 3, 1.5], ids=["None", "an int", "a float"])
def test_save_and_load_of_a_path_that_is_not_a_path_raise_type_error(path):
    with pytest.raises(TypeError, match=r"expected str, bytes or os\.PathLike"):
        trained().save(path)
    with pytest.raises(TypeError, match=r"expected str, bytes or os\.PathLike"):
        nbbp.load(path)


def test_save_into_a_pseudo_filesystem_raises_os_error():
    # /proc takes no new files, not even from root
    with pytest.raises(OSError, match="/proc/"):
        trained().save("/proc/nbbp-model.npz")
    assert not os.path.exists("/proc/nbbp-model.npz")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder")
def test_save_into_a_read_only_folder_raises_permission_error(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(PermissionError):
            trained().save(folder / "m.npz")
        assert os.listdir(folder) == []
    finally:
        folder.chmod(0o700)


def test_save_into_a_missing_folder_names_the_path_given(tmp_path):
    path = tmp_path / "missing" / "model.npz"
    with pytest.raises(FileNotFoundError, match=re.escape(str(path))):
        trained().save(path)


def test_save_takes_a_bytes_path_as_load_does(tmp_path):
    net = trained()
    path = os.fsencode(tmp_path / "model.npz")
    net.save(path)
    assert_array_equal(nbbp.load(path)._theta, net._theta)


def test_save_onto_a_fifo_refuses_and_leaves_it_a_fifo(tmp_path):
    path = tmp_path / "pipe.npz"
    os.mkfifo(path)
    reader = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a save that writes into it won't block
    try:
        with pytest.raises((OSError, ValueError), match=re.escape(str(path))):
            trained().save(path)
    finally:
        os.close(reader)
    assert stat.S_ISFIFO(os.lstat(path).st_mode)


# ------------------------------------------------------------------------------------------------
# load: special files, links, renamed, foreign and hostile files
# ------------------------------------------------------------------------------------------------
def model_file(tmp_path, name="model.npz"):
    path = tmp_path / name
    trained().save(path)
    return path


def entries(path):
    with np.load(path, allow_pickle=False) as npz:
        return {key: npz[key] for key in npz.files}


def rewrite(path, **changes):
    arrays = entries(path)
    arrays.update(changes)
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return path


def test_load_of_a_fifo_a_folder_or_a_dangling_link_is_file_not_found(tmp_path):
    os.mkfifo(tmp_path / "pipe.npz")  # must not wait for a writer
    os.symlink(tmp_path / "nowhere.npz", tmp_path / "dangling.npz")
    for path in (tmp_path / "pipe.npz", tmp_path, tmp_path / "dangling.npz", tmp_path / "nothing"):
        with pytest.raises(FileNotFoundError, match=re.escape(repr(str(path)))):
            nbbp.load(path)


@pytest.mark.parametrize("how", ["symlink", "renamed .csv", "no suffix", "bytes path"])
def test_load_reads_a_model_by_content_not_by_name(tmp_path, how):
    net = trained()
    path = tmp_path / "model.npz"
    net.save(path)
    if how == "symlink":
        os.symlink(path, tmp_path / "link.npz")
        path = tmp_path / "link.npz"
    elif how in ("renamed .csv", "no suffix"):
        path = path.rename(tmp_path / ("model.csv" if how == "renamed .csv" else "model"))
    else:
        path = os.fsencode(path)
    loaded = nbbp.load(path)
    assert_array_equal(loaded._theta, net._theta)
    assert_array_equal(loaded._opt.state, net._opt.state)


class RunsACommand:
    """Unpickling this runs a shell command: what a pickled entry of a hostile file could do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("entry", ["optimizer_args", "theta", "sizes"])
def test_a_pickled_entry_is_refused_and_never_unpickled(tmp_path, entry):
    marker = tmp_path / "unpickled"
    path = rewrite(model_file(tmp_path), **{entry: np.array([RunsACommand(marker)], dtype=object)})
    with pytest.raises(ValueError, match=re.escape(str(path))):
        nbbp.load(path)
    assert not marker.exists()


@pytest.mark.parametrize("content", ["csv text", "gzip of a model"])
def test_a_file_that_is_not_an_archive_gets_no_advice_to_unpickle_it(tmp_path, content):
    path = tmp_path / "model.npz"
    if content == "csv text":
        path.write_text("1,2,3\n4,5,6\n")
    else:
        path.write_bytes(gzip.compress(model_file(tmp_path, "real.npz").read_bytes()))
    with pytest.raises(ValueError, match=re.escape(str(path))) as info:
        nbbp.load(path)
    assert "pickle" not in str(info.value)


def test_an_unknown_extra_entry_is_ignored(tmp_path):
    path = model_file(tmp_path)
    net = nbbp.load(path)
    rewrite(path, notes=np.array("trained on Tuesday"), extra=np.arange(5))
    assert_array_equal(nbbp.load(path)._theta, net._theta)


def test_a_zip_bomb_entry_is_not_inflated(tmp_path):
    # 64 MB of zeros deflated into an entry of about 64 KB, in an otherwise valid model
    path = model_file(tmp_path)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False,
                                                  "shape": (8 << 20,)})
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("bomb.npy", header.getvalue() + bytes(64 << 20))
    assert path.stat().st_size < 1 << 20
    tracemalloc.start()
    try:
        net = nbbp.load(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20
    assert net.sizes == tuple(SIZES)


def test_a_small_entry_that_inflates_to_megabytes_is_refused_unread(tmp_path):
    # rng_state, a JSON string of a few hundred bytes, as 32 MB of deflated text
    path = model_file(tmp_path)
    arrays = entries(path)
    arrays["rng_state"] = np.array(" " * (8 << 20))  # <U: 4 bytes a character
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for key, value in arrays.items():
            buf = io.BytesIO()
            np.save(buf, value)
            archive.writestr(key + ".npy", buf.getvalue())
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="its entry 'rng_state' holds 33,554,432 bytes; an "
                           "nbbp file's is small"):
            nbbp.load(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20


HOSTILE_ENTRIES = [
    ("optimizer_args with an unknown key", dict(optimizer_args=np.array(json.dumps(
        {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "lr": 1}))),
     "unexpected keyword argument 'lr'"),
    ("optimizer_args a JSON list", dict(optimizer_args=np.array("[1, 2]")), "must be a mapping"),
    ("optimizer_args out of range", dict(optimizer_args=np.array(json.dumps(
        {"beta1": 2.0, "beta2": 0.999, "eps": 1e-8}))), re.escape("beta1 must be in [0.0, 1.0)")),
    ("rng_state of another generator", dict(rng_state=np.array(json.dumps(
        {"bit_generator": "MT19937", "state": {"key": [0] * 624, "pos": 0}}))),
     "its rng_state is not a random generator's state"),
    ("rng_state null", dict(rng_state=np.array("null")), "its rng_state is not a random generator"),
    ("dtype float16", dict(dtype=np.array("float16")),
     "dtype must be float32 or float64; got 'float16'"),
    ("format as bytes", dict(format=np.array(b"nbbp.Network")), "is not an nbbp model file"),
    ("optimizer steps as a float", dict(optimizer_steps=np.array(3.0)),
     "optimizer step count is not an integer"),
    ("optimizer steps as a bool", dict(optimizer_steps=np.array(True)),
     "optimizer step count is not an integer"),
    ("sizes with a zero", dict(sizes=np.array([4, 0, 3])),
     "sizes are not a list of 2 or more positive"),
    ("sizes of one layer", dict(sizes=np.array([4])), "sizes are not a list of 2 or more positive"),
    ("sizes 0-d", dict(sizes=np.array(4)), "sizes are not a list of 2 or more positive"),
    pytest.param(dict(version=np.array(2.5)), "version", id="version 2.5"),
]


@pytest.mark.parametrize("changes, problem", cases(HOSTILE_ENTRIES))
def test_a_hostile_entry_is_refused_naming_the_file(tmp_path, changes, problem):
    path = rewrite(model_file(tmp_path), **changes)
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*" + problem):
        nbbp.load(path)


def test_a_model_written_on_a_big_endian_host_loads(tmp_path):
    path = model_file(tmp_path)
    net = nbbp.load(path)
    arrays = entries(path)
    # every numeric entry big-endian, as such a host writes them
    rewrite(path, **{key: a.astype(a.dtype.newbyteorder(">")) for key, a in arrays.items()
                     if a.dtype.kind in "iuf"})
    loaded = nbbp.load(path)
    assert_array_equal(loaded._theta, net._theta)
    assert_array_equal(loaded.forward(X), net.forward(X))


# ------------------------------------------------------------------------------------------------
# Command line: options out of range, odd files; one "nbbp: error:" line and an exit code
# ------------------------------------------------------------------------------------------------
@pytest.fixture
def cli_files(tmp_path):
    np.savez(tmp_path / "d.npz", X=X, y=Y)
    nbbp.Network([4, 3, 3]).save(tmp_path / "m.npz")
    np.savez(tmp_path / "obj.npz", X=np.array([[1.0, None]] * 3, dtype=object), y=np.zeros(3))
    np.savez(tmp_path / "x3d.npz", X=np.zeros((5, 2, 2)), y=np.zeros(5))
    np.savez(tmp_path / "ymis.npz", X=np.zeros((5, 2)), y=np.zeros(4))
    np.savez(tmp_path / "y0d.npz", X=np.zeros((5, 2)), y=np.array(3))
    np.savez(tmp_path / "ycx.npz", X=np.zeros((5, 2)), y=np.zeros(5, dtype=complex))
    (tmp_path / "hdr.csv").write_text("a,b,c\n")
    (tmp_path / "nul.csv").write_bytes(b"1,2,0\n3,\x00,1\n")
    (tmp_path / "one.csv").write_text("5\n6\n")
    (tmp_path / "model.csv").write_text("1,2,3\n")
    os.mkfifo(tmp_path / "pipe.npz")
    os.symlink(tmp_path / "nowhere.csv", tmp_path / "dangling.csv")
    return tmp_path


def run_cli(argv, capsys, monkeypatch):
    monkeypatch.delenv("NBBP_TRACEBACK", raising=False)
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's usage errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_error_line(err, out, message):
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("nbbp"), err
    assert "error: " in lines[0], err
    assert message in lines[0], lines[0]
    assert "Traceback" not in err + out


BAD_CLI = [
    ("train", ["--data", "{d}/d.npz", "--hidden", ""], 2,
     "expected positive whole numbers; got ''"),
    ("train", ["--data", "{d}/d.npz", "--sizes", "4,0,3"], 2, "expected positive whole numbers"),
    ("train", ["--data", "{d}/d.npz", "--hidden", "-3"], 2, "expected positive whole numbers"),
    ("train", ["--data", "{d}/d.npz", "--epochs", "1e3"], 2, "argument --epochs"),
    ("train", ["--data", "{d}/d.npz", "--batch-size", "0"], 2, "--batch-size: must be > 0; got 0"),
    ("train", ["--data", "{d}/d.npz", "--learning-rate", "nan"], 2, "--learning-rate: must be > 0"),
    ("train", ["--data", "{d}/d.npz", "--learning-rate", "1e-400"], 2,
     "--learning-rate: must be > 0"),
    ("train", ["--data", "{d}/d.npz", "--learning-rate", "inf", "--quiet"], 1,
     "learning_rate must be a finite number > 0; got inf"),
    ("train", ["--data", "{d}/d.npz", "--learning-rate", "1e300", "--quiet"], 1,
     "learning_rate=1e+300 is too large for a float32 network"),
    ("train", ["--data", "{d}/d.npz", "--learning-rate", "1e-50", "--quiet"], 1,
     "learning_rate=1e-50 is too small for a float32 network"),
    ("train", ["--data", "{d}/d.npz", "--validation-fraction", "nan", "--quiet"], 1,
     "validation_fraction must be in (0, 1); got nan"),
    ("train", ["--data", "{d}/d.npz", "--validation-fraction", "0.001", "--quiet"], 1,
     "leaves no validation or no training samples"),
    ("train", ["--data", "{d}/d.npz", "--seed", "-1", "--quiet"], 2,
     "argument --seed: must be a whole number >= 0; got -1"),
    ("train", ["--data", "{d}/d.npz", "--seed", "1.5"], 2, "argument --seed: invalid int value"),
    ("train", ["--data", "{d}/d.npz", "--hidden", "100000000000", "--quiet"], 1,
     "sizes [4, 100000000000, 3] make 800,000,000,003 parameters"),
    ("train", ["--data", "{d}/d.npz", "--sizes", "4,3,3", "--hidden", "3"], 2,
     "not allowed with argument --sizes"),
    ("train", ["--data", "{d}/d.npz", "--quiet", "--epochs", "1", "--model", "{d}"], 1,
     "Is a directory"),
    ("train", ["--data", "{d}/obj.npz"], 1,
     "not a readable .npz file (Object arrays cannot be loaded"),
    ("train", ["--data", "{d}/x3d.npz", "--quiet"], 1,
     "X must be 2-D, (n_samples, n_features); got shape (5, 2, 2)"),
    ("train", ["--data", "{d}/ymis.npz", "--quiet"], 1, "X has 5 samples but y has 4"),
    ("train", ["--data", "{d}/y0d.npz", "--quiet"], 1, "y must be 1-D, one target per sample"),
    ("train", ["--data", "{d}/ycx.npz", "--quiet"], 1,
     "y must hold numbers or text; got complex128"),
    ("train", ["--data", "{d}/hdr.csv"], 1, "hdr.csv: the file has a header and no data rows"),
    ("train", ["--data", "{d}/nul.csv"], 1,
     "nul.csv: line 2, column 2: '\\x00' holds a NUL character"),
    ("train", ["--data", "{d}/one.csv"], 1, "needs a feature column besides the target"),
    ("train", ["--data", "{d}/d.npz", "--frobnicate"], 2, "unrecognized arguments: --frobnicate"),
    ("train", ["--data", "{d}/pipe.npz"], 1, "pipe.npz: no such file"),
    ("train", ["--data", "{d}/dangling.csv"], 1, "dangling.csv: no such file"),
    ("predict", ["--model", "{d}/m.npz", "--data", "{d}/d.npz", "--out", "{d}"], 1,
     "cannot write (Is a directory)"),
    ("predict", ["--model", "{d}", "--data", "{d}/d.npz"], 1, "no such file"),
    ("predict", ["--model", "{d}/pipe.npz", "--data", "{d}/d.npz"], 1, "no such file"),
    ("predict", ["--model", "{d}/m.npz", "--data", "{d}/one.csv"], 1,
     "X has 1 features per sample; this network takes 4 (sizes[0])"),
    ("info", ["extra"], 2, "unrecognized arguments: extra"),
    pytest.param("demo", ["--seed", "-1", "--samples", "20", "--epochs", "1"], 2,
                 "argument --seed: must be a whole number >= 0; got -1",
                 id="demo --seed -1"),
]


@pytest.mark.parametrize("command, argv, code, message", [
    row if hasattr(row, "marks") else pytest.param(
        *row, id=" ".join([row[0]] + row[1]).replace("{d}/", "").replace("{d}", "FOLDER"))
    for row in BAD_CLI])
def test_bad_command_lines_end_in_one_error_line(cli_files, capsys, monkeypatch, command, argv,
                                                 code, message):
    argv = [command] + [a.format(d=cli_files) for a in argv]
    if command == "train" and "--model" not in argv:
        argv += ["--model", str(cli_files / "out.npz")]
    got, out, err = run_cli(argv, capsys, monkeypatch)
    assert got == code, err
    assert_one_error_line(err, out, message)
    if command == "train":
        assert not (cli_files / "out.npz").exists()


def test_predict_with_a_text_file_for_a_model_gives_no_advice_to_unpickle(cli_files, capsys,
                                                                        monkeypatch):
    code, out, err = run_cli(["predict", "--model", str(cli_files / "model.csv"), "--data",
                              str(cli_files / "d.npz")], capsys, monkeypatch)
    assert code == 1
    assert_one_error_line(err, out, "is not a readable nbbp model file")
    assert "pickle" not in err


# ------------------------------------------------------------------------------------------------
# scikit-learn estimators: what check_estimator does not try
# ------------------------------------------------------------------------------------------------
@pytest.fixture
def sk():
    pytest.importorskip("sklearn")
    from nbbp import MLPClassifier, MLPRegressor

    rng = np.random.default_rng(0)
    Xs = rng.normal(size=(30, 4))
    return MLPClassifier, MLPRegressor, Xs, np.arange(30) % 3


def fitted_attributes(est):
    return {k: copy.deepcopy(v) for k, v in vars(est).items()
            if k.endswith("_") and not k.startswith("_")}


def assert_same_attributes(est, before):
    after = fitted_attributes(est)
    assert sorted(after) == sorted(before)
    for key, value in before.items():
        if isinstance(value, list) and value and isinstance(value[0], np.ndarray):
            for a, b in zip(after[key], value):
                assert_array_equal(a, b, err_msg=key)
        elif isinstance(value, np.ndarray):
            assert_array_equal(after[key], value, err_msg=key)
        else:
            assert repr(after[key]) == repr(value), key


@pytest.mark.parametrize("refit, message", [
    pytest.param(lambda est, X, y: est.fit(X[:, :3], X[:, 0]), "Unknown label type",
                 id="fewer features, continuous y"),
    pytest.param(lambda est, X, y: est.fit(np.where(X > 1, np.nan, X), y), "contains NaN",
                 id="NaN X"),
    pytest.param(lambda est, X, y: est.set_params(hidden_layer_sizes=(0,)).fit(X, y),
                 "hidden_layer_sizes must be a positive int", id="bad hidden_layer_sizes"),
    pytest.param(lambda est, X, y: est.partial_fit(X, y + 1), "that are not in classes_",
                 id="partial_fit with a new class"),
])
def test_a_failed_refit_leaves_the_fitted_classifier_as_it_was(sk, refit, message):
    MLPClassifier, _, Xs, ys = sk
    est = MLPClassifier(hidden_layer_sizes=(5,), max_iter=3, random_state=0)
    with pytest.warns(Warning, match="ran max_iter=3 epochs"):  # ConvergenceWarning
        est.fit(Xs, ys)
    before, predicted = fitted_attributes(est), est.predict(Xs)
    with pytest.raises(ValueError, match=message):
        refit(est, Xs, ys)
    assert_same_attributes(est, before)
    assert_array_equal(est.predict(Xs), predicted)


def test_a_partial_fit_that_fails_in_its_last_batch_leaves_the_estimator_as_it_was(sk):
    # An epoch runs as two Network.partial_fit calls, the full batches and then the last,
    # partial one: here the last batch overflows, after the full ones were applied to the
    # network (and to Adam's state). The estimator must train on as a twin that never saw it.
    MLPClassifier, _, Xs, ys = sk
    kwargs = dict(hidden_layer_sizes=(5,), batch_size=8, shuffle=False, random_state=0)
    est, twin = MLPClassifier(**kwargs), MLPClassifier(**kwargs)
    for e in (est, twin):
        e.partial_fit(Xs, ys, classes=[0, 1, 2])
    bad = Xs.copy()
    bad[24:] = 1e200  # the last 6 of 30 samples: the second call's batch
    with pytest.raises(ValueError, match="diverged"):
        est.partial_fit(bad, ys)
    for e in (est, twin):
        e.partial_fit(Xs, ys)
    for a, b in zip(est.coefs_ + est.intercepts_, twin.coefs_ + twin.intercepts_):
        assert_array_equal(a, b)


def test_the_coefs_a_fit_returned_do_not_follow_later_training(sk):
    # np.ascontiguousarray(W.T) is a view of W when W has one row: a single-output model's
    # last coefs_ (and early stopping's best weights) followed the live network.
    _, MLPRegressor, Xs, _ = sk
    est = MLPRegressor(hidden_layer_sizes=(5,), random_state=0)
    est.partial_fit(Xs, Xs[:, 0])
    kept, value = est.coefs_[-1], est.coefs_[-1].copy()
    est.partial_fit(Xs, Xs[:, 0])
    assert not np.array_equal(est.coefs_[-1], value)  # it trained
    assert_array_equal(kept, value)


def test_early_stopping_with_validation_fraction_0_names_it(sk):
    MLPClassifier, _, Xs, ys = sk
    with pytest.raises(ValueError, match="validation_fraction"):
        MLPClassifier(hidden_layer_sizes=(5,), early_stopping=True,
                      validation_fraction=0.0).fit(Xs, ys)


def test_a_float32_regressor_refuses_targets_too_large_for_float32(sk):
    _, MLPRegressor, Xs, _ = sk
    with pytest.raises(ValueError, match=r"y .*(too large|after conversion to float32)"):
        MLPRegressor(hidden_layer_sizes=(5,), max_iter=2,
                     dtype=np.float32).fit(Xs, np.full(30, 1e300))


def test_a_fraction_alpha_is_its_float(sk):
    MLPClassifier, _, Xs, ys = sk
    kwargs = dict(hidden_layer_sizes=(5,), max_iter=2, random_state=0)
    with pytest.warns(Warning, match="ran max_iter=2 epochs"):  # ConvergenceWarning
        a = MLPClassifier(alpha=fractions.Fraction(1, 1000), **kwargs).fit(Xs, ys)
    with pytest.warns(Warning, match="ran max_iter=2 epochs"):
        b = MLPClassifier(alpha=0.001, **kwargs).fit(Xs, ys)
    assert_array_equal(a.coefs_[0], b.coefs_[0])


@pytest.mark.parametrize("params, match", [
    pytest.param(dict(hidden_layer_sizes=(10**12,)),
                 r"sizes \[4, 1000000000000, 3\] make 8,000,000,000,003 parameters",
                 id="a hidden layer of 10**12"),
    pytest.param(dict(learning_rate_init=1e300, dtype=np.float32),
                 "learning_rate=1e\\+300 is too large for a float32",
                 id="rate overflowing float32"),
    pytest.param(dict(epsilon=1e-50, dtype=np.float32), "eps=1e-50 underflows to 0 in float32",
                 id="epsilon underflowing float32"),
    pytest.param(dict(hidden_layer_sizes=np.array(5)), "hidden_layer_sizes must be a positive int",
                 id="hidden_layer_sizes 0-d"),
    pytest.param(dict(hidden_layer_sizes="5"), "hidden_layer_sizes must be a positive int",
                 id="hidden_layer_sizes a string"),
    pytest.param(dict(batch_size="AUTO"),
                 "batch_size must be 'auto' or an integer >= 1; got 'AUTO'", id="batch_size AUTO"),
    pytest.param(dict(batch_size=5.0), "batch_size must be 'auto' or an integer >= 1; got 5.0",
                 id="batch_size 5.0"),
    pytest.param(dict(max_iter=3.0), "max_iter must be an integer >= 1; got 3.0",
                 id="max_iter 3.0"),
    pytest.param(dict(n_iter_no_change=-np.inf), "n_iter_no_change must be an integer >= 1",
                 id="n_iter_no_change -inf"),
    pytest.param(dict(shuffle="yes"), "shuffle must be True or False; got 'yes'",
                 id="shuffle 'yes'"),
    pytest.param(dict(tol=np.nan), "tol must be a finite number; got nan", id="tol NaN"),
])
def test_bad_estimator_parameters_are_named_and_leave_it_unfitted(sk, params, match):
    from sklearn.exceptions import NotFittedError

    MLPClassifier, _, Xs, ys = sk
    est = MLPClassifier(**{"max_iter": 2, "random_state": 0, **params})
    with pytest.raises(ValueError, match=match):
        est.fit(Xs, ys)
    assert not [k for k in vars(est) if k.endswith("_") and not k.startswith("_")]
    with pytest.raises(NotFittedError):
        est.predict(Xs)
