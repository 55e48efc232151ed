"""nbbp.sklearn: scikit-learn's estimator checks, batch-for-batch equivalence with
sklearn.neural_network from identical weights, digits accuracy, and input errors."""

import contextlib
import importlib.util
import pickle
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

pytest.importorskip("sklearn")

from sklearn import neural_network
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import nbbp.sklearn
from nbbp.sklearn import MLPClassifier, MLPRegressor

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
# Plain SGD (with or without momentum) equals scikit-learn's to rounding; Adam differs by where
# epsilon goes (see the module's Notes), which moves the parameters by ~1e-5 relative.
EXACT = dict(rtol=1e-10, atol=1e-12)


def sequential_blas():
    """scikit-learn's MLP on one BLAS thread: on 2 busy cores OpenBLAS's second thread made a
    digits fit take 12 s instead of 0.3 s."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    return threadpoolctl.threadpool_limits(1)


# ------------------------------------------------------------------------------------------------
# scikit-learn's estimator checks
# ------------------------------------------------------------------------------------------------
# The checks fit on small data with default max_iter, where stopping by max_iter (and so a
# ConvergenceWarning) is expected; scikit-learn's own common tests ignore it the same way.
def expected_failures(estimator):
    """The checks that scikit-learn's own estimator fails in the same configuration, or that a
    float32 estimator fails by float32's rounding alone:

    - integer weights against repeated samples sum the same terms in another order: equal to
      about 1e-6 relative in float32, and the check's tolerance is float64's (the float64
      estimators pass it);
    - with solver="lbfgs" the classifier converges until some sigmoid outputs round to 1.0,
      which the multilabel predict_proba check refuses: scikit-learn's
      MLPClassifier(solver="lbfgs") fails it the same way (checked in
      test_sklearn_fails_the_lbfgs_check_too)."""
    if estimator.dtype == np.float32:
        return dict.fromkeys(("check_sample_weight_equivalence_on_dense_data",
                              "check_sample_weight_equivalence_on_sparse_data"),
                             "float32 rounding: equal to about 1e-6 relative, the check asks 1e-7")
    if isinstance(estimator, MLPClassifier) and estimator.solver == "lbfgs":
        return {"check_classifiers_multilabel_output_format_predict_proba":
                "scikit-learn's MLPClassifier(solver='lbfgs') fails it too"}
    return {}


def test_sklearn_fails_the_lbfgs_check_too():
    from sklearn.utils.estimator_checks import check_estimator

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(neural_network.MLPClassifier(solver="lbfgs"), on_fail=None)
    failed = {r["check_name"] for r in results if r["status"] == "failed"}
    assert "check_classifiers_multilabel_output_format_predict_proba" in failed


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@parametrize_with_checks(expected_failed_checks=expected_failures, estimators=[
    MLPClassifier(),
    MLPRegressor(),
    MLPClassifier(solver="sgd", learning_rate_init=0.1, dtype=np.float32),
    MLPRegressor(solver="sgd", learning_rate="adaptive", learning_rate_init=0.01,
                 activation="tanh", dtype=np.float32),
    MLPClassifier(solver="lbfgs"),
    MLPRegressor(solver="lbfgs", max_iter=30),
    MLPRegressor(max_iter=30),  # failed check_regressors_train before the start was sklearn's
])
def test_estimator_checks(estimator, check):
    check(estimator)


# ------------------------------------------------------------------------------------------------
# Equivalence with sklearn.neural_network from the same initial parameters
# ------------------------------------------------------------------------------------------------
N_SAMPLES = 53  # batch_size 16 leaves a partial batch of 5, with its own l2 = alpha / 5


@pytest.fixture
def data(rng):
    X = rng.normal(size=(N_SAMPLES, 5))
    return {
        "multiclass": (X, rng.integers(0, 3, N_SAMPLES)),
        "binary": (X, np.where(rng.integers(0, 2, N_SAMPLES) == 1, "yes", "no")),
        "multilabel": (X, rng.integers(0, 2, (N_SAMPLES, 3))),
        "regression": (X, rng.normal(size=N_SAMPLES)),
        "multioutput": (X, rng.normal(size=(N_SAMPLES, 3))),
        "poisson": (X, rng.poisson(np.exp(0.5 * X[:, 0])).astype(float)),
    }


def started_alike(kind, X, y, **params):
    """An nbbp and a scikit-learn estimator, each fitted for one epoch, then holding nbbp's
    parameters and best loss, with warm_start so that the next fit starts from there."""
    ours, theirs = ((MLPRegressor, neural_network.MLPRegressor) if "regression" in kind
                    or "output" in kind else (MLPClassifier, neural_network.MLPClassifier))
    params = dict(warm_start=True, shuffle=False, random_state=0, max_iter=1, **params)
    with pytest.warns(ConvergenceWarning):
        a = ours(**params).fit(X, y)
    with pytest.warns(ConvergenceWarning), sequential_blas():
        b = theirs(**params).fit(X, y)
    b.coefs_ = [c.copy() for c in a.coefs_]
    b.intercepts_ = [c.copy() for c in a.intercepts_]
    b.best_loss_ = a.best_loss_  # the stopping rule compares with it
    return a, b


def fit_both(a, b, X, y, max_iter):
    a.set_params(max_iter=max_iter)
    b.set_params(max_iter=max_iter)
    for est in (a, b):
        with (pytest.warns(ConvergenceWarning) if est.tol == 0 else contextlib.nullcontext(),
              sequential_blas()):
            est.fit(X, y)
    return np.array(a.loss_curve_[1:]), np.array(b.loss_curve_[1:])


SGD_VARIANTS = {
    "plain": dict(momentum=0.0),
    "momentum": dict(momentum=0.9, nesterovs_momentum=False),
    "nesterov": dict(momentum=0.9, nesterovs_momentum=True),
}


@pytest.mark.parametrize("kind", ["multiclass", "binary", "multilabel", "regression"])
@pytest.mark.parametrize("activation", ["identity", "logistic", "tanh", "relu"])
@pytest.mark.parametrize("variant", list(SGD_VARIANTS))
def test_sgd_matches_sklearn_batch_for_batch(data, kind, activation, variant):
    X, y = data[kind]
    a, b = started_alike(kind, X, y, hidden_layer_sizes=(7, 4), activation=activation,
                         solver="sgd", alpha=0.01, batch_size=16, learning_rate_init=0.05,
                         tol=0, **SGD_VARIANTS[variant])
    ours, theirs = fit_both(a, b, X, y, max_iter=6)
    assert len(ours) == len(theirs) == 6
    assert_allclose(ours, theirs, **EXACT)
    for got, expected in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        assert_allclose(got, expected, **EXACT)
    assert_allclose(a.predict_proba(X) if hasattr(a, "predict_proba") else a.predict(X),
                    b.predict_proba(X) if hasattr(b, "predict_proba") else b.predict(X), **EXACT)


def test_multioutput_loss_is_sklearn_mean_over_outputs(data):
    """scikit-learn averages the squared error over outputs too: without a penalty the curves
    agree to rounding; with alpha > 0 the penalty is taken at the epoch's end (Notes)."""
    X, y = data["multioutput"]
    for alpha, rtol in ((0.0, 1e-10), (0.01, 1e-3)):
        a, b = started_alike("multioutput", X, y, hidden_layer_sizes=(6,), solver="sgd",
                             alpha=alpha, batch_size=16, learning_rate_init=0.05, tol=0)
        ours, theirs = fit_both(a, b, X, y, max_iter=5)
        assert_allclose(ours, theirs, rtol=rtol)
        assert_allclose(a.predict(X), b.predict(X), **EXACT)


def fit_both_weighted(a, b, X, y, w, max_iter):
    a.set_params(max_iter=max_iter)
    b.set_params(max_iter=max_iter)
    for est in (a, b):
        with pytest.warns(ConvergenceWarning), sequential_blas():
            est.fit(X, y, sample_weight=w)
    return np.array(a.loss_curve_[1:]), np.array(b.loss_curve_[1:])


@pytest.mark.parametrize("kind", ["multiclass", "binary", "multilabel", "regression"])
@pytest.mark.parametrize("variant", ["plain", "nesterov"])
def test_sample_weight_matches_sklearn_batch_for_batch(data, rng, kind, variant):
    # scikit-learn's objective per batch: (sum w J + alpha/2 ||W||^2) / sum w; one batch of
    # weight 0 (scikit-learn's update there is 0/0 = NaN, nbbp's none): the weights here avoid it
    X, y = data[kind]
    w = rng.uniform(0.2, 3, size=len(X))
    w[:10] = 0
    a, b = started_alike(kind, X, y, hidden_layer_sizes=(7, 4), activation="tanh",
                         solver="sgd", alpha=0.01, batch_size=16, learning_rate_init=0.05,
                         tol=0, **SGD_VARIANTS[variant])
    ours, theirs = fit_both_weighted(a, b, X, y, w, max_iter=5)
    assert_allclose(ours, theirs, **EXACT)
    for got, expected in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        assert_allclose(got, expected, **EXACT)


@pytest.mark.parametrize("kind", ["multiclass", "binary", "regression", "poisson",
                                  "poisson, 2 outputs"])
@pytest.mark.parametrize("params", [
    dict(solver="sgd"),
    dict(solver="sgd", early_stopping=True, validation_fraction=0.3, n_iter_no_change=3),
    dict(solver="sgd", momentum=0.0, learning_rate="invscaling", learning_rate_init=0.3),
    dict(solver="lbfgs", activation="logistic"),
], ids=["sgd", "early-stopping", "invscaling", "lbfgs"])
@pytest.mark.parametrize("weighted", [False, True])
def test_the_same_random_state_gives_scikit_learns_fit(data, rng, kind, params, weighted):
    # The initial coefs and intercepts, the early-stopping split (which the weights follow)
    # and every epoch's shuffle are drawn as scikit-learn draws them: the whole fit is
    # scikit-learn's, to rounding.
    X, y = data[kind.split(",")[0]] if kind != "poisson, 2 outputs" else data["poisson"]
    if kind == "poisson, 2 outputs":
        y = np.c_[y, y[::-1]]
    w = rng.uniform(0.2, 3, size=len(X)) if weighted else None
    ours, theirs = ((MLPRegressor, neural_network.MLPRegressor) if kind in ("regression",
                    "poisson", "poisson, 2 outputs")
                    else (MLPClassifier, neural_network.MLPClassifier))
    both = dict(hidden_layer_sizes=(6,), batch_size=16, max_iter=15, random_state=7, **params)
    if kind.startswith("poisson"):
        both["loss"] = "poisson"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = ours(**both).fit(X, y, sample_weight=w)
        with sequential_blas():
            b = theirs(**both).fit(X, y, sample_weight=w)
    assert a.n_iter_ == b.n_iter_
    for got, expected in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        assert_allclose(got, expected, rtol=1e-8, atol=1e-10)
    if params["solver"] != "lbfgs":
        assert_allclose(a.loss_curve_, b.loss_curve_, rtol=1e-10)
    if params.get("early_stopping"):
        assert_allclose(a.validation_scores_, b.validation_scores_, rtol=1e-12)
    assert a.loss_ == pytest.approx(b.loss_, rel=1e-9)


def test_weights_of_one_are_no_weights_and_weight_zero_leaves_a_sample_out(data):
    X, y = data["multiclass"]
    params = dict(hidden_layer_sizes=(5,), solver="sgd", max_iter=5, random_state=0, tol=0,
                  shuffle=False)
    with pytest.warns(ConvergenceWarning):
        fitted = [MLPClassifier(batch_size=16, **params).fit(X, y, sample_weight=w)
                  for w in (None, np.ones(len(X)))]
    for got, expected in zip(fitted[0].coefs_, fitted[1].coefs_):
        assert_array_equal(got, expected)
    # full batch: a sample of weight 0 is a sample left out
    keep = np.arange(len(X)) % 4 != 0
    with pytest.warns(ConvergenceWarning):
        a = MLPClassifier(**params).fit(X, y, sample_weight=keep.astype(float))
    with pytest.warns(ConvergenceWarning):
        b = MLPClassifier(**params).fit(X[keep], y[keep])
    assert_allclose(a.loss_curve_, b.loss_curve_, **EXACT)
    for got, expected in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        assert_allclose(got, expected, **EXACT)


@pytest.mark.parametrize("class_weight", ["balanced", {0: 3.0, 2: 0.5}])
def test_class_weight_is_scikit_learns_compute_sample_weight(data, class_weight):
    from sklearn.utils.class_weight import compute_sample_weight

    X, y = data["multiclass"]
    s = np.linspace(0.5, 2, len(X))
    params = dict(hidden_layer_sizes=(5,), solver="sgd", batch_size=16, max_iter=4,
                  random_state=0, tol=0)
    with pytest.warns(ConvergenceWarning):
        a = MLPClassifier(class_weight=class_weight, **params).fit(X, y, sample_weight=s)
    with pytest.warns(ConvergenceWarning):
        b = MLPClassifier(**params).fit(X, y, sample_weight=s * compute_sample_weight(
            class_weight, y))
    for got, expected in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        assert_array_equal(got, expected)
    assert a.get_params()["class_weight"] == class_weight


@pytest.mark.parametrize("kwargs, y_kind, message", [
    (dict(sample_weight=-np.ones(53)), "multiclass", "Negative values in data passed to"),
    (dict(sample_weight=np.ones(52)), "multiclass", "sample_weight.shape == \\(52,\\)"),
    (dict(sample_weight=np.zeros(53)), "multiclass", "at least one non-zero number"),
])
def test_bad_sample_weight_leaves_the_estimator_unfitted(data, kwargs, y_kind, message):
    X, y = data[y_kind]
    clf = MLPClassifier((5,), max_iter=2)
    with pytest.raises(ValueError, match=message):
        clf.fit(X, y, **kwargs)
    assert not hasattr(clf, "coefs_")


def test_class_weight_refuses_multilabel(data):
    X, y = data["multilabel"]
    with pytest.raises(ValueError, match="class_weight is for one class per sample"):
        MLPClassifier((5,), class_weight="balanced").fit(X, y)


@pytest.mark.parametrize("kind", ["multiclass", "binary", "multilabel", "regression"])
@pytest.mark.parametrize("weighted", [False, True])
def test_lbfgs_matches_sklearn_from_the_same_weights(data, rng, kind, weighted):
    # Both call scipy's L-BFGS-B on the same loss and gradient: the same iterates to rounding.
    # (Not multi-output regression: there scikit-learn's loss averages over the outputs and its
    # gradient sums over them, so its line search sees another function; see the Notes.)
    X, y = data[kind]
    w = rng.uniform(0.2, 3, size=len(X)) if weighted else None
    ours, theirs = ((MLPRegressor, neural_network.MLPRegressor) if kind in ("regression",
                    "multioutput") else (MLPClassifier, neural_network.MLPClassifier))
    params = dict(hidden_layer_sizes=(6,), activation="tanh", solver="lbfgs", alpha=0.01,
                  random_state=0, warm_start=True, max_iter=1)
    with pytest.warns(ConvergenceWarning):
        a = ours(**params).fit(X, y, sample_weight=w)
    with pytest.warns(ConvergenceWarning), sequential_blas():
        b = theirs(**params).fit(X, y, sample_weight=w)
    b.coefs_ = [c.copy() for c in a.coefs_]
    b.intercepts_ = [c.copy() for c in a.intercepts_]
    for est in (a, b):
        est.set_params(max_iter=40)
        with pytest.warns(ConvergenceWarning, match="max_iter"), sequential_blas():
            est.fit(X, y, sample_weight=w)
    # 40 iterations amplify rounding: 1e-12 apart after one, up to 4e-8 in the loss after 40
    assert a.n_iter_ == b.n_iter_ == 40
    assert a.loss_ == pytest.approx(b.loss_, rel=1e-6)
    for got, expected in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
    assert not hasattr(a, "loss_curve_")
    assert not hasattr(b, "loss_curve_")


def test_lbfgs_converges_without_a_warning_and_has_no_partial_fit(data):
    X, y = data["multiclass"]
    clf = MLPClassifier((6,), solver="lbfgs", max_iter=2000, random_state=0, tol=1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clf.fit(X, y)
    assert clf.n_iter_ < 2000
    assert clf.score(X, y) > 0.7
    assert not hasattr(clf, "partial_fit")
    with pytest.raises(AttributeError, match="has no attribute 'partial_fit'"):
        clf.partial_fit(X, y)
    with pytest.warns(ConvergenceWarning, match="max_fun"):
        MLPClassifier((6,), solver="lbfgs", max_fun=5, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match="max_fun"):
        MLPClassifier((6,), solver="lbfgs", max_fun=0).fit(X, y)


@pytest.mark.parametrize("kind", ["multiclass", "regression"])
def test_adam_matches_sklearn(data, kind):
    X, y = data[kind]
    # With a negligible epsilon, where it is added does not matter: equal to rounding.
    a, b = started_alike(kind, X, y, hidden_layer_sizes=(7,), solver="adam", alpha=0.01,
                         batch_size=16, learning_rate_init=0.01, epsilon=1e-13, tol=0)
    ours, theirs = fit_both(a, b, X, y, max_iter=8)
    assert_allclose(ours, theirs, rtol=1e-9)
    # With the default epsilon, close.
    a, b = started_alike(kind, X, y, hidden_layer_sizes=(7,), solver="adam", alpha=0.01,
                         batch_size=16, learning_rate_init=0.01, tol=0)
    ours, theirs = fit_both(a, b, X, y, max_iter=8)
    assert_allclose(ours, theirs, rtol=1e-4)


@pytest.mark.parametrize("schedule", ["constant", "invscaling", "adaptive"])
def test_schedules_and_stopping_match_sklearn(data, schedule):
    """Learning-rate schedule and the tol / n_iter_no_change rule: the same losses and the same
    stopping epoch (plain SGD, where a change of rate does not meet momentum)."""
    X, y = data["multiclass"]
    a, b = started_alike("multiclass", X, y, hidden_layer_sizes=(7,), solver="sgd", momentum=0.0,
                         learning_rate=schedule, learning_rate_init=0.5, tol=1e-2,
                         n_iter_no_change=2, batch_size=16)
    ours, theirs = fit_both(a, b, X, y, max_iter=60)
    assert a.n_iter_ == b.n_iter_ < 60  # stopped by the rule, not by max_iter
    assert_allclose(ours, theirs, **EXACT)


def test_convergence_warning_at_max_iter_only(data):
    X, y = data["multiclass"]
    with pytest.warns(ConvergenceWarning, match="max_iter=3"):
        clf = MLPClassifier((5,), max_iter=3, random_state=0).fit(X, y)
    assert clf.n_iter_ == 3
    assert len(clf.loss_curve_) == 3
    # A tol that nothing beats stops after n_iter_no_change + 1 epochs, without a warning.
    clf = MLPClassifier((5,), max_iter=50, tol=1e3, n_iter_no_change=4, random_state=0).fit(X, y)
    assert clf.n_iter_ == 6


# ------------------------------------------------------------------------------------------------
# Accuracy on digits, against scikit-learn with the same hyperparameters
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return train_test_split(X, y, test_size=0.25, stratify=y, random_state=0)


@pytest.mark.parametrize("solver, learning_rate_init", [("sgd", 0.1), ("adam", 0.001)])
def test_digits_accuracy_matches_sklearn(digits, solver, learning_rate_init):
    """Mean test accuracy over three seeds within 1 point of scikit-learn's (measured: sgd
    97.93% against 97.33%, adam 97.85% against 97.33%); each run converges before max_iter."""
    X_train, X_test, y_train, y_test = digits
    scores = {}
    for name, cls in (("nbbp", MLPClassifier), ("sklearn", neural_network.MLPClassifier)):
        runs = []
        for seed in range(3):
            model = make_pipeline(StandardScaler(), cls(
                (64,), solver=solver, learning_rate_init=learning_rate_init, max_iter=300,
                random_state=seed))
            with sequential_blas():
                runs.append(model.fit(X_train, y_train).score(X_test, y_test))
        scores[name] = np.mean(runs)
    assert scores["nbbp"] >= 0.95
    assert abs(scores["nbbp"] - scores["sklearn"]) <= 0.01, scores


# ------------------------------------------------------------------------------------------------
# Behaviour
# ------------------------------------------------------------------------------------------------
def test_partial_fit_epochs_equal_fit_epochs(data):
    """partial_fit keeps Adam's state: three calls are three epochs of fit."""
    X, y = data["multiclass"]
    params = dict(hidden_layer_sizes=(6,), shuffle=False, random_state=0, batch_size=16,
                  learning_rate_init=0.01)
    with pytest.warns(ConvergenceWarning):
        fitted = MLPClassifier(max_iter=3, **params).fit(X, y)
    partial = MLPClassifier(**params)
    for _ in range(3):
        partial.partial_fit(X, y, classes=[0, 1, 2])
    assert_allclose(partial.loss_curve_, fitted.loss_curve_, **EXACT)
    for got, expected in zip(partial.coefs_, fitted.coefs_):
        assert_allclose(got, expected, **EXACT)
    assert partial.n_iter_ == 1
    assert partial.t_ == fitted.t_ == 3 * N_SAMPLES


@pytest.mark.parametrize("activation, factor", [("logistic", 2.0), ("tanh", 6.0), ("relu", 6.0)])
def test_initial_weights_are_sklearn_glorot_uniform(rng, activation, factor):
    """U(-b, b) with b = sqrt(factor / (n_in + n_out)), factor 2 for the logistic, else 6, for
    coefs and intercepts, drawn from random_state as scikit-learn draws them. One epoch at a
    learning rate of 1e-12 leaves them as drawn."""
    X, y = rng.normal(size=(10, 40)), rng.normal(size=10)
    reg = MLPRegressor(hidden_layer_sizes=(60,), activation=activation, learning_rate_init=1e-12,
                       random_state=0).partial_fit(X, y)
    draws = np.random.RandomState(0)
    for l, (n_in, n_out) in enumerate([(40, 60), (60, 1)]):
        bound = np.sqrt(factor / (n_in + n_out))
        assert_allclose(reg.coefs_[l], draws.uniform(-bound, bound, (n_in, n_out)), atol=1e-9)
        assert_allclose(reg.intercepts_[l], draws.uniform(-bound, bound, n_out), atol=1e-9)
    # a check of the check: 2400 draws reach the first layer's bound
    assert 0.98 * np.sqrt(factor / 100) < np.abs(reg.coefs_[0]).max()


def test_random_state(data):
    X, y = data["multiclass"]
    params = dict(hidden_layer_sizes=(5,), max_iter=3)

    def coefs(random_state):
        with pytest.warns(ConvergenceWarning):
            return MLPClassifier(random_state=random_state, **params).fit(X, y).coefs_[0]

    assert_array_equal(coefs(3), coefs(3))
    assert_array_equal(coefs(np.random.RandomState(3)), coefs(np.random.RandomState(3)))
    assert not np.array_equal(coefs(3), coefs(4))
    assert not np.array_equal(coefs(None), coefs(None))


def test_lazy_exports():
    import nbbp

    assert nbbp.MLPClassifier is MLPClassifier
    assert nbbp.MLPRegressor is MLPRegressor


def test_importing_nbbp_does_not_import_sklearn():
    code = "import sys, nbbp; assert 'sklearn' not in sys.modules, 'sklearn imported'"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr


def test_partial_fit_classes(data):
    X, y = data["multiclass"]
    clf = MLPClassifier((4,))
    with pytest.raises(ValueError, match="classes must be given on the first call"):
        clf.partial_fit(X, y)
    clf.partial_fit(X[y < 2], y[y < 2], classes=[0, 1, 2])  # y need not hold every class
    assert_array_equal(clf.classes_, [0, 1, 2])
    assert clf.out_activation_ == "softmax"
    assert clf.predict_proba(X).shape == (N_SAMPLES, 3)
    with pytest.raises(ValueError, match=r"not in classes_"):
        clf.partial_fit(X, y + 1)
    with pytest.raises(ValueError, match="differs from classes_"):
        clf.partial_fit(X, y, classes=[0, 1])


def test_warm_start_continues_and_coefs_are_what_predicts(data):
    X, y = data["regression"]
    with pytest.warns(ConvergenceWarning):
        reg = MLPRegressor(hidden_layer_sizes=(5,), max_iter=4, warm_start=True,
                           random_state=0).fit(X, y)
    assert [c.shape for c in reg.coefs_] == [(5, 5), (5, 1)]  # (n_in, n_out)
    with pytest.warns(ConvergenceWarning):
        reg.fit(X, y)
    assert len(reg.loss_curve_) == 8
    assert reg.n_iter_ == 4
    assert reg.t_ == 8 * N_SAMPLES
    # Predictions follow coefs_ and intercepts_, assigned or changed in place.
    reg.coefs_[-1][...] = 0
    reg.intercepts_[-1] = np.array([1.5])
    assert_allclose(reg.predict(X), np.full(N_SAMPLES, 1.5))


def test_early_stopping_keeps_the_best_epoch(data, monkeypatch):
    X, y = data["multiclass"]
    split = []

    def recording_split(*arrays, **kwargs):
        split[:] = nbbp.sklearn.__dict__["_original_split"](*arrays, **kwargs)
        return split

    monkeypatch.setitem(nbbp.sklearn.__dict__, "_original_split", nbbp.sklearn.train_test_split)
    monkeypatch.setattr(nbbp.sklearn, "train_test_split", recording_split)
    clf = MLPClassifier((8,), early_stopping=True, validation_fraction=0.3, n_iter_no_change=3,
                        learning_rate_init=0.05, max_iter=200, random_state=0).fit(X, y)
    X_val, y_val = split[1], split[5]
    scores = clf.validation_scores_
    assert clf.best_loss_ is None
    assert len(scores) == clf.n_iter_ < 200
    assert clf.best_validation_score_ == max(scores)
    assert clf.score(X_val, y_val) == clf.best_validation_score_  # the best epoch's parameters
    # Stopped n_iter_no_change + 1 epochs after the last improvement by tol.
    last_improvement = max(i for i in range(len(scores))
                           if scores[i] >= max([-np.inf, *scores[:i]]) + clf.tol)
    assert len(scores) == last_improvement + clf.n_iter_no_change + 2


def test_classifier_outputs(data):
    X, y = data["binary"]
    with pytest.warns(ConvergenceWarning):
        clf = MLPClassifier((6,), max_iter=20, random_state=0).fit(X, y)
    proba = clf.predict_proba(X)
    assert clf.out_activation_ == "logistic"
    assert clf.n_outputs_ == 1
    assert_array_equal(clf.classes_, ["no", "yes"])
    assert proba.shape == (N_SAMPLES, 2)
    assert_allclose(proba.sum(axis=1), 1.0)
    assert_array_equal(clf.predict(X), clf.classes_[np.argmax(proba, axis=1)])
    assert_allclose(clf.predict_log_proba(X), np.log(proba))

    X, Y = data["multilabel"]
    with pytest.warns(ConvergenceWarning):
        clf = MLPClassifier((6,), max_iter=20, random_state=0).fit(X, Y)
    assert clf.out_activation_ == "logistic"
    assert clf.n_outputs_ == 3
    assert_array_equal(clf.predict(X), (clf.predict_proba(X) >= 0.5).astype(int))


def test_float32(data):
    X, y = data["multiclass"]
    with pytest.warns(ConvergenceWarning):
        clf = MLPClassifier((6,), max_iter=5, dtype=np.float32, random_state=0).fit(X, y)
    assert clf.coefs_[0].dtype == np.float32
    # Outputs follow the dtype of X, as scikit-learn's, whatever the network computes in.
    assert clf.predict_proba(X).dtype == np.float64
    assert clf.predict_proba(X.astype(np.float32)).dtype == np.float32


def test_verbose_prints_every_epoch(data, capsys):
    X, y = data["regression"]
    with pytest.warns(ConvergenceWarning):
        MLPRegressor(hidden_layer_sizes=(4,), max_iter=3, verbose=True,
                     random_state=0).fit(X, y)
    lines = capsys.readouterr().out.splitlines()
    assert [re.sub(r"[\d.]+$", "L", line) for line in lines] == [
        f"Iteration {i}, loss = L" for i in (1, 2, 3)]


def test_pickle_round_trip(data):
    X, y = data["multiclass"]
    with pytest.warns(ConvergenceWarning):
        clf = MLPClassifier((6,), max_iter=5, random_state=0).fit(X, y)
    copy = pickle.loads(pickle.dumps(clf))
    assert_array_equal(copy.predict_proba(X), clf.predict_proba(X))


def test_grid_search_over_alpha_in_a_pipeline(rng):
    centers = rng.normal(scale=3.0, size=(3, 4))
    y = rng.integers(0, 3, 150)
    X = 10 * (centers[y] + rng.normal(size=(150, 4)))  # unscaled: the pipeline standardises
    search = GridSearchCV(
        make_pipeline(StandardScaler(), MLPClassifier((8,), max_iter=300, learning_rate_init=0.01,
                                                      random_state=0)),
        {"mlpclassifier__alpha": [1e-4, 1e-1]}, cv=3)
    search.fit(X, y)
    assert search.best_params_["mlpclassifier__alpha"] in (1e-4, 1e-1)
    assert len(search.cv_results_["mean_test_score"]) == 2
    assert search.best_score_ > 0.8
    assert search.score(X, y) > 0.8


# ------------------------------------------------------------------------------------------------
# Bad input
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("params, message", [
    (dict(activation="softmax"),
     r"activation must be one of \['identity', 'logistic', 'relu', 'tanh'\]"),
    (dict(solver="rmsprop"), r"solver must be one of \['adam', 'lbfgs', 'sgd'\]"),
    (dict(solver="lbfgs", max_fun=0), r"max_fun must be"),
    (dict(learning_rate="cosine"), r"learning_rate must be one of"),
    (dict(hidden_layer_sizes=(4, 0)), "hidden_layer_sizes must be"),
    (dict(batch_size=0), "batch_size must be 'auto' or an integer >= 1"),
    (dict(alpha=-1.0), r"alpha must be in \[0.0, inf\]"),
    (dict(momentum=1.0), r"momentum must be in \[0.0, 1.0\)"),
    (dict(max_iter=0), "max_iter must be an integer >= 1"),
    (dict(dtype=np.int32), "dtype must be float32 or float64"),
])
def test_bad_parameters_name_themselves(data, params, message):
    X, y = data["multiclass"]
    clf = MLPClassifier(**params)
    with pytest.raises(ValueError, match=message):
        clf.fit(X, y)
    assert not hasattr(clf, "coefs_")


def test_regressor_loss(data):
    X, y = data["regression"]
    with pytest.raises(ValueError, match="Some value\\(s\\) of y are negative which is not "
                                         "allowed for Poisson regression"):
        MLPRegressor(loss="poisson").fit(X, y)
    with pytest.raises(ValueError, match=r"loss must be one of \['poisson', 'squared_error'\]"):
        MLPRegressor(loss="huber").fit(X, y)
    with pytest.raises(ValueError, match=r"give hidden_layer_sizes=\.\.\. by name"):
        MLPRegressor((5,)).fit(X, y)  # loss is the first positional parameter, as in sklearn


def test_bad_data(data):
    X, y = data["multiclass"]
    X_nan = X.copy()
    X_nan[3, 2] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN"):
        MLPClassifier().fit(X_nan, y)
    with pytest.raises(ValueError, match="Unknown label type"):
        MLPClassifier().fit(X, y + 0.5)
    with pytest.raises(NotFittedError):
        MLPClassifier().predict(X)
    with pytest.raises(ValueError, match="early_stopping"):
        MLPRegressor(early_stopping=True).partial_fit(X, y.astype(float))
    with pytest.warns(ConvergenceWarning):
        clf = MLPClassifier((4,), max_iter=2).fit(X, y)
    with pytest.raises(ValueError, match="features"):
        clf.predict(X[:, :3])
    with pytest.raises(ValueError, match="Input X contains NaN"):
        clf.predict(X_nan)


# ------------------------------------------------------------------------------------------------
# examples/digits.py
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def digits_example():
    spec = importlib.util.spec_from_file_location("nbbp_example_digits", EXAMPLES / "digits.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_digits_example(digits_example, capsys):
    result = digits_example.main([])
    assert result["accuracy"] >= 0.95
    assert result["n_iter"] < 300
    assert f"test accuracy {result['accuracy']:.2%}" in capsys.readouterr().out


def test_digits_example_small_and_compared(digits_example, capsys):
    with pytest.warns(ConvergenceWarning), sequential_blas():
        result = digits_example.main(["--max-iter", "5", "--hidden", "16", "--learning-rate",
                                      "0.01", "--compare"])
    out = capsys.readouterr().out
    assert result["n_iter"] == result["sklearn_n_iter"] == 5
    # Five epochs already reach about 90% (measured 91.8% and 90.4%).
    assert result["accuracy"] > 0.8
    assert result["sklearn_accuracy"] > 0.8
    assert "nbbp MLPClassifier" in out
    assert "sklearn MLPClassifier" in out


def test_a_first_partial_fit_with_a_label_outside_classes_is_refused():
    # LabelBinarizer one-hots an unknown label as all zeros, which trained those samples as
    # class 0; scikit-learn raises ValueError
    from nbbp.sklearn import MLPClassifier

    X = np.random.default_rng(0).normal(size=(6, 3))
    clf = MLPClassifier(hidden_layer_sizes=(4,))
    with pytest.raises(ValueError, match=r"y has classes array\(\[7\]\) that are not in classes="):
        clf.partial_fit(X, [0, 1, 2, 7, 1, 0], classes=[0, 1, 2])
    assert not hasattr(clf, "classes_")


def test_dropout_in_the_drop_ins(data):
    X, y = data["multiclass"]
    params = dict(hidden_layer_sizes=(16, 8), solver="sgd", batch_size=16, max_iter=5,
                  random_state=0, tol=0)
    with pytest.warns(ConvergenceWarning):
        plain = MLPClassifier(**params).fit(X, y)
    with pytest.warns(ConvergenceWarning):
        zero = MLPClassifier(dropout=0.0, **params).fit(X, y)
    with pytest.warns(ConvergenceWarning):
        dropped = MLPClassifier(dropout=[0.5, 0.2], **params).fit(X, y)
    for a, b in zip(plain.coefs_, zero.coefs_):
        assert_array_equal(a, b)
    assert not np.allclose(plain.coefs_[0], dropped.coefs_[0])
    assert dropped._network.dropout == (0.5, 0.2)
    with pytest.warns(ConvergenceWarning):
        again = MLPClassifier(dropout=[0.5, 0.2], **params).fit(X, y)  # reproducible
    assert_array_equal(again.coefs_[0], dropped.coefs_[0])
    with pytest.raises(ValueError, match="dropout must be a probability"):
        MLPRegressor(dropout=1.0).fit(X, y.astype(float))
    with pytest.raises(ValueError, match="does not train with dropout"):
        MLPClassifier(solver="lbfgs", dropout=0.1).fit(X, y)


@pytest.mark.parametrize("x_dtype, expected", [(np.float32, np.float32), (np.float64, np.float64),
                                               (np.int64, np.float64)])
def test_the_data_dtype_is_kept_as_scikit_learn_keeps_it(data, x_dtype, expected):
    X, y = data["multiclass"]
    X = (X * 10).astype(x_dtype)
    params = dict(hidden_layer_sizes=(6,), max_iter=3, random_state=0)
    with pytest.warns(ConvergenceWarning):
        ours = MLPClassifier(**params).fit(X, y)
    with pytest.warns(ConvergenceWarning), sequential_blas():
        theirs = neural_network.MLPClassifier(**params).fit(X, y)
    assert ours._network.dtype == expected
    assert [c.dtype for c in ours.coefs_] == [c.dtype for c in theirs.coefs_]
    assert ours.predict_proba(X).dtype == theirs.predict_proba(X).dtype
    # partial_fit and warm starts keep the first fit's dtype
    ours.partial_fit(X.astype(np.float64), y)
    assert ours._network.dtype == expected
    assert ours.coefs_[0].dtype == expected
    # an explicit dtype is kept whatever the data's
    with pytest.warns(ConvergenceWarning):
        forced = MLPClassifier(dtype=np.float64, **params).fit(X.astype(np.float32), y)
    assert forced.coefs_[0].dtype == np.float64


@pytest.mark.parametrize("solver", ["sgd", "adam"])
@pytest.mark.parametrize("weighted", [False, True])
def test_sparse_x_trains_as_the_dense_x_does(data, rng, monkeypatch, solver, weighted):
    sparse = pytest.importorskip("scipy.sparse")
    # chunks of 2 batches of 8 (53 samples: three chunks, then the partial batch)
    monkeypatch.setattr(nbbp.sklearn, "SPARSE_CHUNK_ROWS", 16)
    X, y = data["multiclass"]
    X = np.where(rng.random(X.shape) < 0.7, 0.0, X)
    w = rng.uniform(0.5, 2, size=len(X)) if weighted else None
    params = dict(hidden_layer_sizes=(6,), solver=solver, batch_size=8, max_iter=4,
                  random_state=0, tol=0, early_stopping=True, validation_fraction=0.2)
    with pytest.warns(ConvergenceWarning):
        dense = MLPClassifier(**params).fit(X, y, sample_weight=w)
    with pytest.warns(ConvergenceWarning):
        csr = MLPClassifier(**params).fit(sparse.csr_matrix(X), y, sample_weight=w)
    for a, b in zip(dense.coefs_ + dense.intercepts_, csr.coefs_ + csr.intercepts_):
        assert_array_equal(a, b)
    assert csr.validation_scores_ == dense.validation_scores_
    assert_array_equal(csr.predict_proba(sparse.csc_matrix(X)), dense.predict_proba(X))


@pytest.mark.parametrize("weighted", [False, True])
def test_sparse_x_with_lbfgs_sums_over_chunks(data, rng, monkeypatch, weighted):
    # the loss and gradient of the whole set, summed over chunks of 16 dense rows: the dense
    # X's fit and scikit-learn's on the sparse X, to rounding
    sparse = pytest.importorskip("scipy.sparse")
    monkeypatch.setattr(nbbp.sklearn, "SPARSE_CHUNK_ROWS", 16)
    X, y = data["multiclass"]
    X = np.where(rng.random(X.shape) < 0.7, 0.0, X)
    w = rng.uniform(0.5, 2, size=len(X)) if weighted else None
    params = dict(hidden_layer_sizes=(6,), solver="lbfgs", max_iter=25, random_state=0)
    with pytest.warns(ConvergenceWarning):
        dense = MLPClassifier(**params).fit(X, y, sample_weight=w)
    with pytest.warns(ConvergenceWarning):
        csr = MLPClassifier(**params).fit(sparse.csr_matrix(X), y, sample_weight=w)
    with pytest.warns(ConvergenceWarning), sequential_blas():
        theirs = neural_network.MLPClassifier(**params).fit(sparse.csr_matrix(X), y,
                                                             sample_weight=w)
    assert csr.n_iter_ == dense.n_iter_ == theirs.n_iter_ == 25
    assert csr.loss_ == pytest.approx(dense.loss_, rel=1e-9)
    assert csr.loss_ == pytest.approx(theirs.loss_, rel=1e-9)
    for a, b, c in zip(csr.coefs_, dense.coefs_, theirs.coefs_):
        assert_allclose(a, b, rtol=1e-6, atol=1e-8)
        assert_allclose(a, c, rtol=1e-6, atol=1e-8)


def test_sparse_x_is_never_dense_as_a_whole(rng):
    # 20,000 x 2,000 at 0.1% density: 8 MB sparse, 320 MB dense. Training and prediction stay
    # far below the dense size (numpy reports its buffers to tracemalloc).
    import tracemalloc

    sparse = pytest.importorskip("scipy.sparse")
    X = sparse.random(20_000, 2_000, density=0.001, format="csr", random_state=0,
                      dtype=np.float64)
    y = rng.integers(0, 2, 20_000)
    reg = MLPClassifier(hidden_layer_sizes=(4,), solver="sgd", batch_size=200, max_iter=1,
                        random_state=0)
    tracemalloc.start()
    try:
        with pytest.warns(ConvergenceWarning):
            reg.fit(X, y)
        reg.predict(X)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 120e6, peak


def test_dropout_masks_follow_random_state(data):
    X, y = data["multiclass"]
    params = dict(hidden_layer_sizes=(16,), solver="sgd", batch_size=16, max_iter=2, tol=0,
                  dropout=0.5)
    with pytest.warns(ConvergenceWarning):
        fits = [MLPClassifier(random_state=seed, **params).fit(X, y).coefs_[1]
                for seed in (0, 0, 1)]
    assert_array_equal(fits[0], fits[1])
    # another random_state: other initial weights, and other masks
    assert not np.allclose(fits[0], fits[2])


def test_all_zero_weights_in_a_split_are_refused(data):
    X, y = data["multiclass"]
    w = np.zeros(len(X))
    w[0] = 1.0  # one sample of weight: the split leaves a side with none
    clf = MLPClassifier((5,), early_stopping=True, validation_fraction=0.5, random_state=0)
    with pytest.raises(ValueError, match=r"sample_weight is 0 for every (training|validation) "
                                         r"sample of early stopping's split"):
        clf.fit(X, y, sample_weight=w)
    assert not hasattr(clf, "coefs_")
