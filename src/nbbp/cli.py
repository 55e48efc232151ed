"""The command line, ``nbbp`` or ``python -m nbbp``:

    nbbp demo [--epochs N] [--plot out.png]       train on built-in 2-D spirals and report
    nbbp train --data FILE.csv|FILE.npz [--sizes 4,32,3 | --hidden 32] [--epochs N] [--model out.npz]
    nbbp predict --model FILE.npz --data FILE.csv|FILE.npz [--proba] [--out FILE.csv]
    nbbp bench [--workloads W1,W2] [--threads N] [--isa avx2]
                                                  nbbp against PyTorch, JAX and scikit-learn
    nbbp info                                     the host profile, versions and threading

Data files: a ``.npz`` with arrays ``X`` (and ``y`` to train), or a ``.csv`` of numbers with an
optional header row, whose target column for ``train`` is the last one unless ``--target``
names another (``predict`` reads every column as a feature). A ``.csv`` is UTF-8 unless
it starts with a byte-order mark (UTF-8, UTF-16 or UTF-32) or ``--encoding`` names another.
Bad arguments and unreadable files end with a one-line ``nbbp: error: ...`` on stderr and exit
code 2 (usage) or 1 (data), never a traceback.
"""

import argparse
import os
import pathlib
import sys
import time
import warnings
import zipfile

import numpy as np

from ._args import ArgumentParser
from .tabular import TableError, csv_rows

OUTPUT_FOR_LOSS = {"cross_entropy": "softmax", "log_loss": "sigmoid", "squared_error": "identity"}


class CommandError(Exception):
    """A problem with the user's arguments or files, reported as one line."""


# ------------------------------------------------------------------------------------ data
def read_table(path, target=None, encoding=None):
    """(X, y) from a .npz (arrays X and y) or a .csv file; y is None when ``target`` is None and
    the file has no target (a .csv without --target, or a .npz without y). A .csv is read in
    ``encoding``, or if None as its byte-order mark says, or as UTF-8."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise CommandError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return _read_npz(path)
    if suffix == ".csv":
        return _read_csv(path, target, encoding)
    raise CommandError(f"{path}: expected a .csv or .npz file")


def _read_npz(path):
    if not zipfile.is_zipfile(path):
        raise CommandError(f"{path}: not an .npz file (not a zip archive)")
    try:
        with np.load(path, allow_pickle=False) as data:
            if "X" not in data.files:
                raise CommandError(f"{path}: no array 'X' (has {sorted(data.files)})")
            X = data["X"]
            if X.ndim == 0 or X.shape[0] == 0:
                raise CommandError(f"{path}: its X is empty (shape {X.shape}): no samples")
            return X, data["y"] if "y" in data.files else None
    except CommandError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise CommandError(f"{path}: not a readable .npz file ({error})") from None


def _read_csv(path, target, encoding=None):
    try:
        rows = csv_rows(path, encoding)
    except TableError as error:
        raise CommandError(str(error)) from None
    if not rows:
        raise CommandError(f"{path}: the file has no rows")
    header = None
    if not all(_is_number(cell) for cell in rows[0]):
        header, rows = [cell.strip() for cell in rows[0]], rows[1:]
        if not rows:
            raise CommandError(f"{path}: the file has a header and no data rows")
    width = len(rows[0]) if header is None else len(header)
    values = np.empty((len(rows), width))
    for r, row in enumerate(rows):
        line = r + 1 + (header is not None)
        if len(row) != width:
            raise CommandError(f"{path}: line {line} has {len(row)} columns; line "
                               f"1{' (the header)' if header is not None else ''} has {width}")
        for c, cell in enumerate(row):
            try:
                values[r, c] = float(cell)
            except ValueError:
                raise CommandError(f"{path}: line {line}, column {c + 1}: {cell.strip()!r} is not "
                                   "a number") from None
    if target is None:
        return values, None
    column = _column(target, header, width, path)
    if width < 2:
        raise CommandError(f"{path}: needs at least 2 columns, features and a target")
    return np.delete(values, column, axis=1), values[:, column]


def _is_number(cell):
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _column(target, header, width, path):
    """The index of the target column, given by name (with a header) or by number from 0."""
    if header is not None and target in header:
        return header.index(target)
    try:
        column = int(target)
    except ValueError:
        names = f"names {header}" if header is not None else "no header"
        raise CommandError(f"{path}: --target {target!r} is neither a column number nor a "
                           f"column name (the file has {names})") from None
    if not -width <= column < width:
        raise CommandError(f"{path}: --target {column} is out of range for {width} columns")
    return column % width


MAX_GUESSED_CLASSES = 100


def guess_loss(y):
    """cross_entropy for whole non-negative labels with at most 100 classes, squared_error
    otherwise (--loss overrides it)."""
    y = np.asarray(y)
    if (y.ndim == 1 and y.size and np.issubdtype(y.dtype, np.number) and np.all(np.isfinite(y))
            and np.all(y >= 0) and np.all(y == np.round(y)) and np.max(y) < MAX_GUESSED_CLASSES):
        return "cross_entropy"
    return "squared_error"


def layer_sizes(args, X, y, loss):
    """The Network's sizes from --sizes, or from --hidden with the data's in- and out-widths."""
    n_in = X.shape[1] if X.ndim == 2 else None
    if loss == "cross_entropy":
        n_out = max(int(np.max(y)) + 1, 2)
    else:
        n_out = y.shape[1] if y.ndim == 2 else 1
    if args.sizes is not None:
        sizes = args.sizes
        if n_in is not None and sizes[0] != n_in:
            raise CommandError(f"--sizes starts with {sizes[0]}, but the data has {n_in} features")
        if loss == "cross_entropy" and sizes[-1] < n_out:
            raise CommandError(f"--sizes ends with {sizes[-1]} outputs, but the labels go up to "
                               f"{n_out - 1}: it needs at least {n_out}")
        return sizes
    return [n_in if n_in is not None else X.shape[-1], *args.hidden, n_out]


def _int_list(text):
    try:
        values = [int(v) for v in text.replace(",", " ").split()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected whole numbers like 4,32,3; got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive whole numbers; got {text!r}")
    return values


def _encoding(text):
    """A text encoding Python knows, e.g. utf-8, latin-1, cp1252, utf-16."""
    try:  # LookupError for unknown names and for bytes-to-bytes codecs (base64); b"" skips both checks
        b"a".decode(text)
    except UnicodeDecodeError:  # utf-16 and others that need more than a byte
        pass
    except LookupError:
        raise argparse.ArgumentTypeError(f"unknown text encoding {text!r} (e.g. utf-8, "
                                         "latin-1, cp1252, utf-16)") from None
    return text


def _encoding_option(parser):
    parser.add_argument("--encoding", type=_encoding, help="of a .csv file (default: as its "
                        "byte-order mark says, else utf-8)")


def _seed(text):
    """A random seed: a whole number >= 0, as NumPy's generators take."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0; got {value}")
    return value


def _positive(kind):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {kind.__name__}; got {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be > 0; got {text}")
        return value
    return parse


# -------------------------------------------------------------------------------- commands
def demo(args):
    import nbbp
    from nbbp.datasets import spirals

    if args.plot:
        _needs_matplotlib("--plot")
    if args.samples < 10:
        raise CommandError(f"--samples {args.samples} is too few to train and test; give at least 10")
    X, y = spirals(n_samples=args.samples, seed=args.seed)
    n_train = int(0.8 * len(X))
    X_train, y_train, X_test, y_test = X[:n_train], y[:n_train], X[n_train:], y[n_train:]
    net = nbbp.Network([2, 64, 64, 3], activation="relu", output="softmax", loss="cross_entropy",
                       seed=args.seed, dtype=np.float32)
    print(f"nbbp demo: {net!r} on {n_train} spiral points, {args.epochs} epochs of mini-batch "
          f"SGD with momentum 0.9 (batch {args.batch_size}, learning rate {args.learning_rate})",
          flush=True)
    start = time.perf_counter()
    history = net.fit(X_train, y_train, epochs=args.epochs, batch_size=min(args.batch_size, n_train),
                      learning_rate=args.learning_rate, optimizer="momentum", verbose=True)
    elapsed = time.perf_counter() - start
    accuracy = net.score(X_test, y_test)
    print(f"test accuracy {accuracy:.1%}; {history.epochs} epochs in {elapsed:.2f} s "
          f"({history.epochs * n_train / elapsed:,.0f} samples/s, compile time included on a "
          "first run)")
    if args.plot:
        from nbbp import plot

        plot.training_report(net, history, X_test, y_test, path=args.plot)
        print(f"wrote {args.plot}")
    return 0


def train(args):
    import nbbp

    if args.target is not None and not args.data.lower().endswith(".csv"):
        raise CommandError("--target picks a column of a .csv file; a .npz file holds X and y")
    X, y = read_table(args.data, args.target if args.target is not None else -1, args.encoding)
    if y is None:
        raise CommandError(f"{args.data}: no array 'y' of targets to train on")
    loss = args.loss or guess_loss(y)
    sizes = layer_sizes(args, X, y, loss)
    net = nbbp.Network(sizes, activation=args.activation, output=OUTPUT_FOR_LOSS[loss], loss=loss,
                       seed=args.seed, dtype=np.dtype(args.dtype))
    print(f"nbbp train: {net!r}, loss {loss}{'' if args.loss else ' (--loss to change)'}, on "
          f"{len(X)} samples from {args.data}", flush=True)
    start = time.perf_counter()
    history = net.fit(X, y, epochs=args.epochs, batch_size=min(args.batch_size, len(X)),
                      learning_rate=args.learning_rate, optimizer=args.optimizer,
                      validation_fraction=args.validation_fraction, verbose=not args.quiet)
    elapsed = time.perf_counter() - start
    what = "R^2" if loss == "squared_error" else "accuracy"
    line = (f"{history.epochs} epochs in {elapsed:.2f} s: training loss {history.loss[-1]:.6g}, "
            f"training {what} {net.score(X, y):.4f}")
    if history.val_score:
        line += f", validation {what} {history.val_score[-1]:.4f}"
    print(line)
    net.save(args.model)
    print(f"saved {args.model}")
    return 0


def predict(args):
    import nbbp

    try:
        net = nbbp.load(args.model)
    except FileNotFoundError:
        raise CommandError(f"{args.model}: no such file") from None
    X, _ = read_table(args.data, encoding=args.encoding)
    if args.proba:
        if net.loss_name == "squared_error":
            raise CommandError(f"--proba needs a classifier; {args.model} is a regression model "
                               "(loss squared_error)")
        result = net.predict_proba(X)
    else:
        result = net.predict(X)
    result = result.reshape(len(result), -1)
    if args.out:
        fmt = "%d" if np.issubdtype(result.dtype, np.integer) else "%.9g"
        try:
            np.savetxt(args.out, result, fmt=fmt, delimiter=",")
        except OSError as error:
            raise CommandError(f"{args.out}: cannot write ({error.strerror or error})") from None
        print(f"wrote {len(result)} predictions to {args.out}", file=sys.stderr)
    else:
        for row in result:
            print(",".join(str(v) if np.issubdtype(result.dtype, np.integer) else f"{v:.9g}"
                           for v in row))
    return 0


def info(args):
    from .host import info_lines

    for line in info_lines():
        print(line)
    return 0


def _needs_matplotlib(option):
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise CommandError(f"{option} needs matplotlib: pip install 'nbbp[plot]'") from None


# ------------------------------------------------------------------------------------ main
def build_parser():
    parser = ArgumentParser(prog="nbbp", description="Backpropagation in Numba kernels: train "
                            "multilayer perceptrons on the CPU.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                     parser_class=ArgumentParser)

    p = commands.add_parser("demo", help="train a classifier on built-in 2-D spirals and report")
    p.add_argument("--epochs", type=_positive(int), default=200)
    p.add_argument("--batch-size", type=_positive(int), default=32)
    p.add_argument("--learning-rate", type=_positive(float), default=0.05)
    p.add_argument("--samples", type=_positive(int), default=3000)
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--plot", metavar="PNG", help="write loss curves, gradient flow and the "
                   "decision boundary to this image (needs matplotlib)")
    p.set_defaults(run=demo)

    p = commands.add_parser("train", help="train on a .csv or .npz file and save the model")
    p.add_argument("--data", required=True, help=".npz with X and y, or .csv (target: last column)")
    p.add_argument("--target", help="the .csv target column, by header name or number from 0 "
                   "(default: the last)")
    _encoding_option(p)
    size = p.add_mutually_exclusive_group()
    size.add_argument("--sizes", type=_int_list, help="every layer's width, inputs first, "
                      "e.g. 4,32,3")
    size.add_argument("--hidden", type=_int_list, default=[64],
                      help="hidden widths, e.g. 64,32; the data gives the rest (default 64)")
    p.add_argument("--loss", choices=sorted(OUTPUT_FOR_LOSS), help="default: cross_entropy for "
                   "whole non-negative labels, squared_error otherwise")
    p.add_argument("--activation", default="relu",
                   choices=["identity", "sigmoid", "tanh", "relu", "leaky_relu"])
    p.add_argument("--optimizer", default="adam",
                   choices=["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw"])
    p.add_argument("--epochs", type=_positive(int), default=20)
    p.add_argument("--batch-size", type=_positive(int), default=32)
    p.add_argument("--learning-rate", type=_positive(float), default=0.001)
    p.add_argument("--validation-fraction", type=float, default=None)
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--model", default="model.npz", help="where to save it (default model.npz)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=train)

    p = commands.add_parser("predict", help="predict with a saved model")
    p.add_argument("--model", required=True, help="a model saved by nbbp train or Network.save")
    p.add_argument("--data", required=True, help=".npz with X, or .csv of features only")
    _encoding_option(p)
    p.add_argument("--proba", action="store_true", help="class probabilities, not labels")
    p.add_argument("--out", help="write a .csv here instead of printing")
    p.set_defaults(run=predict)

    p = commands.add_parser("info", help="the host profile the kernels are built for, with the "
                            "versions and threading a bug report needs")
    p.set_defaults(run=info)

    commands.add_parser("bench", help="nbbp against PyTorch, JAX and scikit-learn (see "
                        "'nbbp bench --help')", add_help=False)
    return parser


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    print(f"nbbp: warning: {message}", file=sys.stderr if file is None else file)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warning  # no source lines from inside nbbp
            if argv[:1] == ["bench"]:
                from .compare import main as bench

                return bench(argv[1:], prog="nbbp bench")
            args = build_parser().parse_args(argv)
            return args.run(args)
    except CommandError as error:
        print(f"nbbp: error: {error}", file=sys.stderr)
        return 1
    except (ValueError, TypeError, OSError, FloatingPointError) as error:
        # Network's and load's errors name the problem, and DivergenceError (a
        # FloatingPointError) what diverged: one line of it is the report.
        # NBBP_TRACEBACK=1 shows the whole traceback instead, to debug nbbp itself.
        if os.environ.get("NBBP_TRACEBACK"):
            raise
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        print(f"nbbp: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("nbbp: interrupted", file=sys.stderr)
        return 130
