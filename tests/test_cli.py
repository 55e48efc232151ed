"""The command line: demo, train, predict and bench do their jobs, and bad arguments or files
end in one line on stderr and a non-zero exit code, never a traceback."""

import os
import subprocess
import sys

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import nbbp
from nbbp import tabular
from nbbp.cli import main


@pytest.fixture
def data(tmp_path, rng):
    """A 3-class problem on 4 features as .npz (X, y), as .csv with a header and the label
    last, and its features alone as .csv."""
    X = rng.normal(size=(300, 4))
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64) + (X[:, 2] > 0)
    np.savez(tmp_path / "d.npz", X=X, y=y)
    with open(tmp_path / "d.csv", "w") as f:
        f.write("a,b,c,d,label\n")
        for row, label in zip(X, y):
            f.write(",".join(repr(float(v)) for v in row) + f",{label}\n")
    np.savetxt(tmp_path / "x.csv", X[:7], delimiter=",", fmt="%.17g")
    return X, y


def run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_demo_trains_and_reports(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # plain lines, checked below
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    code, out, _ = run(["demo", "--epochs", "40", "--samples", "600"], capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("nbbp demo: Network(sizes=[2, 64, 64, 3]")
    assert lines[1].startswith("epoch 1/40  loss ")
    assert lines[-2].startswith("epoch 40/40  loss ")
    accuracy = float(lines[-1].split("test accuracy ")[1].split("%")[0])
    assert accuracy > 80  # spirals: a linear model gets about a third
    assert "samples/s" in lines[-1]


def test_demo_writes_a_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    png = tmp_path / "demo.png"
    code, out, _ = run(["demo", "--epochs", "3", "--samples", "200", "--plot", str(png)], capsys)
    assert code == 0
    assert f"wrote {png}" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 10_000


def test_train_on_csv_then_predict(tmp_path, data, capsys):
    X, y = data
    model = tmp_path / "m.npz"
    code, out, _ = run(["train", "--data", str(tmp_path / "d.csv"), "--hidden", "16",
                        "--epochs", "30", "--learning-rate", "0.01", "--dtype", "float64",
                        "--model", str(model), "--quiet"], capsys)
    assert code == 0, out
    assert "sizes=[4, 16, 3]" in out
    assert "loss cross_entropy" in out
    assert f"saved {model}" in out
    net, contract = tabular.load(model)
    assert contract.features == ["a", "b", "c", "d"]
    assert contract.target == "label"
    assert contract.classes == ["0", "1", "2"]
    scaled = (X - contract.mean) / contract.scale
    assert net.score(scaled, y) > 0.85
    # x.csv has no header: its 4 columns are the model's features, in order
    code, out, _ = run(["predict", "--model", str(model), "--data", str(tmp_path / "x.csv")],
                       capsys)
    assert code == 0
    lines = out.split()
    assert lines[0] == "label"
    assert [int(v) for v in lines[1:]] == list(net.predict(scaled[:7]))
    # the same data as .npz (held-out rows, scaling and all) trains the same network
    run(["train", "--data", str(tmp_path / "d.npz"), "--hidden", "16", "--epochs", "30",
         "--learning-rate", "0.01", "--dtype", "float64", "--model", str(tmp_path / "n.npz"),
         "--quiet"], capsys)
    for W, V in zip(net.weights, nbbp.load(tmp_path / "n.npz").weights):
        assert_array_equal(W, V)


def test_predict_probabilities_to_a_file(tmp_path, data, capsys):
    X, _y = data
    model = tmp_path / "m.npz"
    assert run(["train", "--data", str(tmp_path / "d.npz"), "--sizes", "4,8,3", "--epochs", "2",
                "--model", str(model), "--quiet"], capsys)[0] == 0
    out_csv = tmp_path / "p.csv"
    code, _, err = run(["predict", "--model", str(model), "--data", str(tmp_path / "d.npz"),
                        "--proba", "--out", str(out_csv)], capsys)
    assert code == 0
    assert "wrote 300 predictions" in err
    assert out_csv.read_text().splitlines()[0] == "0,1,2"  # a column per class, named
    net, contract = tabular.load(model)
    assert_allclose(np.loadtxt(out_csv, delimiter=",", skiprows=1),
                    net.predict_proba((X - contract.mean) / contract.scale), rtol=1e-6)


def test_regression_target_by_column_number(tmp_path, rng, capsys):
    x = rng.uniform(-2, 2, size=200)
    table = np.column_stack([np.sin(x), x])  # target first, feature second
    np.savetxt(tmp_path / "r.csv", table, delimiter=",")
    code, out, _ = run(["train", "--data", str(tmp_path / "r.csv"), "--target", "0",
                        "--activation", "tanh", "--epochs", "200", "--learning-rate", "0.01",
                        "--model", str(tmp_path / "r.npz"), "--quiet"], capsys)
    assert code == 0
    assert "loss squared_error" in out
    assert "sizes=[1, 64, 1]" in out
    assert float(out.split("training R^2 ")[1].split()[0].rstrip(",")) > 0.9


BAD = [
    (["train", "--data", "{tmp}/missing.csv"], 1, "missing.csv: no such file"),
    (["train", "--data", "{tmp}/d.txt"], 1, "expected a .csv, .parquet or .npz file"),
    (["train", "--data", "{tmp}/garbage.npz"], 1, "garbage.npz: not an .npz file"),
    (["train", "--data", "{tmp}/ragged.csv"], 1, "line 3 has 2 columns; line 1 has 3"),
    (["train", "--data", "{tmp}/text.csv"], 1, "line 2, column 2: 'x' is not a number"),
    (["train", "--data", "{tmp}/nan.csv"], 1, "line 2, column 1: the value is missing"),
    (["train", "--data", "{tmp}/d.csv", "--target", "zz"], 1, "--target 'zz' is neither"),
    (["train", "--data", "{tmp}/d.csv", "--target", "9"], 1, "--target 9 is out of range"),
    (["train", "--data", "{tmp}/d.npz", "--target", "0"], 1, "--target picks a column of a .csv"),
    (["train", "--data", "{tmp}/x_only.npz"], 1, "no array 'y'"),
    (["train", "--data", "{tmp}/d.npz", "--sizes", "5,3"], 1, "the data has 4 features"),
    (["train", "--data", "{tmp}/d.npz", "--sizes", "4,2"], 1,
     "the target has 3 classes: it needs 3"),
    (["train", "--data", "{tmp}/d.npz", "--sizes", "4,x"], 2, "expected whole numbers"),
    (["train", "--data", "{tmp}/d.npz", "--epochs", "0"], 2, "--epochs: must be > 0"),
    (["train", "--data", "{tmp}/d.npz", "--validation-fraction", "2"], 1, "validation_fraction"),
    (["train", "--data", "{tmp}/d.npz", "--activation", "swish"], 2, "invalid choice: 'swish'"),
    (["train"], 2, "the following arguments are required: --data"),
    (["predict", "--model", "{tmp}/garbage.npz", "--data", "{tmp}/x.csv"], 1, "garbage.npz"),
    (["predict", "--model", "{tmp}/missing.npz", "--data", "{tmp}/x.csv"], 1, "no such file"),
    (["predict", "--model", "{tmp}/m.npz", "--data", "{tmp}/d.csv"], 1, "5 features"),
    (["frobnicate"], 2, "invalid choice: 'frobnicate'"),
    ([], 2, "the following arguments are required: COMMAND"),
    (["bench", "--workloads", "W9"], 2, "--workloads takes names among"),
    (["demo", "--samples", "2"], 1, "--samples 2 is too few"),
    # a traceback of 24 lines before: DivergenceError is a FloatingPointError
    (["train", "--data", "{tmp}/huge.npz", "--optimizer", "sgd", "--learning-rate", "10",
      "--no-standardize"], 1,
     "diverged"),
    (["train", "--data", "{tmp}/empty.npz"], 1, "its X is empty (shape (0, 4)): no samples"),
    # a latin-1 file read as UTF-8: the byte is located, and the option that reads it named
    (["train", "--data", "{tmp}/latin1.csv"], 1,
     ("latin1.csv: line 3, column 2: bytes e9 are not utf-8 text (invalid continuation byte; "
      "utf-8 is the default); --encoding names")),
    (["train", "--data", "{tmp}/d.npz", "--test-fraction", "1"], 2,
     "--test-fraction: must be in [0, 1); got 1"),
    (["train", "--data", "{tmp}/d.npz", "--impute", "median"], 2, "invalid choice: 'median'"),
    (["train", "--data", "{tmp}/d.npz", "--loss", "log_loss"], 1,
     "--loss log_loss is for two classes; the target 'y' has 3"),
    (["train", "--data", "{tmp}/words.csv", "--loss", "squared_error"], 1,
     "column 'y' holds text; regression needs numbers"),
    (["evaluate", "--model", "{tmp}/m.npz"], 2, "the following arguments are required: --data"),
    (["evaluate", "--model", "{tmp}/m.npz", "--data", "{tmp}/x_only.npz"], 1, "no array 'y'"),
    (["train", "--data", "{tmp}/d.csv", "--encoding", "klingon"], 2,
     "unknown text encoding 'klingon'"),
    (["predict", "--model", "{tmp}/m.npz", "--data", "{tmp}/x.csv", "--encoding", "base64"], 2,
     "unknown text encoding 'base64'"),
]


@pytest.mark.parametrize("argv, code, message", BAD, ids=[" ".join(a[:1] + a[2:3] + a[3:5])
                                                         for a, _, _ in BAD])
def test_bad_arguments_and_files_give_one_line(tmp_path, data, argv, code, message):
    (tmp_path / "d.txt").write_text("1,2\n")
    (tmp_path / "garbage.npz").write_text("not a zip")
    (tmp_path / "ragged.csv").write_text("1,2,3\n4,5,6\n7,8\n")
    (tmp_path / "text.csv").write_text("1,2,3\n4,x,6\n")
    (tmp_path / "nan.csv").write_text("1,2,0\nnan,5,1\n")
    (tmp_path / "words.csv").write_text("a,y\n1,up\n2,down\n")
    (tmp_path / "latin1.csv").write_bytes("a,b,y\n1,2,0\n3,caf\u00e9,1\n".encode("latin-1"))
    np.savez(tmp_path / "x_only.npz", X=np.ones((3, 4)))
    np.savez(tmp_path / "huge.npz", X=np.full((40, 4), 1e30), y=np.arange(40) % 3)
    np.savez(tmp_path / "empty.npz", X=np.zeros((0, 4)), y=np.zeros(0, np.int64))
    nbbp.Network([4, 3, 3]).save(tmp_path / "m.npz")
    result = subprocess.run([sys.executable, "-m", "nbbp", *(a.format(tmp=tmp_path) for a in argv)],
                            capture_output=True, text=True, timeout=300,
                            env={k: v for k, v in os.environ.items() if k != "NBBP_TRACEBACK"},
                            check=False)
    assert result.returncode == code, result.stderr
    # the report: one line (after the progress bar of a training that started, if any)
    lines = [line for line in result.stderr.splitlines() if line.strip() and "fit: " not in line]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("nbbp"), result.stderr
    assert "error: " in lines[0], result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.stderr + result.stdout


def test_bench_runs_the_comparison(capsys, monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", os.environ.get("XLA_FLAGS", ""))
    for peer in ("torch", "jax", "sklearn"):  # submodules too, as in test_bench.py
        for name in [peer, *(m for m in sys.modules if m.startswith(peer + "."))]:
            monkeypatch.setitem(sys.modules, name, None)
    code, out, _ = run(["bench", "--quick", "--workloads", "W1", "--repeat", "1"], capsys)
    assert code == 0
    assert "W1 tiny: sizes 64-32-10" in out
    assert "skipped: torch" in out
    nbbp_row = next(line for line in out.splitlines() if line.startswith("  nbbp "))
    assert float(nbbp_row.split()[1].replace(",", "")) > 0


def test_a_csv_with_a_byte_order_mark_keeps_its_first_row(tmp_path):
    # Excel writes UTF-8 with a byte-order mark; read as text its first cell was "\ufeff1.5",
    # not a number, so the first data row was taken for a header and dropped.
    path = tmp_path / "bom.csv"
    path.write_bytes("1.5,2,0\n3,4,1\n5,6,0\n".encode("utf-8-sig"))
    table = tabular.read_csv(path, header=None)
    assert not table.named
    assert table.header == ["0", "1", "2"]
    assert_array_equal(table.columns["0"], ["1.5", "3", "5"])
    assert_array_equal(table.columns["2"], ["0", "1", "0"])


@pytest.mark.parametrize("encoding, argv", [("utf-16", []), ("utf-32", []),
                                            ("utf-8-sig", []), ("cp1252", ["--encoding", "cp1252"]),
                                            ("latin-1", ["--encoding", "latin-1"])])
def test_a_csv_in_another_encoding_trains_as_its_utf8_twin(tmp_path, data, capsys, encoding,
                                                           argv):
    # UTF-16 and UTF-32 (Excel's "Unicode text") are told by their byte-order mark; 8-bit
    # encodings by --encoding. The header's non-ASCII name is the target.
    X, y = data
    text = "\u00e4,b,c,d,caf\u00e9\n" + "".join(",".join(repr(float(v)) for v in row)
                                           + f",{label}\n" for row, label in zip(X, y))
    (tmp_path / "utf8.csv").write_text(text, encoding="utf-8")
    (tmp_path / "other.csv").write_text(text, encoding=encoding)
    common = ["--epochs", "2", "--quiet", "--target", "caf\u00e9"]
    assert run(["train", "--data", str(tmp_path / "utf8.csv"), "--model",
                str(tmp_path / "a.npz"), *common], capsys)[0] == 0
    assert run(["train", "--data", str(tmp_path / "other.csv"), "--model",
                str(tmp_path / "b.npz"), *common, *argv], capsys)[0] == 0
    assert_array_equal(nbbp.load(tmp_path / "a.npz")._theta, nbbp.load(tmp_path / "b.npz")._theta)


def test_an_explicit_encoding_wins_over_what_looks_like_a_byte_order_mark(tmp_path):
    # a latin-1 header starting with "\u00ff\u00fe" is the bytes of UTF-16's mark
    path = tmp_path / "l1.csv"
    path.write_bytes("\u00ff\u00fe,b,y\n1,2,0\n3,4,1\n".encode("latin-1"))
    table = tabular.read_csv(path, "latin-1", header=None)
    assert table.named
    assert table.header == ["\u00ff\u00fe", "b", "y"]
    assert_array_equal(table.columns["y"], ["0", "1"])
