"""Pictures of a training run: loss curves, gradient flow through the layers, and the decision
boundary of a 2-D classifier. Needs matplotlib (``pip install nbbp[plot]``); ``import nbbp``
does not import this module.

Every function draws on an ``ax`` it is given, or on a new ``matplotlib.figure.Figure`` that
pyplot does not manage (no GUI backend, no global current figure), and returns the Axes.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

try:
    import matplotlib
    from matplotlib.axes import Axes
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import BoundaryNorm, ListedColormap, Normalize
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import LogFormatter, MaxNLocator
except ImportError as exc:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError("nbbp.plot needs matplotlib, which is not installed: "
                      "pip install nbbp[plot]") from exc

from .history import History
from .network import Network

__all__ = [
    "confusion_matrix",
    "decision_boundary",
    "gradient_flow",
    "gradient_flow_over_epochs",
    "loss_curves",
    "residuals",
    "training_report",
]

QUANTITIES = {"grad_norm": "||dE/dW(l)||", "delta_mean": "mean |delta(l)|"}
# Line styles tell the two quantities apart when colour already encodes the epoch.
STYLES: dict[str, dict[str, Any]] = {
    "grad_norm": dict(linestyle="-", marker="o"),
    "delta_mean": dict(linestyle="--", marker="s"),
}
MAX_EPOCH_LINES = 6
MARKER_EPOCHS = 30  # up to this many epochs a loss curve shows its points


# --------------------------------------------------------------------------------- checks
def _new_axes(ax: Axes | None) -> Axes:
    if ax is None:
        return Figure().add_subplot()
    if not isinstance(ax, Axes):
        raise TypeError(f"ax must be a matplotlib Axes or None; got {type(ax).__name__}")
    return ax


def _check_history(history: History, need_layers: bool = False) -> None:
    if not isinstance(history, History):
        raise TypeError("history must be the nbbp.History that Network.fit returns; got "
                        f"{type(history).__name__}")
    if history.epochs == 0:
        raise ValueError("history has no epochs to plot: train with Network.fit or partial_fit "
                         "for at least one epoch")
    if need_layers and (len(history.grad_norm) != history.epochs
                        or len(history.delta_mean) != history.epochs):
        raise ValueError(f"history records {history.epochs} epochs of loss but "
                         f"{len(history.grad_norm)} of grad_norm and {len(history.delta_mean)} "
                         "of delta_mean; they must agree")


def _check_network(net: Network, name: str = "net") -> None:
    if not isinstance(net, Network):
        raise TypeError(f"{name} must be an nbbp.Network; got {type(net).__name__}")


def _check_quantity(quantity: str) -> None:
    if not isinstance(quantity, str) or quantity not in QUANTITIES:
        raise ValueError(f"quantity must be one of {sorted(QUANTITIES)}; got {quantity!r}")


def _epoch_indices(history: History, epoch: int | Sequence[int] | None) -> list[int]:
    """Indices into the history, from 0, in increasing order without repeats."""
    n = history.epochs
    if epoch is None:
        # The first and the last epoch and evenly spaced ones between: enough to see a trend
        # without a tangle of lines.
        spread = np.linspace(0, n - 1, min(n, MAX_EPOCH_LINES)).round().astype(int)
        return sorted(set(spread.tolist()))
    items = [epoch] if isinstance(epoch, numbers.Integral) else epoch
    if isinstance(items, np.ndarray) and items.ndim == 1:
        items = items.tolist()
    if isinstance(items, (str, bytes)) or not isinstance(items, Sequence) or len(items) == 0:
        raise TypeError("epoch must be None, an int or a non-empty sequence of ints; got "
                        f"{epoch!r}")
    out = set()
    for item in items:
        if isinstance(item, bool) or not isinstance(item, numbers.Integral):
            raise TypeError(f"epoch must be None, an int or a sequence of ints; got {epoch!r}")
        e = int(item)
        if not -n <= e < n:
            raise ValueError(f"epoch {e} is out of range: the history has {n} epochs "
                             f"(indices 0 to {n - 1}, or -{n} to -1 from the end)")
        out.add(e % n)
    return sorted(out)


class _PlainLogFormatter(LogFormatter):
    """LogFormatter's choice of which ticks to label, written as plain numbers ("0.06", "1e-05")
    rather than "6x10^-2": a loss that moves within one decade gets labelled minor ticks, and
    those read badly in scientific notation."""

    def __call__(self, x, pos=None):
        return f"{x:g}" if super().__call__(x, pos) else ""


def _log_y(ax: Axes, nonpositive: str = "clip") -> None:
    ax.set_yscale("log", nonpositive=nonpositive)
    ax.yaxis.set_major_formatter(_PlainLogFormatter())
    ax.yaxis.set_minor_formatter(_PlainLogFormatter(labelOnlyBase=False,
                                                    minor_thresholds=(1, 0.4)))


def _integer_epochs(axis) -> None:
    axis.set_major_locator(MaxNLocator(integer=True))


def _integer_ticks(ax: Axes, n: int) -> None:
    """Tick every layer while there are few enough to read."""
    if n <= 20:
        ax.set_xticks(np.arange(1, n + 1))


# --------------------------------------------------------------------------------- plots
def loss_curves(history: History, ax: Axes | None = None) -> Axes:
    """Training loss and, when the run validated, validation loss per epoch.

    Parameters
    ----------
    history : History
        The record returned by ``Network.fit`` (or ``net.history``).
    ax : matplotlib.axes.Axes or None
        Where to draw; None draws on a new Figure.

    Returns
    -------
    matplotlib.axes.Axes
        With one line "training loss" (x: epochs 1..n, y: ``history.loss``), one line
        "validation loss" when ``history.val_loss`` is recorded, and a dotted vertical line at
        the epoch whose weights early stopping kept. The y-axis is logarithmic when every loss
        is positive.

    Raises
    ------
    TypeError
        ``history`` is not a History, or ``ax`` not an Axes.
    ValueError
        The history has no epochs.
    """
    _check_history(history)
    ax = _new_axes(ax)
    epochs = np.arange(1, history.epochs + 1)
    marker = "o" if history.epochs <= MARKER_EPOCHS else None
    loss = np.asarray(history.loss, dtype=float)
    ax.plot(epochs, loss, marker=marker, markersize=3, label="training loss")
    values = [loss]
    if history.val_loss:
        val_loss = np.asarray(history.val_loss, dtype=float)
        ax.plot(epochs[:len(val_loss)], val_loss, marker=marker, markersize=3,
                label="validation loss")
        values.append(val_loss)
    if history.best_epoch is not None:
        ax.axvline(history.best_epoch + 1, color="0.4", linestyle=":",
                   label=f"best epoch ({history.best_epoch + 1})")
    every = np.concatenate(values)
    finite = every[np.isfinite(every)]
    if finite.size and np.all(finite > 0):
        _log_y(ax)
    _integer_epochs(ax.xaxis)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss E")
    ax.set_title("Loss")
    ax.legend()
    return ax


def gradient_flow(history: History, ax: Axes | None = None,
                  epoch: int | Sequence[int] | None = None,
                  quantities: Sequence[str] = ("grad_norm", "delta_mean"),
                  cmap: str = "viridis") -> Axes:
    """Per-layer gradient norm and mean |delta| against depth: the picture of vanishing (or
    exploding) gradients.

    Layer l = 1 is the first hidden layer and l = L the output layer: ``||dE/dW(l)||`` is the
    norm of the gradient of ``net.weights[l - 1]``, and ``mean |delta(l)|`` the mean error
    signal of the neurons that weight matrix feeds. With sigmoid hidden layers both fall by
    orders of magnitude from right (output) to left (input).

    Parameters
    ----------
    history : History
        The record returned by ``Network.fit``; each epoch holds ``grad_norm`` and
        ``delta_mean`` per layer.
    ax : matplotlib.axes.Axes or None
        Where to draw; None draws on a new Figure.
    epoch : int, sequence of int, or None
        Which epochs to draw, as indices into the history (0 the first, -1 the last). None
        draws the first, the last, and evenly spaced epochs between, at most 6. Labels count
        epochs from 1, as ``fit(verbose=True)`` does.
    quantities : sequence of str, default ("grad_norm", "delta_mean")
        Which of "grad_norm" (solid, circles) and "delta_mean" (dashed, squares) to draw.
    cmap : str, default "viridis"
        Colour map for the epochs when several are drawn (with a colour bar).

    Returns
    -------
    matplotlib.axes.Axes
        One line per epoch and quantity, labelled like "||dE/dW(l)||, epoch 3", with x the
        layers 1..L and y the recorded values; a logarithmic y-axis (a value of exactly 0
        leaves a gap in its line).

    Raises
    ------
    TypeError
        Wrong type for history, ax or epoch.
    ValueError
        Empty history, an epoch out of range, or an unknown quantity.
    """
    _check_history(history, need_layers=True)
    if isinstance(quantities, str):
        quantities = (quantities,)
    if len(quantities) == 0:
        raise ValueError(f"quantities must name at least one of {sorted(QUANTITIES)}")
    for quantity in quantities:
        _check_quantity(quantity)
    chosen = _epoch_indices(history, epoch)
    ax = _new_axes(ax)
    n_layers = len(history.grad_norm[0])
    layers = np.arange(1, n_layers + 1)
    norm = Normalize(1, max(history.epochs, 2))
    colours = matplotlib.colormaps[cmap]
    any_positive = False
    for e in chosen:
        colour = colours(norm(e + 1)) if len(chosen) > 1 else "C0"
        for quantity in quantities:
            values = np.asarray(getattr(history, quantity)[e], dtype=float)
            any_positive |= bool(np.any(values > 0))
            ax.plot(layers, values, color=colour, label=f"{QUANTITIES[quantity]}, epoch {e + 1}",
                    **STYLES[quantity])
    if any_positive:
        _log_y(ax, "mask")
    if len(chosen) > 1:
        # Epochs by colour bar, quantities by line style: a legend per line would be unreadable.
        mappable = ScalarMappable(norm=norm, cmap=colours)
        _integer_epochs(ax.figure.colorbar(mappable, ax=ax, label="epoch").ax.yaxis)
        ax.legend(handles=[Line2D([], [], color="0.3", label=QUANTITIES[q], **STYLES[q])
                           for q in quantities])
    else:
        ax.legend()
    _integer_ticks(ax, n_layers)
    ax.set_xlabel("layer l (1 = first hidden, L = output)")
    ax.set_ylabel("value (log scale)" if any_positive else "value")
    ax.set_title("Gradient flow through the layers")
    return ax


def gradient_flow_over_epochs(history: History, ax: Axes | None = None,
                              quantity: str = "grad_norm", cmap: str = "plasma") -> Axes:
    """One layer's gradient norm (or mean |delta|) per epoch, one line per layer.

    Parameters
    ----------
    history : History
        The record returned by ``Network.fit``.
    ax : matplotlib.axes.Axes or None
        Where to draw; None draws on a new Figure.
    quantity : {"grad_norm", "delta_mean"}, default "grad_norm"
    cmap : str, default "plasma"
        Colour map over depth, from the first hidden layer to the output layer.

    Returns
    -------
    matplotlib.axes.Axes
        Line l (label "layer l", l = 1..L) has x the epochs 1..n and y
        ``history.<quantity>[:, l - 1]``; logarithmic y-axis where values are positive.

    Raises
    ------
    TypeError
        Wrong type for history or ax.
    ValueError
        Empty history or an unknown quantity.
    """
    _check_history(history, need_layers=True)
    _check_quantity(quantity)
    ax = _new_axes(ax)
    values = np.array(getattr(history, quantity), dtype=float)  # (epochs, n_layers)
    epochs = np.arange(1, history.epochs + 1)
    n_layers = values.shape[1]
    colours = matplotlib.colormaps[cmap]
    marker = "o" if history.epochs <= MARKER_EPOCHS else None
    for l in range(n_layers):
        ax.plot(epochs, values[:, l], color=colours(l / max(n_layers - 1, 1)), marker=marker,
                markersize=3, label=f"layer {l + 1}")
    if np.any(values > 0):
        _log_y(ax, "mask")
    _integer_epochs(ax.xaxis)
    ax.legend(fontsize="small", ncols=2 if n_layers > 6 else 1)
    ax.set_xlabel("epoch")
    ax.set_ylabel(QUANTITIES[quantity])
    ax.set_title(f"{QUANTITIES[quantity]} per layer over training")
    return ax


def _classes(net: Network) -> int:
    """Number of classes of a classifier network; ValueError for anything else."""
    if net.loss_name == "cross_entropy":
        return net.sizes[-1]
    if net.loss_name == "log_loss" and net.sizes[-1] == 1:
        return 2
    what = ("a multi-label network (log_loss with several outputs)" if net.loss_name == "log_loss"
            else f"a network with loss {net.loss_name!r}")
    raise ValueError("decision_boundary needs a classifier: loss 'cross_entropy', or 'log_loss' "
                     f"with one output; got {what}")


def _is_2d_classifier(net: Network) -> bool:
    """Whether ``decision_boundary`` can draw this network: 2 inputs and one class per sample."""
    try:
        _classes(net)
    except ValueError:
        return False
    return net.sizes[0] == 2


def decision_boundary(net: Network, X, y, ax: Axes | None = None, resolution: int = 200,
                      cmap: str | None = None) -> Axes:
    """The classes ``net.predict`` assigns over the plane, with the samples on top.

    Parameters
    ----------
    net : Network
        A classifier with 2 inputs: loss "cross_entropy", or "log_loss" with one output.
    X : array_like, shape (n_samples, 2)
    y : array_like, shape (n_samples,)
        Class labels in [0, n_classes); one-hot rows (n_samples, n_classes) are accepted too.
    ax : matplotlib.axes.Axes or None
        Where to draw; None draws on a new Figure.
    resolution : int, default 200
        Grid points per axis; the grid spans the samples with a 10% margin.
    cmap : str or None
        Colour map for the classes; None is "tab10" (up to 10 classes), "tab20" (up to 20) or
        "viridis".

    Returns
    -------
    matplotlib.axes.Axes
        With the filled contour of the predicted classes (``ax.collections[0]``) and the
        scatter of the samples coloured by label (``ax.collections[-1]``).

    Raises
    ------
    TypeError
        ``net`` is not a Network, or ``ax`` not an Axes.
    ValueError
        The network does not have 2 inputs or is not a classifier; X or y have the wrong shape,
        non-finite values or labels out of range; ``resolution`` is not an integer >= 2.
    """
    _check_network(net)
    if net.sizes[0] != 2:
        raise ValueError(f"decision_boundary needs a network with 2 inputs; got sizes[0] = "
                         f"{net.sizes[0]}")
    n_classes = _classes(net)
    if (isinstance(resolution, bool) or not isinstance(resolution, numbers.Integral)
            or resolution < 2):
        raise ValueError(f"resolution must be an integer >= 2; got {resolution!r}")
    X = np.asarray(X, dtype=float)
    if X.ndim != 2 or X.shape[1] != 2 or X.shape[0] == 0:
        raise ValueError(f"X must have shape (n_samples, 2) with n_samples >= 1; got {X.shape}")
    if not np.isfinite(X).all():
        raise ValueError("X contains NaN or inf")
    labels = _labels(y, X.shape[0], n_classes)
    ax = _new_axes(ax)

    lo, hi = X.min(axis=0), X.max(axis=0)
    margin = np.where(hi > lo, 0.1 * (hi - lo), 0.5)
    x0 = np.linspace(lo[0] - margin[0], hi[0] + margin[0], resolution)
    x1 = np.linspace(lo[1] - margin[1], hi[1] + margin[1], resolution)
    g0, g1 = np.meshgrid(x0, x1)
    predicted = np.asarray(net.predict(np.column_stack([g0.ravel(), g1.ravel()])))
    predicted = predicted.reshape(resolution, resolution)

    if cmap is None:
        cmap = "tab10" if n_classes <= 10 else "tab20" if n_classes <= 20 else "viridis"
    base = matplotlib.colormaps[cmap]
    colours = ListedColormap([base(k % base.N) for k in range(n_classes)]) \
        if isinstance(base, ListedColormap) else base.resampled(n_classes)
    # Levels between the integers, so that each class fills exactly one band.
    levels = np.arange(n_classes + 1) - 0.5
    norm = BoundaryNorm(levels, colours.N)
    ax.contourf(g0, g1, predicted, levels=levels, cmap=colours, norm=norm, alpha=0.35)
    ax.scatter(X[:, 0], X[:, 1], c=labels, cmap=colours, norm=norm, s=12, edgecolors="k",
               linewidths=0.3)
    ax.set_xlim(x0[0], x0[-1])
    ax.set_ylim(x1[0], x1[-1])
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")
    ax.set_title(f"Decision boundary ({n_classes} classes)")
    return ax


def _labels(y, n_samples: int, n_classes: int) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    elif y.ndim == 2 and y.shape[1] == n_classes and n_classes > 1:
        y = np.argmax(y, axis=1)
    if y.ndim != 1 or y.shape[0] != n_samples:
        raise ValueError(f"y must hold one label per sample, shape ({n_samples},) or one-hot "
                         f"({n_samples}, {n_classes}); got shape {y.shape}")
    if y.dtype.kind not in "biuf" or not np.isfinite(y).all():
        raise ValueError(f"y must hold class labels 0..{n_classes - 1}; got dtype {y.dtype}")
    if np.any(y != np.round(y)) or np.any(y < 0) or np.any(y >= n_classes):
        raise ValueError(f"y must hold class labels 0..{n_classes - 1}; got values from "
                         f"{y.min()} to {y.max()}")
    return y.astype(np.int64)


def confusion_matrix(confusion, classes: Sequence[str] | None = None,
                     ax: Axes | None = None) -> Axes:
    """A confusion matrix (``nbbp.metrics.classification(...).confusion``: rows the true
    class, columns the predicted one) as a grid of counts, shaded by each row's share, so that
    a small class's errors show as clearly as a large one's. ``classes`` names the rows."""
    confusion = np.asarray(confusion)
    if (confusion.ndim != 2 or confusion.shape[0] != confusion.shape[1] or confusion.size == 0
            or not np.issubdtype(confusion.dtype, np.integer) or np.any(confusion < 0)):
        raise ValueError("confusion must be a square matrix of counts >= 0; got shape "
                         f"{confusion.shape} of {confusion.dtype}")
    n = len(confusion)
    names = [str(c) for c in (range(n) if classes is None else classes)]
    if len(names) != n:
        raise ValueError(f"{len(names)} class names for a {n} x {n} confusion matrix")
    ax = _new_axes(ax)
    totals = confusion.sum(axis=1, keepdims=True)
    share = confusion / np.where(totals > 0, totals, 1)
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            ax.text(j, i, str(confusion[i, j]), ha="center", va="center",
                    color="white" if share[i, j] > 0.5 else "black")
    ax.set_xticks(range(n), names, rotation=45 if max(map(len, names)) > 3 else 0, ha="right"
                  if max(map(len, names)) > 3 else "center")
    ax.set_yticks(range(n), names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    accuracy = np.trace(confusion) / max(confusion.sum(), 1)
    ax.set_title(f"confusion matrix: accuracy {accuracy:.1%} of {confusion.sum()}")
    return ax


def residuals(y_true, y_pred, ax: Axes | None = None) -> Axes:
    """A regression's residuals, y - prediction, against the prediction, with the zero line:
    a trend or a funnel shows what the model misses."""
    y_true = np.asarray(y_true, dtype=np.float64).ravel()
    y_pred = np.asarray(y_pred, dtype=np.float64).ravel()
    if y_true.shape != y_pred.shape or y_true.size == 0:
        raise ValueError(f"y_true and y_pred need the same, non-empty size; got {y_true.size} "
                         f"and {y_pred.size}")
    ax = _new_axes(ax)
    error = y_true - y_pred
    ax.scatter(y_pred, error, s=8, alpha=0.6)
    ax.axhline(0, color="black", linewidth=1)
    ax.set_xlabel("prediction")
    ax.set_ylabel("residual (target - prediction)")
    ax.set_title(f"residuals: RMSE {np.sqrt(np.mean(error ** 2)):.4g} over {y_true.size}")
    return ax


def training_report(net: Network, history: History | None = None, X=None, y=None,
                    path: str | os.PathLike | None = None, resolution: int = 200) -> Figure:
    """One figure for a trained network: loss curves, gradient flow against depth and over
    the epochs, and the decision boundary when the network is a 2-D classifier.

    Parameters
    ----------
    net : Network
    history : History or None
        The record to plot; None takes ``net.history`` (the last fit or partial_fit).
    X, y : array_like or None
        Samples and labels for the decision boundary; drawn only when both are given and
        ``net`` is a classifier with 2 inputs.
    path : str, path-like or None
        Where to write the figure: PNG, unless the file name's suffix names another format
        matplotlib writes (".svg", ".pdf").
    resolution : int, default 200
        Grid points per axis of the decision boundary.

    Returns
    -------
    matplotlib.figure.Figure
        Not managed by pyplot: it needs no GUI and is freed when no longer referenced.

    Raises
    ------
    TypeError
        ``net`` is not a Network or ``history`` not a History.
    ValueError
        No history to plot (or one without epochs), or only one of X and y given.
    """
    _check_network(net)
    if history is None:
        history = net.history
        if history is None:
            raise ValueError("training_report: the network has no history; train it with fit "
                             "or pass history")
    _check_history(history, need_layers=True)
    if (X is None) != (y is None):
        raise ValueError("training_report needs both X and y for the decision boundary, or "
                         "neither")
    boundary = X is not None and _is_2d_classifier(net)
    n_panels = 4 if boundary else 3
    fig = Figure(figsize=(5.2 * n_panels, 4.4), layout="constrained")
    axes = fig.subplots(1, n_panels)
    loss_curves(history, axes[0])
    gradient_flow(history, axes[1])
    gradient_flow_over_epochs(history, axes[2])
    if boundary:
        decision_boundary(net, X, y, axes[3], resolution=resolution)
    fig.suptitle(f"{list(net.sizes)}, {'/'.join(sorted(set(net.activation))) or 'no hidden'} "
                 f"hidden, {net.output} output, {net.loss_name}: {history.epochs} epochs, "
                 f"final loss {history.loss[-1]:.4g}")
    if path is not None:
        fig.savefig(path, dpi=100)
    return fig
