"""examples/deep_remedies.py on small sizes: its main() returns what it measured, and the test
holds it to what the example claims (the plain 20-layer sigmoid network's first layer gets
almost no gradient; relu with He, batch normalisation and residual connections give it far
more; the first two of them, and identity skips with tanh, learn where the plain network does
not)."""

import subprocess
import sys

import pytest
from test_examples import EXAMPLES, load

SMALL = ["--samples", "400", "--epochs", "15"]


@pytest.fixture(scope="module")
def remedies():
    return load("deep_remedies")


@pytest.fixture(scope="module")
def figures(remedies):
    return remedies.main(SMALL)


def test_every_configuration_is_reported(remedies, figures, capsys):
    remedies.main([*SMALL, "--epochs", "1"])
    out = capsys.readouterr().out
    assert list(figures) == list(remedies.CONFIGS)
    assert "20 layers, hidden width 32, 400 spiral points, 1 epochs" in out
    for name in remedies.CONFIGS:
        assert f"  {name:<11}" in out


def test_plain_sigmoid_gradients_vanish_and_the_remedies_keep_them(figures):
    # 19 sigmoid layers: about 0.25^19 ~ 4e-12 of the last layer's gradient reaches the first
    # (measured 7.7e-14, seed 0). relu + He and batch norm keep the same order of magnitude
    # (0.25 and 2.5); a skip every 2 layers takes half the sigmoid' factors off the path
    # (7.4e-8, a million-fold more).
    assert figures["plain"]["ratio"] < 1e-9
    assert figures["relu + He"]["ratio"] > 1e-2
    assert figures["batch norm"]["ratio"] > 1e-2
    assert figures["residual"]["ratio"] > 1e4 * figures["plain"]["ratio"]
    # the identity form, with no sigmoid' on the skips' path: 2.2e-3 with sigmoid, 0.83 with
    # tanh
    assert figures["identity"]["ratio"] > 1e3 * figures["residual"]["ratio"]
    assert figures["id. tanh"]["ratio"] > 0.1


def test_relu_and_batch_norm_learn_where_plain_sigmoid_does_not(figures):
    # ln 3 = 1.0986 is a uniform guess over the 3 classes: plain sigmoid stays there (1.097
    # after 15 epochs), relu + He and batch norm go below it (1.006 and 1.061).
    assert figures["plain"]["loss"] > 1.09
    assert figures["relu + He"]["loss"] < figures["plain"]["loss"] - 0.02
    assert figures["batch norm"]["loss"] < figures["plain"]["loss"] - 0.02
    assert figures["id. tanh"]["loss"] < 0.8  # 0.59


def test_plot(remedies, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    path = tmp_path / "remedies.png"
    remedies.main(["--samples", "60", "--epochs", "1", "--depth", "4", "--width", "6",
                   "--plot", str(path)])
    assert f"wrote {path}" in capsys.readouterr().out
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 10_000


@pytest.mark.parametrize("args, message", [
    (["--batch-size", "1"], "--batch-size >= 2"),
    (["--depth", "3"], "--depth >= 4"),
])
def test_bad_option_is_a_usage_error(remedies, capsys, args, message):
    with pytest.raises(SystemExit) as exc:
        remedies.main(args)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_runs_as_a_script():
    result = subprocess.run([sys.executable, str(EXAMPLES / "deep_remedies.py"), "--samples",
                             "50", "--epochs", "1", "--depth", "4", "--width", "4"],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert "first/last" in result.stdout
    assert "batch norm" in result.stdout
