"""The public API's type hints are there and right: mypy accepts the package, reads the hints
through the py.typed marker, and flags a call that breaks them."""

import pathlib

import pytest

api = pytest.importorskip("mypy.api")

SRC = pathlib.Path(__file__).resolve().parents[1] / "src"

USER_CODE = """
import numpy as np
import nbbp

net = nbbp.Network([2, 8, 3], activation="tanh", dtype=np.float32, seed=1)
X = np.zeros((4, 2))
history: nbbp.History = net.fit(X, [0, 1, 2, 0], epochs=2, optimizer=nbbp.Adam(beta1=0.8))
out: np.ndarray = net.forward(X)
loss: float = net.loss(X, [0, 1, 2, 0])
epochs: int = history.epochs
loaded: nbbp.Network = nbbp.load("model.npz")
reveal_type(net.predict(X))
reveal_type(net.weights)
"""


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One mypy cache for the module: numpy's stubs are read once (20 s), not per test."""
    return tmp_path_factory.mktemp("mypy_cache")


def mypy(cache, *args):
    stdout, stderr, status = api.run(["--no-error-summary", "--cache-dir", str(cache), *args])
    return stdout + stderr, status


def check_user_code(cache, tmp_path, code):
    (tmp_path / "user.py").write_text(code)
    return mypy(cache, str(tmp_path / "user.py"))


def test_the_package_type_checks(cache):
    out, status = mypy(cache, "--ignore-missing-imports", str(SRC / "nbbp"))
    assert status == 0, out


def test_user_code_sees_the_hints(cache, tmp_path, monkeypatch):
    monkeypatch.setenv("MYPYPATH", str(SRC))
    out, status = check_user_code(cache, tmp_path, USER_CODE)
    assert status == 0, out
    assert 'Revealed type is "numpy.ndarray' in out
    assert 'Revealed type is "tuple[numpy.ndarray' in out
    assert "error" not in out.replace("reveal_type", ""), out


def test_a_call_against_the_hints_is_flagged(cache, tmp_path, monkeypatch):
    monkeypatch.setenv("MYPYPATH", str(SRC))
    out, status = check_user_code(cache, tmp_path, USER_CODE.split("reveal_type")[0]
                                  + 'net.fit(X, [0], epochs="ten")\n')
    assert status == 1
    assert ('Argument "epochs" to "fit" of "Network" has incompatible type "str"; expected "int"'
            in out)
