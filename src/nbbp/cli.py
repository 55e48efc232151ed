"""The command line, ``nbbp`` or ``python -m nbbp``:

    nbbp demo [--epochs N] [--plot out.png]       train on built-in 2-D spirals and report
    nbbp train --data FILE [--target COL] [--hidden 32] [--epochs N] [--model out.npz]
                                                  train, score on held-out rows, save
    nbbp predict --model M.npz --data FILE [--proba] [--out FILE.csv]
    nbbp evaluate --model M.npz --data FILE [--plot out.png]
                                                  metrics on labelled data
    nbbp export --model M.npz --onnx M.onnx       the model as ONNX, for onnxruntime and others
    nbbp bench [--workloads W1,W2] [--threads N] [--isa avx2]
                                                  nbbp against PyTorch, JAX and scikit-learn
    nbbp bench --distributed                      2 MPI ranks against 1 process, projected
    nbbp info                                     the host profile, versions and threading

Data files: a ``.csv`` (a header row naming the columns, or none: a first row of numbers is
data), a Parquet file (with pyarrow), or a ``.npz`` with arrays ``X`` (and ``y``). The target
is the last column unless ``--target`` names another. ``train`` standardizes the inputs, holds
out a stratified 20% to score, and saves the data contract (nbbp.tabular) with the network:
feature names, target, class names (text allowed) and scaling, so that ``predict`` and
``evaluate`` find the inputs by name and answer with class names. A ``.csv`` is UTF-8 unless
it starts with a byte-order mark (UTF-8, UTF-16 or UTF-32) or ``--encoding`` names another.
Bad arguments and unreadable files end with a one-line ``nbbp: error: ...`` on stderr and exit
code 2 (usage) or 1 (data), never a traceback.
"""

import argparse
import csv
import os
import pathlib
import sys
import time
import warnings
import zipfile
import zlib

import numpy as np

from . import metrics, tabular
from ._args import ArgumentParser

OUTPUT_FOR_LOSS = {"cross_entropy": "softmax", "log_loss": "sigmoid", "squared_error": "identity"}


class CommandError(Exception):
    """A problem with the user's arguments or files, reported as one line."""


# ------------------------------------------------------------------------------------ data
def read_table(path, encoding=None, labelled=True):
    """A Table from a .csv file (header row optional), a Parquet file (pyarrow) or a .npz
    file (arrays X and, when ``labelled``, y: columns "0", "1", ... and "y")."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise CommandError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return _npz_table(path, labelled)
    if suffix == ".csv":
        return tabular.read_csv(path, encoding, header=None)
    if suffix in PARQUET:
        return tabular.read_parquet(path)
    raise CommandError(f"{path}: expected a .csv, .parquet or .npz file")


PARQUET = (".parquet", ".pq")


def _npz_table(path, labelled):
    if not zipfile.is_zipfile(path):
        raise CommandError(f"{path}: not an .npz file (not a zip archive)")
    try:
        with np.load(path, allow_pickle=False) as data:
            if "X" not in data.files:
                raise CommandError(f"{path}: no array 'X' (has {sorted(data.files)})")
            X = data["X"]
            if labelled and "y" not in data.files:
                raise CommandError(f"{path}: no array 'y' of targets")
            y = data["y"] if labelled else None
    except CommandError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise CommandError(f"{path}: not a readable .npz file ({error})") from None
    if X.ndim != 2:
        raise CommandError(f"{path}: X must be 2-D, (n_samples, n_features); got shape {X.shape}")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise CommandError(f"{path}: its X is empty (shape {X.shape}): no samples")
    if X.dtype.kind not in "biuf":
        raise CommandError(f"{path}: X must hold numbers; got {X.dtype}")
    columns = {str(c): X[:, c] for c in range(X.shape[1])}
    if y is not None:
        if y.ndim != 1:
            raise CommandError(f"{path}: y must be 1-D, one target per sample (the command line "
                               f"trains on one target; Network.fit takes several); got shape "
                               f"{y.shape}")
        if len(y) != len(X):
            raise CommandError(f"{path}: X has {len(X)} samples but y has {len(y)}")
        if y.dtype.kind not in "biufU":
            raise CommandError(f"{path}: y must hold numbers or text; got {y.dtype}")
        columns["y"] = y
    shown = tuple(f"X[:, {c}]" for c in range(X.shape[1])) + (("y",) if y is not None else ())
    return tabular.Table(list(columns), columns, str(path), first_line=0, unit="sample",
                         named=False, shown=shown)


def _target_name(table, target):
    """The target column's name: --target by header name, or by number from 0 (negative
    counts from the end); the last column by default."""
    if target is None:
        return table.header[-1]
    if target in table.columns and table.named:
        return target
    try:
        column = int(target)
    except ValueError:
        names = f"columns {table.header}" if table.named else "no header row"
        raise CommandError(f"{table.source}: --target {target!r} is neither a column number "
                           f"nor a column name (the file has {names})") from None
    width = len(table.header)
    if not -width <= column < width:
        raise CommandError(f"{table.source}: --target {column} is out of range for {width} "
                           "columns")
    return table.header[column % width]


def _model_columns(table, contract, labelled):
    """``table`` with the columns ``contract`` takes found by name. A table without names
    (a .csv without a header row, a .npz) is read by position: in the training file's layout
    when the model was trained on one without names; else a .csv of the features alone, in the
    model's order, or a .npz's X and y. (Where a headerless .csv's target would be is unknown.)"""
    if table.named:
        return table
    wanted = contract.features + ([contract.target] if labelled else [])
    if all(name in table.columns for name in wanted) and _numbered(contract.features):
        return table
    arrays = table.shown is not None  # a .npz: X, then y
    if len(table.header) == len(wanted) and (arrays or not labelled):
        return table.renamed(wanted)
    raise CommandError(f"{table.source}: its {len(table.header)} columns have no names, and the "
                       f"model takes the features {contract.features}"
                       f"{f' and the target {contract.target!r}' if labelled else ''}: give the "
                       "file a header row naming its columns")


def _numbered(names):
    return all(name.isdigit() for name in names)


def _load_model(path):
    """(network, contract) from a model file; the contract is None for a file saved by
    Network.save alone (``_plain_contract`` then stands in for it)."""
    try:
        return tabular.load(path)
    except FileNotFoundError:
        raise CommandError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CommandError(f"{path}: no such file (a folder)") from None


def _plain_contract(net, table, labelled):
    """For a model without a data contract: every column a feature (the last the target when
    ``labelled``), classes named by their index, no scaling."""
    if net.loss_name == "cross_entropy":
        classes = [str(i) for i in range(net.sizes[-1])]
    elif net.loss_name == "log_loss" and net.sizes[-1] == 1:
        classes = ["0", "1"]
    else:  # regression, or several independent 0/1 outputs: the outputs as they are
        classes = None
    features = table.header[:-1] if labelled else table.header
    return tabular.Contract(list(features), table.header[-1] if labelled else "y", classes,
                            None, None, None)


def layer_sizes(args, n_in, n_out, why):
    """The Network's sizes from --sizes, or from --hidden with the data's in- and out-widths
    (``why`` says where n_out comes from)."""
    if args.sizes is not None:
        sizes = args.sizes
        if sizes[0] != n_in:
            raise CommandError(f"--sizes starts with {sizes[0]}, but the data has {n_in} features")
        if sizes[-1] != n_out:
            raise CommandError(f"--sizes ends with {sizes[-1]} outputs, but {why}: it needs "
                               f"{n_out}")
        return sizes
    return [n_in, *args.hidden, n_out]


def _int_list(text):
    try:
        values = [int(v) for v in text.replace(",", " ").split()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected whole numbers like 4,32,3; got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive whole numbers; got {text!r}")
    return values


def _encoding(text):
    """A text encoding Python knows, e.g. utf-8, latin-1, cp1252, utf-16."""
    # LookupError for unknown names and for bytes-to-bytes codecs (base64); b"" skips both checks
    try:
        b"a".decode(text)
    except UnicodeDecodeError:  # utf-16 and others that need more than a byte
        pass
    except LookupError:
        raise argparse.ArgumentTypeError(f"unknown text encoding {text!r} (e.g. utf-8, "
                                         "latin-1, cp1252, utf-16)") from None
    return text


def _model_option(parser):
    parser.add_argument("--model", required=True, help="a model saved by nbbp train or "
                        "Network.save")


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


def _fraction(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number; got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1); got {text}")
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
        raise CommandError(f"--samples {args.samples} is too few to train and test; give at "
                           "least 10")
    X, y = spirals(n_samples=args.samples, seed=args.seed)
    n_train = int(0.8 * len(X))
    X_train, y_train, X_test, y_test = X[:n_train], y[:n_train], X[n_train:], y[n_train:]
    net = nbbp.Network([2, 64, 64, 3], activation="relu", output="softmax", loss="cross_entropy",
                       seed=args.seed, dtype=np.float32)
    print(f"nbbp demo: {net!r} on {n_train} spiral points, {args.epochs} epochs of mini-batch "
          f"SGD with momentum 0.9 (batch {args.batch_size}, learning rate {args.learning_rate})",
          flush=True)
    start = time.perf_counter()
    history = net.fit(X_train, y_train, epochs=args.epochs,
                      batch_size=min(args.batch_size, n_train),
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


TASK_FOR_LOSS = {"cross_entropy": "classification", "log_loss": "classification",
                 "squared_error": "regression"}


def train(args):
    """``nbbp train``; under ``mpiexec -n N`` (N > 1) every rank reads the file and makes the
    same split and contract, trains on its contiguous slice of the training rows with
    ``fit(comm=MPI.COMM_WORLD)`` (--batch-size per rank), and rank 0 alone reports and saves."""
    comm = _world()
    if comm is None:
        net, contract, data = _prepare(args)
    else:
        from ._collective import Group
        from .distributed import rows_of

        group = Group(comm, 1)
        net, contract, data = group.agree("nbbp train", lambda: _prepare(args))
        group.check_same("nbbp train", {  # every rank read the same data
            "training data of checksum": zlib.crc32(np.ascontiguousarray(data[0])),
            "targets of checksum": zlib.crc32(np.ascontiguousarray(data[1]))})
    X, y, X_test, y_test, test_rows, task = data
    mine = slice(None) if comm is None else slice(*rows_of(len(X), comm.rank, comm.size))
    start = time.perf_counter()
    history = net.fit(X[mine], y[mine], epochs=args.epochs,
                      batch_size=min(args.batch_size, len(X[mine])),
                      learning_rate=args.learning_rate, optimizer=args.optimizer,
                      validation_fraction=args.validation_fraction, verbose=not args.quiet,
                      comm=comm)
    elapsed = time.perf_counter() - start
    if comm is not None and comm.rank != 0:
        return 0  # the same network as rank 0's, which reports and saves it
    what = "R^2" if net.loss_name == "squared_error" else "accuracy"
    ranks = "" if comm is None else f" on {comm.size} MPI ranks"
    line = (f"{history.epochs} epochs in {elapsed:.2f} s{ranks}: training loss "
            f"{history.loss[-1]:.6g}, training {what} {net.score(X, y):.4f}")
    if history.val_score:
        line += f", validation {what} {history.val_score[-1]:.4f}"
    print(line)
    if test_rows:
        print(f"held out: {test_rows} rows (--test-fraction {args.test_fraction:g}"
              f"{', stratified' if task == 'classification' else ''})")
        _report(net, contract, X_test, y_test)
    else:
        print("held out: no rows (--test-fraction 0, or too few rows): no held-out score")
    tabular.save(args.model, net, contract)
    print(f"saved {args.model}")
    return 0


# What launchers tell each process: its rank, and the number of ranks (MPICH's Hydra and Slurm's
# PMI-2 PMI_RANK, PMI_SIZE; Open MPI's OMPI_COMM_WORLD_*; PMIx launchers PMIX_RANK, with the
# size from MPI itself).
RANK_VARIABLES = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK")
SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE")


def _world():
    """MPI.COMM_WORLD when started by an MPI launcher with more than one rank, else None.
    Ranks past 0 print nothing: not their output, and not their errors (rank 0's name the
    rank an error came from)."""
    global _QUIET_RANK  # noqa: PLW0603 - a once-per-process flag: this rank prints nothing
    rank = next((os.environ[v] for v in RANK_VARIABLES if v in os.environ), None)
    size = next((os.environ[v] for v in SIZE_VARIABLES if v in os.environ), None)
    if rank is None or (size is not None and size.isdigit() and int(size) < 2):
        return None
    if rank != "0":
        _QUIET_RANK = True
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - for the life of the process
    try:
        from mpi4py import MPI
    except ImportError:
        if size is None:  # a PMIx launcher, which may have started this one process alone
            return None
        raise CommandError(f"nbbp train runs on {size} MPI ranks here, which needs mpi4py: "
                           'pip install "nbbp[mpi]"') from None
    return MPI.COMM_WORLD if MPI.COMM_WORLD.size > 1 else None


_QUIET_RANK = False


def _prepare(args):
    """The network, the contract and (X, y, X_test, y_test, held-out rows, task) of ``nbbp
    train``: everything checked and built before training starts."""
    import nbbp

    suffix = pathlib.Path(args.data).suffix.lower()
    if args.target is not None and suffix not in (".csv", *PARQUET):
        raise CommandError("--target picks a column of a .csv or Parquet file; a .npz file "
                           "holds X and y")
    table = read_table(args.data, args.encoding)
    target = _target_name(table, args.target)
    task = TASK_FOR_LOSS.get(args.loss) or tabular.task_of(table, target)
    train_rows, test_rows = tabular.split(table, target, args.test_fraction, args.seed, task)
    contract, X, y = tabular.Contract.fit(train_rows, target, standardize=args.standardize,
                                          impute=args.impute, task=task)
    X_test, y_test = contract.inputs(test_rows), contract.targets(test_rows)  # before training
    if task == "classification":
        classes = contract.classes
        if len(classes) < 2:
            raise CommandError(f"{args.data}: the target {target!r} holds one class "
                               f"({classes[0]!r}); a classifier needs two or more")
        loss = args.loss or "cross_entropy"
        if loss == "log_loss" and len(classes) != 2:
            raise CommandError(f"--loss log_loss is for two classes; the target {target!r} "
                               f"has {len(classes)}: use cross_entropy")
        n_out = 1 if loss == "log_loss" else len(classes)
        why = f"the target has {len(classes)} classes"
    else:
        loss, n_out, why = "squared_error", 1, "a regression has one output"
    if not args.standardize:
        _warn_of_scales(X, contract.features)
    sizes = layer_sizes(args, X.shape[1], n_out, why)
    net = nbbp.Network(sizes, activation=args.activation, output=OUTPUT_FOR_LOSS[loss], loss=loss,
                       seed=args.seed, dtype=np.dtype(args.dtype))
    scaled = "standardized" if args.standardize else "raw: --no-standardize"
    print(f"nbbp train: {net!r}, loss {loss}{'' if args.loss else ' (--loss to change)'}, on "
          f"{len(X)} rows of {args.data} (inputs {scaled}), {test_rows.n_rows} held out",
          flush=True)
    if not table.named and table.shown is None:
        print(f"(the first row of {args.data} is numbers, not names: it has no header row, and "
              "its columns are numbered from 0)")
    return net, contract, (X, y, X_test, y_test, test_rows.n_rows, task)


SCALE_RATIO_WARNING = 100


def _warn_of_scales(X, features):
    """Raw inputs whose spreads differ by more than 100x train slowly and badly (the
    breast-cancer table's run from 0.05 to 2,500): say so, naming the extremes."""
    spread = X.std(axis=0)
    varying = np.flatnonzero(spread > 0)
    if len(varying) < 2:
        return
    low, high = varying[np.argmin(spread[varying])], varying[np.argmax(spread[varying])]
    if spread[high] > SCALE_RATIO_WARNING * spread[low]:
        print(f"nbbp: warning: --no-standardize: the features' spreads differ by "
              f"{spread[high] / spread[low]:.3g}x (standard deviation {spread[low]:.3g} for "
              f"{features[low]!r}, {spread[high]:.3g} for {features[high]!r}); training on "
              "such raw scales is slow and often worse", file=sys.stderr)


def _metrics(net, contract, X, y):
    prediction = net.predict(X)
    if contract.classes is None:
        return metrics.regression(y, prediction)
    return metrics.classification(y, prediction.astype(np.int64), len(contract.classes))


def _report(net, contract, X, y):
    result = _metrics(net, contract, X, y)
    for line in metrics.report(result, contract.classes):
        print(line)
    return result


def _model_and_table(args, labelled):
    net, contract = _load_model(args.model)
    table = read_table(args.data, args.encoding, labelled)
    if contract is None:
        contract = _plain_contract(net, table, labelled)
        if labelled and len(table.header) < 2:
            raise CommandError(f"{args.data}: needs at least 2 columns, features and a target")
    return net, contract, _model_columns(table, contract, labelled)


def predict(args):
    net, contract, table = _model_and_table(args, labelled=False)
    X = contract.inputs(table)
    if args.proba:
        if contract.classes is None:
            raise CommandError(f"--proba needs a classifier; {args.model} is a regression "
                               f"model (loss {net.loss_name})")
        result = net.predict_proba(X)
        if result.shape[1] == 1:  # one sigmoid output: P(class 1)
            result = np.column_stack([1 - result[:, 0], result[:, 0]])
        header, rows = contract.classes, [[f"{v:.9g}" for v in row] for row in result]
    elif contract.classes is not None:
        header = [contract.target]
        rows = [[name] for name in contract.class_names(net.predict(X).astype(np.int64))]
    else:
        result = net.predict(X).reshape(len(X), -1)
        header = ([contract.target] if result.shape[1] == 1
                  else [f"{contract.target}{i}" for i in range(result.shape[1])])
        rows = [[str(v) if result.dtype.kind in "iu" else f"{v:.9g}" for v in row]
                for row in result]
    if args.out:
        try:
            with open(args.out, "w", newline="", encoding="utf-8") as f:
                _write_csv(f, header, rows)
        except OSError as error:
            raise CommandError(f"{args.out}: cannot write ({error.strerror or error})") from None
        print(f"wrote {len(rows)} predictions to {args.out}", file=sys.stderr)
    else:
        try:
            _write_csv(sys.stdout, header, rows)
            sys.stdout.flush()
        except BrokenPipeError:  # `nbbp predict ... | head`: the reader has what it wanted
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
    return 0


def _write_csv(f, header, rows):
    writer = csv.writer(f, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)


def evaluate(args):
    if args.plot:
        _needs_matplotlib("--plot")
    net, contract, table = _model_and_table(args, labelled=True)
    X, y = contract.inputs(table), contract.targets(table)
    print(f"nbbp evaluate: {args.model} on {len(X)} rows of {args.data}")
    result = _report(net, contract, X, y)
    if args.plot:
        from nbbp import plot

        if contract.classes is None:
            ax = plot.residuals(y, net.predict(X))
        else:
            ax = plot.confusion_matrix(result.confusion, contract.classes)
        try:
            ax.figure.savefig(args.plot, dpi=100)
        except OSError as error:
            raise CommandError(f"{args.plot}: cannot write ({error.strerror or error})") from None
        print(f"wrote {args.plot}")
    return 0


def export(args):
    from .export import to_onnx

    net, contract = _load_model(args.model)
    try:
        model = to_onnx(net, args.onnx, args.opset, contract=contract)
    except ImportError as error:
        raise CommandError(str(error)) from None
    graph = model.graph
    print(f"wrote {args.onnx}: ONNX opset {model.opset_import[0].version}, input "
          f"{graph.input[0].name!r} (batch, {net.sizes[0]}"
          f"{', raw features ' + ', '.join(contract.features) if contract else ''}), outputs "
          + ", ".join(repr(o.name) for o in graph.output))
    return 0


def _opset(text):
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number; got {text!r}") from None


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

    p = commands.add_parser("train", help="train on a .csv, Parquet or .npz file, score on "
                            "held-out rows, and save the model")
    p.add_argument("--data", required=True, help=".csv (header row optional), .parquet "
                   "(needs pyarrow), or .npz with X and y; the target is the last column")
    p.add_argument("--target", help="the target column, by header name or number from 0 "
                   "(default: the last)")
    p.add_argument("--test-fraction", type=_fraction, default=0.2, help="rows held out to "
                   "score the model, stratified by class (default 0.2; 0 holds none out)")
    p.add_argument("--no-standardize", dest="standardize", action="store_false",
                   help="train on the raw inputs (default: each feature scaled to mean 0 and "
                   "standard deviation 1 on the training rows, and so in predict)")
    p.add_argument("--impute", choices=["mean"], help="fill missing values with the training "
                   "mean (default: a missing value is an error naming its row and column)")
    _encoding_option(p)
    size = p.add_mutually_exclusive_group()
    size.add_argument("--sizes", type=_int_list, help="every layer's width, inputs first, "
                      "e.g. 4,32,3")
    size.add_argument("--hidden", type=_int_list, default=[64],
                      help="hidden widths, e.g. 64,32; the data gives the rest (default 64)")
    p.add_argument("--loss", choices=sorted(OUTPUT_FOR_LOSS), help="default: cross_entropy for "
                   "text labels and whole numbers >= 0 with at most 100 values, squared_error "
                   "otherwise")
    p.add_argument("--activation", default="relu",
                   choices=["identity", "sigmoid", "tanh", "relu", "leaky_relu"])
    p.add_argument("--optimizer", default="adam",
                   choices=["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw"])
    p.add_argument("--epochs", type=_positive(int), default=50)
    p.add_argument("--batch-size", type=_positive(int), default=32)
    p.add_argument("--learning-rate", type=_positive(float), default=0.01)
    p.add_argument("--validation-fraction", type=float, default=None)
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--model", default="model.npz", help="where to save it (default model.npz)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=train)

    p = commands.add_parser("predict", help="predict with a saved model")
    _model_option(p)
    p.add_argument("--data", required=True, help=".csv, .parquet or .npz (X); its columns "
                   "are found by name, and others (the target) ignored")
    _encoding_option(p)
    p.add_argument("--proba", action="store_true", help="class probabilities, one column per "
                   "class, not class names")
    p.add_argument("--out", help="write the .csv here instead of printing it")
    p.set_defaults(run=predict)

    p = commands.add_parser("evaluate", help="a saved model's metrics on labelled data")
    _model_option(p)
    p.add_argument("--data", required=True, help=".csv, .parquet or .npz (X and y) with the "
                   "model's features and target")
    _encoding_option(p)
    p.add_argument("--plot", metavar="PNG", help="draw the confusion matrix (or, for a "
                   "regression, the residuals) to this image (needs matplotlib)")
    p.set_defaults(run=evaluate)

    p = commands.add_parser("export", help="write a saved model as ONNX (needs onnx), with its "
                            "data contract's scaling and class names when it has one")
    _model_option(p)
    p.add_argument("--onnx", required=True, metavar="FILE.onnx", help="where to write it")
    p.add_argument("--opset", type=_opset, help="the ONNX operator set (default 17)")
    p.set_defaults(run=export)

    p = commands.add_parser("info", help="the host profile the kernels are built for, with the "
                            "versions and threading a bug report needs")
    p.set_defaults(run=info)

    commands.add_parser("bench", help="nbbp against PyTorch, JAX and scikit-learn (see "
                        "'nbbp bench --help')", add_help=False)
    return parser


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    if not _QUIET_RANK:
        print(f"nbbp: warning: {message}", file=sys.stderr if file is None else file)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warning  # no source lines from inside nbbp
            if argv[:1] == ["bench"] and "--distributed" in argv:
                from .scaling import main as bench_distributed

                return bench_distributed(argv[1:])
            if argv[:1] == ["bench"]:
                from .compare import main as bench

                return bench(argv[1:], prog="nbbp bench")
            args = build_parser().parse_args(argv)
            return args.run(args)
    except CommandError as error:
        _error(str(error))
        return 1
    except RuntimeError as error:  # another MPI rank's failure, named (nbbp._collective)
        from ._collective import RankError

        if not isinstance(error, RankError) or os.environ.get("NBBP_TRACEBACK"):
            raise
        _error(str(error).splitlines()[0])
        return 1
    except (ValueError, TypeError, OSError, FloatingPointError) as error:
        # Network's and load's errors name the problem, and DivergenceError (a
        # FloatingPointError) what diverged: one line of it is the report.
        # NBBP_TRACEBACK=1 shows the whole traceback instead, to debug nbbp itself.
        if os.environ.get("NBBP_TRACEBACK"):
            raise
        _error(str(error).splitlines()[0] if str(error) else type(error).__name__)
        return 1
    except MemoryError:
        _error("out of memory (the data, or the network, is too large for this machine)")
        return 1
    except KeyboardInterrupt:
        if not _QUIET_RANK:
            print("nbbp: interrupted", file=sys.stderr)
        return 130


def _error(message):
    """The one line ``nbbp: error: ...`` on stderr (not from MPI ranks past 0)."""
    if not _QUIET_RANK:
        print(f"nbbp: error: {message}", file=sys.stderr)
