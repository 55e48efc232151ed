"""nbbp.plot: what each function draws (the data of its lines, its scales), the PNG it writes,
its errors for bad input, and that plain ``import nbbp`` leaves matplotlib alone."""

import subprocess
import sys

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

pytest.importorskip("matplotlib")

from matplotlib.axes import Axes
from matplotlib.figure import Figure

import nbbp
from nbbp import plot
from nbbp.datasets import spirals

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
EPOCHS = 4


@pytest.fixture(scope="module")
def trained():
    """A 2-8-8-3 classifier after 4 epochs on spirals, validated on a held-out quarter."""
    X, y = spirals(n_samples=200, seed=1)
    net = nbbp.Network([2, 8, 8, 3], activation="tanh", seed=3)
    history = net.fit(X, y, epochs=EPOCHS, batch_size=20, learning_rate=0.1,
                      validation_fraction=0.25)
    return net, history, X, y


def fake_history(n_epochs, n_layers=3, loss=None):
    """A History filled by hand: loss 1/(e+1), grad_norm[e][l] = (l+1) 10^-e, delta_mean half."""
    h = nbbp.History()
    h.loss = list(loss if loss is not None else 1.0 / np.arange(1, n_epochs + 1))
    for e in range(n_epochs):
        h.grad_norm.append((np.arange(n_layers) + 1.0) * 10.0 ** -e)
        h.delta_mean.append(0.5 * h.grad_norm[-1])
    return h


def png_size(path):
    """(width, height) from the IHDR chunk, after checking the signature."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


# ------------------------------------------------------------------------------------------------
# loss_curves
# ------------------------------------------------------------------------------------------------
def test_loss_curves_draws_training_and_validation_loss(trained):
    _, history, _, _ = trained
    ax = plot.loss_curves(history)
    assert isinstance(ax, Axes)
    assert isinstance(ax.figure, Figure)
    train, val = ax.get_lines()
    assert train.get_label() == "training loss"
    assert val.get_label() == "validation loss"
    assert_array_equal(train.get_xdata(), np.arange(1, EPOCHS + 1))
    assert_array_equal(train.get_ydata(), history.loss)
    assert_array_equal(val.get_ydata(), history.val_loss)
    assert ax.get_yscale() == "log"


def test_loss_curves_on_a_given_axes_and_linear_when_a_loss_is_zero():
    fig = Figure()
    given = fig.add_subplot()
    ax = plot.loss_curves(fake_history(3, loss=[2.0, 1.0, 0.0]), ax=given)
    assert ax is given
    (line,) = ax.get_lines()  # no validation recorded: no second line
    assert_array_equal(line.get_ydata(), [2.0, 1.0, 0.0])
    assert ax.get_yscale() == "linear"


def test_loss_curves_marks_the_epoch_early_stopping_kept():
    history = fake_history(5)
    history.val_loss = [0.9, 0.5, 0.6, 0.7, 0.8]
    history.best_epoch = 1
    ax = plot.loss_curves(history)
    marker = [line for line in ax.get_lines() if line.get_label().startswith("best epoch")]
    assert len(marker) == 1
    assert_array_equal(marker[0].get_xdata(), [2, 2])  # epochs count from 1 on the axis


# ------------------------------------------------------------------------------------------------
# gradient_flow and gradient_flow_over_epochs
# ------------------------------------------------------------------------------------------------
def test_gradient_flow_of_one_epoch(trained):
    _, history, _, _ = trained
    ax = plot.gradient_flow(history, epoch=1)
    norm, delta = ax.get_lines()
    assert_array_equal(norm.get_xdata(), [1, 2, 3])
    assert_array_equal(norm.get_ydata(), history.grad_norm[1])
    assert_array_equal(delta.get_ydata(), history.delta_mean[1])
    assert norm.get_label() == "||dE/dW(l)||, epoch 2"
    assert delta.get_label() == "mean |delta(l)|, epoch 2"
    assert ax.get_yscale() == "log"
    assert len(ax.figure.axes) == 1  # one epoch: a legend, no colour bar


def test_gradient_flow_of_several_epochs_colours_them_with_a_colour_bar(trained):
    _, history, _, _ = trained
    ax = plot.gradient_flow(history, epoch=[0, -1], quantities="grad_norm")
    first, last = ax.get_lines()
    assert_array_equal(first.get_ydata(), history.grad_norm[0])
    assert_array_equal(last.get_ydata(), history.grad_norm[EPOCHS - 1])
    assert first.get_color() != last.get_color()
    assert len(ax.figure.axes) == 2  # the colour bar
    assert ax.figure.axes[1].get_ylabel() == "epoch"


def test_gradient_flow_picks_at_most_six_epochs_first_and_last_included():
    history = fake_history(20)
    ax = plot.gradient_flow(history, quantities=["delta_mean"])
    labels = [line.get_label() for line in ax.get_lines()]
    assert len(labels) == 6
    assert labels[0].endswith("epoch 1")
    assert labels[-1].endswith("epoch 20")
    assert_allclose(ax.get_lines()[-1].get_ydata(), history.delta_mean[19])


def test_gradient_flow_masks_zero_values_on_the_log_scale():
    history = fake_history(1)
    history.grad_norm[0][0] = 0.0  # a dead first layer
    ax = plot.gradient_flow(history)
    assert ax.get_yscale() == "log"
    assert ax.get_lines()[0].get_ydata()[0] == 0.0


def test_gradient_flow_over_epochs_one_line_per_layer():
    history = fake_history(4, n_layers=3)
    ax = plot.gradient_flow_over_epochs(history)
    lines = ax.get_lines()
    assert [line.get_label() for line in lines] == ["layer 1", "layer 2", "layer 3"]
    grad_norm = np.array(history.grad_norm)
    for l, line in enumerate(lines):
        assert_array_equal(line.get_xdata(), [1, 2, 3, 4])
        assert_allclose(line.get_ydata(), grad_norm[:, l])
    ax = plot.gradient_flow_over_epochs(history, quantity="delta_mean")
    assert_allclose(ax.get_lines()[2].get_ydata(), np.array(history.delta_mean)[:, 2])


# ------------------------------------------------------------------------------------------------
# decision_boundary
# ------------------------------------------------------------------------------------------------
def test_decision_boundary_follows_the_network():
    # No hidden layer, softmax over z = (-x1, x1): class 1 exactly where x1 > 0. A grid
    # transposed or flipped would put the boundary on the wrong axis or swap the classes.
    net = nbbp.Network([2, 2], seed=0)
    net.weights[0][...] = [[-1.0, 0.0], [1.0, 0.0]]
    X = np.array([[-1.0, -1.0], [1.0, 1.0], [-0.5, 1.0], [0.5, -1.0]])
    y = np.array([0, 1, 0, 1])
    ax = plot.decision_boundary(net, X, y, resolution=41)
    contours, points = ax.collections[0], ax.collections[-1]
    assert_array_equal(contours.levels, [-0.5, 0.5, 1.5])
    step = 2.4 / 40  # the grid spans [-1.2, 1.2]: the samples plus a 10% margin
    class0 = np.concatenate(contours.allsegs[0])
    class1 = np.concatenate(contours.allsegs[1])
    assert class0[:, 0].max() <= step
    assert class1[:, 0].min() >= -step
    assert class0[:, 1].min() == pytest.approx(-1.2)
    assert class0[:, 1].max() == pytest.approx(1.2)
    assert_array_equal(points.get_offsets(), X)
    assert_array_equal(points.get_array(), y)


def test_decision_boundary_of_a_binary_log_loss_network_takes_column_labels():
    net = nbbp.Network([2, 4, 1], activation="tanh", output="sigmoid", loss="log_loss", seed=0)
    X = np.array([[0.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    ax = plot.decision_boundary(net, X, [[0], [1], [1]], resolution=10)
    assert_array_equal(ax.collections[0].levels, [-0.5, 0.5, 1.5])
    assert_array_equal(ax.collections[-1].get_array(), [0, 1, 1])


@pytest.mark.parametrize("net, message", [
    (lambda: nbbp.Network([3, 4, 2]), "2 inputs; got sizes\\[0\\] = 3"),
    (lambda: nbbp.Network([2, 4, 1], output="identity", loss="squared_error"), "classifier"),
    (lambda: nbbp.Network([2, 4, 3], output="sigmoid", loss="log_loss"), "multi-label"),
])
def test_decision_boundary_refuses_networks_it_cannot_draw(net, message):
    with pytest.raises(ValueError, match=message):
        plot.decision_boundary(net(), np.zeros((3, 2)), [0, 1, 0])


@pytest.mark.parametrize("X, y, kwargs, message", [
    (np.zeros((3, 3)), [0, 1, 0], {}, "X must have shape"),
    (np.zeros((0, 2)), [], {}, "X must have shape"),
    ([[0.0, np.nan], [1.0, 1.0]], [0, 1], {}, "NaN"),
    (np.zeros((3, 2)), [0, 1], {}, "one label per sample"),
    (np.zeros((3, 2)), [0, 1, 3], {}, "labels 0..2"),
    (np.zeros((3, 2)), [0, 0.5, 1], {}, "labels 0..2"),
    (np.zeros((3, 2)), [0, 1, 2], {"resolution": 1}, "resolution"),
])
def test_decision_boundary_refuses_bad_data(X, y, kwargs, message):
    net = nbbp.Network([2, 4, 3], seed=0)
    with pytest.raises(ValueError, match=message):
        plot.decision_boundary(net, X, y, **kwargs)


# ------------------------------------------------------------------------------------------------
# training_report
# ------------------------------------------------------------------------------------------------
def test_training_report_writes_a_png_with_the_decision_boundary(trained, tmp_path):
    net, history, X, y = trained
    path = tmp_path / "report.png"
    fig = plot.training_report(net, history, X, y, path)
    assert isinstance(fig, Figure)
    titles = [ax.get_title() for ax in fig.axes]
    assert "Loss" in titles
    assert "Gradient flow through the layers" in titles
    assert "Decision boundary (3 classes)" in titles
    width, height = png_size(path)
    assert (width, height) == tuple(np.round(fig.get_size_inches() * 100).astype(int))
    assert path.stat().st_size > 20_000  # four panels of lines and colour, not a blank image


def test_training_report_without_data_or_for_a_regressor_has_no_boundary(tmp_path):
    rng = np.random.default_rng(7)
    X = rng.normal(size=(30, 3))
    net = nbbp.Network([3, 5, 1], activation="tanh", output="identity", loss="squared_error")
    net.fit(X, X.sum(axis=1), epochs=2, batch_size=10)
    for args in [(), (X, X.sum(axis=1))]:
        fig = plot.training_report(net, None, *args, path=tmp_path / "r.png")  # net.history
        titles = [ax.get_title() for ax in fig.axes]
        assert not any(t.startswith("Decision boundary") for t in titles)
        assert "Loss" in titles
        assert png_size(tmp_path / "r.png")[0] > 0


def test_training_report_errors():
    net = nbbp.Network([2, 3, 2])
    with pytest.raises(ValueError, match="no history"):
        plot.training_report(net)
    history = fake_history(2, n_layers=2)
    with pytest.raises(ValueError, match="both X and y"):
        plot.training_report(net, history, X=np.zeros((2, 2)))
    with pytest.raises(TypeError, match=r"nbbp\.Network"):
        plot.training_report("net", history)


# ------------------------------------------------------------------------------------------------
# Bad input shared by the history plots
# ------------------------------------------------------------------------------------------------
HISTORY_PLOTS = [plot.loss_curves, plot.gradient_flow, plot.gradient_flow_over_epochs]


@pytest.mark.parametrize("draw", HISTORY_PLOTS)
def test_history_plots_refuse_an_empty_history(draw):
    with pytest.raises(ValueError, match="no epochs"):
        draw(nbbp.History())


@pytest.mark.parametrize("draw", HISTORY_PLOTS)
def test_history_plots_refuse_what_is_not_a_history(draw):
    with pytest.raises(TypeError, match=r"nbbp\.History"):
        draw({"loss": [1.0]})
    with pytest.raises(TypeError, match="matplotlib Axes"):
        draw(fake_history(2), ax="axes")


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(epoch=3), ValueError, "epoch 3 is out of range"),
    (dict(epoch=-4), ValueError, "out of range"),
    (dict(epoch="last"), TypeError, "epoch must be"),
    (dict(epoch=[]), TypeError, "epoch must be"),
    (dict(epoch=[0, 1.5]), TypeError, "epoch must be"),
    (dict(quantities=["grad"]), ValueError, "quantity must be one of"),
    (dict(quantities=[]), ValueError, "at least one"),
])
def test_gradient_flow_refuses_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        plot.gradient_flow(fake_history(3), **kwargs)


def test_gradient_flow_refuses_a_history_without_per_layer_records():
    history = fake_history(3)
    history.grad_norm = []
    with pytest.raises(ValueError, match="grad_norm"):
        plot.gradient_flow(history)


# ------------------------------------------------------------------------------------------------
# matplotlib stays optional
# ------------------------------------------------------------------------------------------------
def run_python(code):
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_import_nbbp_does_not_import_matplotlib():
    out = run_python("import sys, nbbp, nbbp.datasets\n"
                     "print(sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib'))")
    assert out == "[]"


def test_plot_without_matplotlib_names_the_extra():
    # sys.modules[name] = None makes ``import name`` raise ImportError, as if not installed.
    out = run_python("import sys\n"
                     "sys.modules['matplotlib'] = None\n"
                     "import nbbp\n"
                     "try:\n"
                     "    import nbbp.plot\n"
                     "except ImportError as exc:\n"
                     "    print(exc)\n")
    assert "pip install nbbp[plot]" in out
