"""The scripts of examples/, on small sizes: each one's main() returns what it measured, and the
tests hold it to what the example claims to show."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load(name):
    """examples/<name>.py as a module, without running its ``__main__`` block."""
    spec = importlib.util.spec_from_file_location(f"nbbp_example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------------------------------------
# vanishing_gradients.py
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def vanishing():
    return load("vanishing_gradients")


def test_sigmoid_gradients_vanish_and_relu_with_he_keeps_them(vanishing, capsys):
    ratios = vanishing.main(["--samples", "300"])
    out = capsys.readouterr().out
    assert set(ratios) == set(vanishing.CONFIGS)
    # Ten layers of sigmoid: the first layer gets at most 1% of the last layer's gradient
    # (measured: about 3e-7 under Xavier, 3e-6 under He).
    assert ratios["sigmoid", "xavier"] <= 1e-2
    assert ratios["sigmoid", "he"] <= 1e-2
    # relu with He and tanh with Xavier keep it within a factor of 10 (measured 0.35 and 1.4).
    assert 0.1 <= ratios["relu", "he"] <= 10
    assert 0.1 <= ratios["tanh", "xavier"] <= 10
    for (activation, init), ratio in ratios.items():
        assert f"{activation} + {init}" in out
        assert f"{ratio:9.2e}" in out


def test_sigmoid_vanishing_grows_with_depth(vanishing, capsys):
    shallow = vanishing.main(["--samples", "300", "--depth", "3"])
    deep = vanishing.main(["--samples", "300", "--depth", "10"])
    capsys.readouterr()
    assert shallow["sigmoid", "xavier"] > 100 * deep["sigmoid", "xavier"]


def test_vanishing_gradients_plot(vanishing, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    path = tmp_path / "vanishing.png"
    vanishing.main(["--samples", "100", "--depth", "4", "--width", "8", "--plot", str(path)])
    assert f"wrote {path}" in capsys.readouterr().out
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 10_000


# ------------------------------------------------------------------------------------------------
# regression.py
# ------------------------------------------------------------------------------------------------
def test_regression_fits_the_sine(capsys):
    result = load("regression").main(["--samples", "64", "--epochs", "150"])
    out = capsys.readouterr().out
    # Noise 0.1 caps R^2 on the samples near 1 - 0.01 / 0.5 = 0.98; against the noise-free sine
    # 150 epochs reach 0.99 (seed 0).
    assert result["r2_true"] > 0.97
    assert result["r2_train"] > 0.93
    assert result["loss"] < 0.02
    assert f"R^2 against sin(x) on a 501-point grid {result['r2_true']:.4f}" in out


def test_regression_untrained_is_far_from_the_sine(capsys):
    # The check above means something: one epoch leaves the fit poor.
    result = load("regression").main(["--samples", "64", "--epochs", "1"])
    capsys.readouterr()
    assert result["r2_true"] < 0.8


# ------------------------------------------------------------------------------------------------
# xor.py
# ------------------------------------------------------------------------------------------------
def test_xor_learns_the_four_points(capsys):
    result = load("xor").main([])
    out = capsys.readouterr().out
    assert result["max_error"] < 0.1
    assert result["outputs"].shape == (4,)
    assert f"max |output - target| = {result['max_error']:.4f}" in out
    for line, o in zip(["(0, 0)  target 0", "(0, 1)  target 1", "(1, 0)  target 1",
                        "(1, 1)  target 0"], result["outputs"]):
        assert f"{line}  output {o:.4f}" in out


def test_xor_untrained_is_wrong(capsys):
    result = load("xor").main(["--steps", "0"])
    capsys.readouterr()
    assert result["max_error"] > 0.1


# ------------------------------------------------------------------------------------------------
# Each runs as a script
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, args, expected", [
    ("xor", ["--steps", "50"], "max |output - target|"),
    ("regression", ["--samples", "16", "--epochs", "2"], "R^2 against sin(x)"),
    ("vanishing_gradients", ["--samples", "50", "--depth", "3", "--width", "4"], "first/last"),
])
def test_runs_as_a_script(name, args, expected):
    result = subprocess.run([sys.executable, str(EXAMPLES / f"{name}.py"), *args],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert expected in result.stdout


def test_bad_option_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        load("xor").main(["--hidden", "0"])
    assert exc.value.code == 2
    assert "--hidden >= 1" in capsys.readouterr().err
