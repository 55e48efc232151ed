"""ONNX export: onnxruntime's outputs equal ``forward`` (to 1e-5 relative, element by element,
in float32, 1e-12 in float64) and its labels ``predict``, over every activation and output/loss
pair, masks, layers without bias, batch normalisation and both forms of residual connection;
every model passes onnx.checker; the command line exports a model with its data contract; and
skl2onnx converts pipelines of the drop-ins to the pipelines' own predictions."""

import json
import warnings

import numpy as np
import pytest
from conftest import HIDDEN, OUTPUT_LOSS_PAIRS, write_csv
from numpy.testing import assert_array_equal

import nbbp
import nbbp.export
from nbbp import reference, tabular
from nbbp.cli import main

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

TOLERANCE = {np.float32: 1e-5, np.float64: 1e-12}


def run_onnx(model, **inputs):
    onnx.checker.check_model(model)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, inputs)


def assert_runs_like(net, model, X):
    """onnxruntime's "output" equals forward element by element, and "label" equals predict.
    Sigmoid, softmax and exp outputs agree to TOLERANCE relative to each value (their small
    values matter: probabilities). A sum, z = sum_j W_ij a_j + b_i, is only as exact as its
    terms are large, and identity, relu, leaky_relu and tanh outputs follow z: they agree to
    TOLERANCE relative to sum_j |W_ij a_j| + |b_i|. (A value below 1000 x the smallest normal
    number counts as 0.)"""
    onnx.checker.check_model(model, full_check=True)
    got = run_onnx(model, input=X)
    expected = net.forward(X)
    assert got[0].dtype == net.dtype
    assert got[0].shape == expected.shape
    scale = np.abs(expected).astype(np.float64)
    if net.output not in ("sigmoid", "softmax", "exp"):
        a_last = reference.forward(net.weights, net.biases, X.astype(np.float64),
                                   [*net.activation, net.output])[1][-2]
        b = net.biases[-1] if net.biases[-1] is not None else 0
        scale = np.maximum(scale, np.abs(a_last) @ np.abs(net.weights[-1].T) + np.abs(b))
    floor = 1000 * np.finfo(net.dtype).tiny
    error = np.abs(got[0] - expected)
    assert np.all(error <= TOLERANCE[net.dtype.type] * scale + floor), np.max(
        error / (scale + floor))
    if net.loss_name in ("cross_entropy", "log_loss"):
        assert_array_equal(got[1], net.predict(X))
    else:
        assert len(got) == 1


def trained(net, rng, epochs=2):
    """A network a few steps from its start, so batch normalisation has running statistics."""
    X = rng.normal(size=(64, net.sizes[0])).astype(net.dtype)
    if net.loss_name == "cross_entropy":
        y = rng.integers(0, net.sizes[-1], size=64)
    elif net.loss_name == "log_loss":
        y = rng.integers(0, 2, size=(64, net.sizes[-1]))
    elif net.loss_name == "poisson":
        y = rng.poisson(1.0, size=(64, net.sizes[-1])).astype(float)
    else:
        y = rng.normal(size=(64, net.sizes[-1]))
    net.fit(X, y, epochs=epochs, batch_size=16, learning_rate=0.01)
    return net


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("output, loss", OUTPUT_LOSS_PAIRS)
@pytest.mark.parametrize("hidden", HIDDEN)
def test_every_activation_and_output(rng, dtype, hidden, output, loss):
    n_out = 1 if (output, loss) == ("sigmoid", "log_loss") else 3
    net = nbbp.Network([5, 8, 6, n_out], activation=hidden, output=output, loss=loss,
                       dtype=dtype, seed=1)
    for b in net.biases:  # they start at 0
        b[...] = rng.normal(scale=0.3, size=b.shape)
    X = rng.normal(scale=3, size=(300, 5)).astype(dtype)
    # pre-activations of the output layer out to +-20, where sigmoid and softmax give 2e-9.
    # (Further out, a small output's relative error is the absolute error of z, which float32
    # rounding of a sum of terms that large puts past 1e-5 in nbbp's kernels too; the far tails
    # of the activations themselves are checked below, with z exact.)
    z = reference.forward(net.weights, net.biases, X, [*net.activation, output])[0][-1]
    net.weights[-1][...] *= 20 / np.max(np.abs(z))
    net.biases[-1][...] *= 20 / np.max(np.abs(z))
    assert_runs_like(net, net.to_onnx(), X)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_saturated_sigmoid_outputs_keep_their_labels(dtype):
    # every output tiny: onnxruntime's Sigmoid gave them all 0, and ArgMax the first class
    net = nbbp.Network([1, 3], activation=[], output="sigmoid", loss="cross_entropy",
                       dtype=dtype)
    net.weights[0][...] = 1
    net.biases[0][...] = [0, 0.5, 1]
    X = np.array([[-120], [-60], [-30], [-20], [-15], [10], [16], [17], [20], [40]], dtype=dtype)
    assert_runs_like(net, net.to_onnx(), X)
    assert list(net.predict(X[1:5])) == [2] * 4  # (at -120, float32 underflows to 0: a tie)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("output", ["sigmoid", "tanh", "exp", "softmax", "leaky_relu"])
def test_the_activations_far_out(dtype, output):
    # one layer with z = x exactly: each activation's own values from -200 to 200 (exp to its
    # overflow), element by element
    loss = "cross_entropy" if output == "softmax" else "squared_error"
    net = nbbp.Network([1, 3], activation=[], output=output, loss=loss, dtype=dtype)
    net.weights[0][...] = [[1.0], [0.37], [-2.1]]
    net.biases[0][...] = [0, 0.5, -0.25]
    limit = {"exp": 40 if dtype == np.float32 else 300}.get(output, 200)
    x = np.geomspace(1e-8, limit, 2000)
    assert_runs_like(net, net.to_onnx(), np.concatenate([-x, [0], x])[:, None].astype(dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("skip", ["activation", "identity"])
def test_masks_no_bias_batch_norm_and_residuals(rng, dtype, skip):
    masks = [(rng.random((8, 6)) < 0.6).astype(float), None, None,
             (rng.random((4, 8)) < 0.7).astype(float)]
    net = nbbp.Network([6, 8, 8, 8, 4], activation=["tanh", "relu", "leaky_relu"],
                       bias=[True, False, True, False], batch_norm=[True, False, True],
                       residual=[(1, 3)], skip=skip, masks=masks, dtype=dtype, seed=2)
    trained(net, rng, epochs=3)
    assert any(np.any(m != 0) for m in net.running_means if m is not None)
    model = net.to_onnx()
    ops = [node.op_type for node in model.graph.node]
    assert ops.count("BatchNormalization") == 2
    assert ops.count("Add") == 1
    weights = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    W1 = next(v for k, v in weights.items() if k.startswith("W1"))
    assert np.all(W1[masks[0] == 0] == 0)
    assert sorted(k.split("_")[0] for k in weights
                  if k[0] == "b" and k[1].isdigit()) == ["b1", "b3"]
    assert_runs_like(net, model, rng.normal(size=(9, 6)).astype(dtype))


def test_the_batch_is_dynamic_and_names_and_metadata_are_set(rng, tmp_path):
    net = trained(nbbp.Network([4, 5, 3], dtype=np.float32), rng)
    path = tmp_path / "m.onnx"
    model = nbbp.export.to_onnx(net, path, opset=13, input_name="features",
                                output_name="probabilities", label_name="class")
    assert onnx.load(path) == model
    assert model.opset_import[0].version == 13
    assert [i.name for i in model.graph.input] == ["features"]
    assert [o.name for o in model.graph.output] == ["probabilities", "class"]
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for n in (1, 2, 300):
        X = rng.normal(size=(n, 4)).astype(np.float32)
        probabilities, label = session.run(None, {"features": X})
        assert probabilities.shape == (n, 3)
        assert label.shape == (n,)
        assert_array_equal(label, net.predict(X))
    metadata = {p.key: p.value for p in model.metadata_props}
    assert metadata["nbbp_version"] == nbbp.__version__
    assert json.loads(metadata["nbbp_architecture"]) == {
        "sizes": [4, 5, 3], "activation": ["relu"], "output": "softmax",
        "loss": "cross_entropy", "batch_norm": [False], "residual": [], "skip": "activation",
        "dtype": "float32"}
    assert model.producer_name == "nbbp"


def test_bad_arguments_are_refused_and_write_nothing(rng, tmp_path):
    net = nbbp.Network([3, 4, 2])
    newest = onnx.defs.onnx_opset_version()
    for opset in (12, newest + 1, 17.0, True):
        with pytest.raises(ValueError, match=f"opset must be a whole number from 13 to {newest}"):
            net.to_onnx(tmp_path / "m.onnx", opset=opset)
    with pytest.raises(ValueError, match="three different, non-empty names"):
        nbbp.export.to_onnx(net, input_name="x", output_name="x")
    with pytest.raises(TypeError, match=r"exports an nbbp\.Network; got ndarray"):
        nbbp.export.to_onnx(np.zeros(3))
    net.weights[0][0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        net.to_onnx(tmp_path / "m.onnx")
    with pytest.raises(FileNotFoundError):
        nbbp.Network([3, 4, 2]).to_onnx(tmp_path / "nowhere" / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def test_the_command_line_exports_the_data_contract(iris_csv, tmp_path, capsys):
    model = tmp_path / "iris.npz"
    lines = iris_csv.read_text().splitlines()
    lines[3] = "," + lines[3].split(",", 1)[1]  # a gap: trained with --impute mean
    iris_csv.write_text("\n".join(lines) + "\n")
    assert main(["train", "--data", str(iris_csv), "--model", str(model), "--quiet",
                 "--impute", "mean"]) == 0
    assert main(["export", "--model", str(model), "--onnx", str(tmp_path / "iris.onnx")]) == 0
    assert "outputs 'output', 'label'" in capsys.readouterr().out
    net, contract = tabular.load(model)
    table = tabular.read_csv(iris_csv)
    raw = np.column_stack([np.where(table.columns[f] == "", "nan", table.columns[f]).astype(float)
                           for f in contract.features])
    assert np.isnan(raw).sum() == 1
    output, label = run_onnx(onnx.load(tmp_path / "iris.onnx"), input=raw)  # float64 features
    X = contract.inputs(table)
    assert np.max(np.abs(output - net.forward(X))) <= 1e-5
    assert_array_equal(label, contract.class_names(net.predict(X)))
    metadata = {p.key: p.value for p in onnx.load(tmp_path / "iris.onnx").metadata_props}
    assert json.loads(metadata["nbbp_data_contract"])["classes"] == ["setosa", "versicolor",
                                                                     "virginica"]


def test_a_contract_standardizes_far_from_zero_features_in_float64(tmp_path, capsys, rng):
    # latitudes and longitudes: x - mean in float32 keeps 2 of their digits
    n = 300
    lat, lon = 47.6 + 0.02 * rng.normal(size=n), -122.3 + 0.02 * rng.normal(size=n)
    big = 1e7 + 3 * rng.normal(size=n)
    kind = np.array(["east", "north", "west"])[np.argmax(
        np.column_stack([lat - 47.6, lon + 122.3, (big - 1e7) / 150]), axis=1)]
    write_csv(tmp_path / "geo.csv", ["lat", "lon", "big", "kind"],
              [[repr(float(a)), repr(float(b)), repr(float(c)), k]
               for a, b, c, k in zip(lat, lon, big, kind)])
    model = tmp_path / "geo.npz"
    assert main(["train", "--data", str(tmp_path / "geo.csv"), "--model", str(model),
                 "--quiet"]) == 0
    assert main(["export", "--model", str(model), "--onnx", str(tmp_path / "geo.onnx")]) == 0
    capsys.readouterr()
    net, contract = tabular.load(model)
    X = contract.inputs(tabular.read_csv(tmp_path / "geo.csv"))
    output, label = run_onnx(onnx.load(tmp_path / "geo.onnx"),
                             input=np.column_stack([lat, lon, big]))
    assert_array_equal(label, contract.class_names(net.predict(X)))
    assert np.max(np.abs(output - net.forward(X))) <= 1e-5


def test_the_command_line_names_what_it_cannot_export(tmp_path, capsys, monkeypatch):
    nbbp.Network([3, 4, 2]).save(tmp_path / "m.npz")
    assert main(["export", "--model", str(tmp_path / "m.npz"), "--onnx",
                 str(tmp_path / "m.onnx"), "--opset", "9"]) == 1
    assert "opset must be a whole number from 13" in capsys.readouterr().err
    assert main(["export", "--model", str(tmp_path / "none.npz"), "--onnx", "x.onnx"]) == 1
    assert "none.npz: no such file" in capsys.readouterr().err
    monkeypatch.setitem(__import__("sys").modules, "onnx", None)  # as if not installed
    assert main(["export", "--model", str(tmp_path / "m.npz"), "--onnx",
                 str(tmp_path / "m.onnx")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "pip install 'nbbp[onnx]'" in err
    assert not (tmp_path / "m.onnx").exists()


# ------------------------------------------------------------------ skl2onnx and pipelines
@pytest.fixture
def skl2onnx():
    module = pytest.importorskip("skl2onnx")
    pytest.importorskip("sklearn")
    import nbbp.sklearn_onnx

    nbbp.sklearn_onnx.register()
    return module


def pipeline(estimator, X, y):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    with warnings.catch_warnings():  # a few epochs are enough for what is tested
        warnings.simplefilter("ignore", ConvergenceWarning)
        return make_pipeline(StandardScaler(), estimator).fit(X, y)


@pytest.mark.parametrize("labels", ["integers", "names", "binary names"])
def test_a_pipeline_with_the_classifier_converts(skl2onnx, labels):
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    X = X.astype(np.float32)
    if labels == "names":
        y = np.array(["setosa", "versicolor", "virginica"])[y]
    elif labels == "binary names":
        y = np.where(y == 2, "virginica", "other")
    model = pipeline(nbbp.MLPClassifier(hidden_layer_sizes=(16,), max_iter=300,
                                        random_state=0), X, y)
    onx = skl2onnx.to_onnx(model, X[:1], options={nbbp.MLPClassifier: {"zipmap": False}})
    label, probabilities = run_onnx(onx, X=X)
    assert_array_equal(label, model.predict(X))
    assert np.max(np.abs(probabilities - model.predict_proba(X))) <= 1e-5
    # skl2onnx's default ZipMap: one {class: probability} per sample
    label, dicts = run_onnx(skl2onnx.to_onnx(model, X[:1]), X=X)
    assert_array_equal(label, model.predict(X))
    assert list(dicts[0]) == list(model.classes_)


def test_the_outputs_are_scikit_learns_own_converters(skl2onnx):
    from sklearn.datasets import load_breast_cancer
    from sklearn.neural_network import MLPClassifier

    X, y = load_breast_cancer(return_X_y=True)
    X = X.astype(np.float32)
    ours = skl2onnx.to_onnx(pipeline(nbbp.MLPClassifier(hidden_layer_sizes=(8,), max_iter=50,
                                                        random_state=0), X, y), X[:1])
    theirs = skl2onnx.to_onnx(pipeline(MLPClassifier(hidden_layer_sizes=(8,), max_iter=50,
                                                     random_state=0), X, y), X[:1])
    for a, b in ((ours.graph.input, theirs.graph.input), (ours.graph.output, theirs.graph.output)):
        assert [(v.name, v.type) for v in a] == [(v.name, v.type) for v in b]


@pytest.mark.parametrize("loss", ["squared_error", "poisson"])
def test_a_pipeline_with_the_regressor_converts(skl2onnx, rng, loss):
    X = rng.normal(size=(200, 4))
    y = np.exp(0.3 * X[:, 0]) + 0.2 * X[:, 1] ** 2
    model = pipeline(nbbp.MLPRegressor(loss=loss, hidden_layer_sizes=(8,), max_iter=30,
                                       random_state=0), X, y)
    (variable,) = run_onnx(skl2onnx.to_onnx(model, X[:1]), X=X)  # DoubleTensorType: float64
    assert variable.shape == (200, 1)
    assert np.max(np.abs(variable[:, 0] - model.predict(X))) <= 1e-12 * np.max(np.abs(y))
    # two outputs: declared as two (scikit-learn's own converter declares one)
    model = pipeline(nbbp.MLPRegressor(loss=loss, hidden_layer_sizes=(8,), max_iter=30,
                                       random_state=0), X, np.column_stack([y, 2 * y]))
    onx = skl2onnx.to_onnx(model, X[:1])
    assert onx.graph.output[0].type.tensor_type.shape.dim[1].dim_value == 2
    (variable,) = run_onnx(onx, X=X)
    assert np.max(np.abs(variable - model.predict(X))) <= 1e-12 * np.max(np.abs(y))


def test_a_multilabel_classifier_is_refused_by_name(skl2onnx, rng):
    X = rng.normal(size=(60, 3))
    Y = (X[:, :2] > 0).astype(int)
    model = nbbp.MLPClassifier(hidden_layer_sizes=(4,), max_iter=5, random_state=0)
    with pytest.warns(Warning, match="ran max_iter=5 epochs"):  # ConvergenceWarning
        model.fit(X, Y)
    with pytest.raises(NotImplementedError, match=r"multilabel nbbp\.MLPClassifier"):
        skl2onnx.to_onnx(model, X[:1])

