"""nbbp.tabular: a model's data contract (feature names, target, class names, scaling and
filling fitted on the training rows), read from real tables, applied by column name, and kept
in the model file. The iris and breast-cancer tables are written from scikit-learn's bundled
data at test time."""

import re

import numpy as np
import pytest
from conftest import write_csv
from numpy.testing import assert_allclose, assert_array_equal

import nbbp
from nbbp import tabular
from nbbp.tabular import Contract, TableError, read_csv


def test_iris_class_names_and_scaling(iris_csv):
    table = read_csv(iris_csv)
    contract, X, y = Contract.fit(table, target="species")
    assert contract.features == ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    assert contract.classes == ["setosa", "versicolor", "virginica"]
    assert_array_equal(np.bincount(y), [50, 50, 50])
    assert_allclose(X.mean(axis=0), 0, atol=1e-12)
    assert_allclose(X.std(axis=0), 1, rtol=1e-12)
    assert_array_equal(contract.class_names([2, 0]), ["virginica", "setosa"])
    assert_array_equal(contract.targets(table), y)


def test_breast_cancer_numeric_classes_and_a_held_out_score(cancer_csv):
    table = read_csv(cancer_csv)
    contract, X, y = Contract.fit(table)  # the last column is the target
    assert contract.target == "diagnosis"
    assert contract.classes == ["0", "1"]
    raw = np.column_stack([table.columns[f].astype(float) for f in contract.features])
    assert raw.max() > 2000  # scales from 0.05 to 2,500,
    assert np.abs(X).max() < 15  # standardised
    rng = np.random.default_rng(0)
    test = rng.random(len(y)) < 0.2
    train_table = tabular.Table(table.header, {k: v[~test] for k, v in table.columns.items()})
    contract, X_train, y_train = Contract.fit(train_table)
    net = nbbp.Network([X.shape[1], 16, 2], seed=0)
    net.fit(X_train, y_train, epochs=60, batch_size=16, learning_rate=0.01, optimizer="adam")
    test_table = tabular.Table(table.header, {k: v[test] for k, v in table.columns.items()})
    assert net.score(contract.inputs(test_table), contract.targets(test_table)) >= 0.95


def test_inputs_by_column_name(tmp_path):
    train = read_csv(write_csv(tmp_path / "t.csv", ["a", "b", "y"], [[1, 10, "x"], [2, 20, "z"],
                                                                      [3, 60, "x"]]))
    contract, X, _ = Contract.fit(train, target="y")
    # other order, an extra column, no target: found by name
    other = read_csv(write_csv(tmp_path / "o.csv", ["extra", "b", "a"], [[0, 10, 1], [5, 60, 3]]))
    assert_allclose(contract.inputs(other), X[[0, 2]])
    missing = read_csv(write_csv(tmp_path / "m.csv", ["b", "y"], [[10, "x"]]))
    with pytest.raises(TableError, match=r"m.csv: no column 'a', which the model takes as input"):
        contract.inputs(missing)
    unknown = read_csv(write_csv(tmp_path / "u.csv", ["a", "b", "y"], [[1, 10, "x"],
                                                                       [1, 10, "w"]]))
    with pytest.raises(TableError, match=r"u.csv: line 3, column 'y': 'w' is not a class"):
        contract.targets(unknown)


def test_a_constant_column_is_not_divided_by_zero(tmp_path):
    table = read_csv(write_csv(tmp_path / "c.csv", ["a", "k", "y"], [[1, 7, 0], [2, 7, 1],
                                                                     [3, 7, 0]]))
    contract, X, _ = Contract.fit(table)
    assert np.isfinite(X).all()
    assert_array_equal(X[:, 1], 0)  # (7 - 7) / 1
    assert contract.scale[1] == 1


def test_missing_values_stop_or_are_filled_with_the_training_mean(tmp_path):
    table = read_csv(write_csv(tmp_path / "n.csv", ["a", "b", "y"], [[1, 4, 0], ["", 6, 1],
                                                                     [3, "NA", 0]]))
    with pytest.raises(TableError, match=r"n.csv: line 3, column 'a': the value is missing "
                                         r"\(a model trained with impute='mean'"):
        Contract.fit(table)
    contract, X, _ = Contract.fit(table, impute="mean", standardize=False)
    assert_allclose(X, [[1, 4], [2, 6], [3, 5]])
    assert_allclose(contract.fill, [2, 5])


def test_numeric_class_names_are_exact(tmp_path):
    # whole numbers name themselves (2 and 2.0 are one class); large ones keep every digit
    table = read_csv(write_csv(tmp_path / "k.csv", ["a", "y"],
                               [[1, 1234567], [2, 1234568], [3, "1234567.0"], [4, 7]]))
    contract, _, y = Contract.fit(table)
    assert contract.classes == ["7", "1234567", "1234568"]
    assert_array_equal(y, [1, 2, 1, 0])
    assert_array_equal(contract.targets(table), y)


def test_regression_targets(tmp_path):
    table = read_csv(write_csv(tmp_path / "r.csv", ["a", "y"], [[1, 0.5], [2, 1.5], [3, -2]]))
    contract, _, y = Contract.fit(table)
    assert contract.classes is None
    assert_allclose(y, [0.5, 1.5, -2])
    text = read_csv(write_csv(tmp_path / "s.csv", ["a", "y"], [[1, "p"], [2, "q"]]))
    with pytest.raises(TableError, match="holds text; regression needs numbers"):
        Contract.fit(text, task="regression")


@pytest.mark.parametrize("content, message", [
    (b"", "the file is empty"),
    (b"a,b,y\n", "the file has a header and no data rows"),
    (b"a,b,y\n1,2,0\n1,2\n", "line 3 has 2 columns; line 1 (the header) has 3"),
    (b"a,b,y\n1,2,0\n1,\xff\xfe,1\n", r"line 3, column 2: bytes ff are not utf-8 text"),
    (b"a,a,y\n1,2,0\n", r"line 1, column 2: the header names 'a' twice"),
    (b"a,,y\n1,2,0\n", r"line 1, column 2: the header names no column"),
])
def test_bad_files_name_the_problem(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(TableError, match=re.escape(f"bad.csv: {message}")):
        read_csv(path)


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-32"])
def test_a_byte_order_mark_says_the_encoding(tmp_path, encoding):
    path = tmp_path / "bom.csv"
    path.write_bytes("a,caf\u00e9,y\n1,2,0\n3,4,1\n".encode(encoding))
    table = read_csv(path)
    assert table.header == ["a", "caf\u00e9", "y"]
    latin = tmp_path / "latin.csv"
    latin.write_bytes("a,caf\u00e9,y\n1,2,0\n".encode("latin-1"))
    assert read_csv(latin, encoding="latin-1").header == ["a", "caf\u00e9", "y"]


def test_a_cell_that_is_not_a_number_is_named(tmp_path):
    table = read_csv(write_csv(tmp_path / "x.csv", ["a", "b", "y"], [[1, 2, 0], [1, "two", 1]]))
    with pytest.raises(TableError, match=r"x.csv: line 3, column 'b': 'two' is not a number"):
        Contract.fit(table)


def test_the_contract_travels_in_the_model_file(iris_csv, tmp_path):
    contract, X, y = Contract.fit(read_csv(iris_csv), target="species")
    net = nbbp.Network([4, 8, 3], seed=0)
    net.fit(X, y, epochs=5, batch_size=16)
    tabular.save(tmp_path / "m.npz", net, contract)
    loaded, back = tabular.load(tmp_path / "m.npz")
    assert back.classes == ["setosa", "versicolor", "virginica"]  # string class names survive
    assert back.features == contract.features
    assert back.target == "species"
    assert_array_equal(back.mean, contract.mean)
    assert_array_equal(loaded.predict(back.inputs(read_csv(iris_csv))), net.predict(X))
    plain = tmp_path / "plain.npz"
    net.save(plain)
    assert tabular.load(plain)[1] is None
    assert nbbp.load(tmp_path / "m.npz").sizes == net.sizes  # Network.load reads it too
    with pytest.raises(ValueError, match="names 4 features; the network takes 5 inputs"):
        tabular.save(tmp_path / "w.npz", nbbp.Network([5, 3]), contract)


@pytest.mark.parametrize("text, message", [
    ("not json", "not JSON"),
    ('{"features": ["a"]}', "does not have the fields of one"),
    (('{"features": [1], "target": "y", "classes": null, "mean": null, "scale": null, '
      '"fill": null}'), "not lists of text"),
    (('{"features": ["a"], "target": "y", "classes": null, "mean": [0], "scale": [0], '
      '"fill": null}'), "not a mean and a positive scale"),
    (('{"features": ["a"], "target": "y", "classes": null, "mean": [0, 1], "scale": [1], '
      '"fill": null}'), "mean is not one number per feature"),
])
def test_a_hostile_contract_is_refused(text, message):
    with pytest.raises(ValueError, match=message):
        Contract.from_json(text)
