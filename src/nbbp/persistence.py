"""The model file format, alone: one ``.npz`` archive, no pickle, written atomically
(``write``), and read with every entry checked against what the archive holds for it
(``read``). ``Network.save`` and ``Network.load`` turn a network into entries and back."""

from __future__ import annotations

import errno
import json
import os
import tempfile
import tokenize
import zipfile
import zlib

import numpy as np

from . import optimizers
from ._layout import STATS_OFF, batch_norm_views, parameter_count, weight_ranges, widen

FORMAT = "nbbp.Network"
# Version 2 adds batch normalisation (batch_norm, stats) and residual connections (residual);
# version 3 the form of the skips (skip), which a version 2 reader would take as "activation",
# and dropout.
VERSION = 3
READABLE_VERSIONS = (1, 2, 3)


def describe(net) -> str:
    """repr(net): the constructor's architecture arguments, past the defaults only where set."""
    extra = ""
    if any(net.batch_norm):
        extra += f", batch_norm={list(net.batch_norm)}"
    if net.residual:
        extra += f", residual={list(net.residual)}, skip={net.skip!r}"
    if any(net.dropout):
        extra += f", dropout={list(net.dropout)}"
    return (f"Network(sizes={list(net.sizes)}, activation={list(net.activation)}, "
            f"output={net.output!r}, loss={net.loss_name!r}{extra}, dtype={net.dtype.name})")


def entries(net, theta, mask_theta, stats, opt):
    """The entries of a network's file: its architecture from its public attributes, and its
    flat parameter, mask and running-statistics vectors and optimizer state (OptimizerState),
    which the Network passes."""
    return {
        "sizes": np.array(net.sizes, dtype=np.int64),
        "activation": np.array(net.activation, dtype=np.str_).reshape(-1),
        "output": np.array(net.output),
        "loss": np.array(net.loss_name),
        "init": np.array(net.init),
        "dtype": np.array(net.dtype.name),
        "bias": np.array([b is not None for b in net.biases], dtype=bool),
        "has_mask": np.array([m is not None for m in net.masks], dtype=bool),
        "batch_norm": np.array(net.batch_norm, dtype=bool),
        "residual": np.array(net.residual, dtype=np.int64).reshape(-1, 2),
        "skip": np.array(net.skip),
        "dropout": np.array(net.dropout, dtype=np.float64).reshape(-1),
        "theta": theta,
        "mask_theta": mask_theta,
        "stats": stats,
        "rng_state": np.array(json.dumps(net.rng.bit_generator.state)),
        "optimizer": np.array("" if opt.optimizer is None else type(opt.optimizer).__name__),
        "optimizer_args": np.array(json.dumps({} if opt.optimizer is None
                                              else vars(opt.optimizer))),
        "optimizer_state": opt.state,
        "optimizer_steps": np.array(opt.steps, dtype=np.int64),
    }


def pickled_state(state):
    """A pickled network's ``__dict__`` brought up to this nbbp: the optimizer's state as one
    OptimizerState (before 0.2), and the skip form and dropout it had none of (their layout
    columns included)."""
    if "_opt_state" in state:  # pickled by nbbp 0.1.0 before OptimizerState
        state["_opt"] = optimizers.OptimizerState(state.pop("_optimizer"),
                                                  state.pop("_opt_state"),
                                                  state.pop("_opt_steps"))
    state.setdefault("skip", "activation")  # pickled before skip="identity"
    state.setdefault("dropout", (0.0,) * (len(state["sizes"]) - 2))  # and before dropout
    state["_layout"] = widen(state["_layout"])
    return state


def write(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` (the entries of one model: ``entries``) to ``path``, an ``.npz``
    archive with FORMAT and VERSION added. It is written to a temporary file in the same folder
    and renamed over ``path``, so a crash mid-write leaves any previous file intact.
    """
    arrays = {"format": np.array(FORMAT), "version": np.array(VERSION), **arrays}
    write_atomically(path, lambda f: np.savez(f, **arrays), ".npz")  # type: ignore[arg-type]


def write_atomically(path: str | os.PathLike, data, suffix: str) -> None:
    """Write ``data`` (bytes, or a function that writes to a binary file) to ``path`` through
    a temporary file in the same folder renamed over it: a crash mid-write leaves any previous
    file intact, and a failed write no partial one. The file gets the usual mode."""
    path = os.fsdecode(os.fspath(path))  # a bytes path too, as load takes
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"cannot save to {path!r}: no folder {folder!r}")
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, "Is a directory", path)
    if os.path.lexists(path) and not os.path.isfile(path):  # a device or a FIFO, which the
        # rename below would replace with a file
        raise ValueError(f"cannot save to {path!r}: it exists and is not a regular file")
    fd, tmp = tempfile.mkstemp(prefix=".nbbp-", suffix=suffix + ".tmp", dir=folder)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a saved file gets the usual mode
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# A deflated member expands at most about 1,032-fold: an entry whose header claims more bytes
# than that of what the archive holds for it is a lie, rejected before anything is allocated.
MAX_DEFLATE_RATIO = 1032
# Optimizer steps past 2^53 lose integer precision in float64, and near 2^63 the next step's
# bias correction overflows: such a count is not a real model's.
MAX_OPTIMIZER_STEPS = 1 << 53
# Arrays an nbbp file holds besides theta, mask_theta, optimizer_state and stats: small ones.
SMALL_ENTRY_BYTES = 1 << 20


def _entry_headers(f, path):
    """{name: (shape, dtype, claimed bytes)} of the archive's .npy members, from their headers
    alone, each checked against the bytes the archive holds for it: its sizes in the zip's
    directory (which the file itself states) and, above all, the file's own size."""
    headers = {}
    file_bytes = os.fstat(f.fileno()).st_size
    f.seek(0)
    with zipfile.ZipFile(f) as archive:
        for info in archive.infolist():
            name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            with archive.open(info) as member:
                version = np.lib.format.read_magic(member)
                if version == (1, 0):
                    shape, _fortran, dtype = np.lib.format.read_array_header_1_0(member)
                else:
                    shape, _fortran, dtype = np.lib.format.read_array_header_2_0(member)
            if dtype.itemsize == 0:  # <U0, |S0: any number of elements in 0 bytes
                raise ValueError(f"its entry {name!r} has dtype {dtype} of 0-byte elements")
            claimed = dtype.itemsize
            for n in shape:
                claimed *= n
            stored = min(info.compress_size, file_bytes)
            held = min(info.file_size, stored)
            if info.compress_type != zipfile.ZIP_STORED:
                held = min(info.file_size, stored * MAX_DEFLATE_RATIO)
            if claimed > held:
                raise ValueError(f"its entry {name!r} claims {claimed:,} bytes of data (shape "
                                 f"{shape}) but the file holds {held:,} for it")
            headers[name] = (tuple(shape), dtype, claimed)
    f.seek(0)
    return headers


def _native(array):
    """``array`` in the machine's byte order: a file written on a big-endian host holds '>f8'
    arrays, which np.load reads as they are."""
    if array.dtype.isnative:
        return array
    return array.astype(array.dtype.newbyteorder("="))


def _field(data, key, path):
    if key not in data.files:
        raise ValueError(f"{path} is not an nbbp model file: it has no {key!r} entry")
    return data[key]


def read(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The entries of a model file written by ``Network.save``, each read in the machine's byte
    order, after checking the archive, its format and version, and the sizes its headers claim
    against the architecture. ``Network.load`` checks the values.

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        The file is truncated, corrupted, of another format or of an unknown version.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no nbbp model file at {path!r}")
    # Open the file here so it is closed whatever np.load makes of it; every failure to read
    # the archive (zipfile raises NotImplementedError or RuntimeError for some corrupt headers,
    # and NumPy a ValueError that suggests unpickling) becomes one ValueError naming the file.
    with open(path, "rb") as f:
        if not zipfile.is_zipfile(f):  # NumPy's own message would suggest unpickling it
            raise ValueError(f"{path} is not a readable nbbp model file: not an .npz (zip) "
                             "archive, or one truncated or corrupted")
        f.seek(0)
        try:
            data = np.load(f, allow_pickle=False)
        except (OSError, EOFError, ValueError, zipfile.BadZipFile, NotImplementedError,
                RuntimeError) as exc:
            raise ValueError(f"{path} is not a readable nbbp model file (not an .npz archive, "
                             f"or truncated or corrupted): {exc}") from None
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise ValueError(f"{path} is not an nbbp model file: it holds a single array, not "
                             "an .npz archive")
        with data:
            try:
                headers = _entry_headers(f, path)
                fmt = str(_field(data, "format", path))
                if fmt != FORMAT:
                    raise ValueError(f"{path} is not an nbbp model file (format {fmt!r})")
                version_field = _field(data, "version", path)
                if version_field.shape != () or version_field.dtype.kind not in "iu":
                    raise ValueError(f"{path} is not a readable nbbp model file: its version "
                                     f"is not a whole number ({version_field!r})")
                version = int(version_field)
                if version not in READABLE_VERSIONS:
                    raise ValueError(f"{path} has nbbp file version {version}; this nbbp reads "
                                     f"versions {', '.join(map(str, READABLE_VERSIONS))}")
                large = ("theta", "mask_theta", "optimizer_state", "stats")
                names = (("sizes", "activation", "output", "loss", "init", "dtype", "bias",
                          "has_mask", "rng_state", "optimizer", "optimizer_args",
                          "optimizer_steps") + (("batch_norm", "residual") if version >= 2 else ())
                         + (("skip", "dropout") if version >= 3 else ())
                         + large[:3] + (large[3:] if version >= 2 else ()))
                for key in names:
                    if key in headers and key not in large and headers[key][2] > SMALL_ENTRY_BYTES:
                        raise ValueError(f"its entry {key!r} holds {headers[key][2]:,} bytes; "
                                         "an nbbp file's is small")
                fields: dict[str, np.ndarray] = {}
                for key in names:
                    if key == "theta":  # the architecture is known: check the large entries'
                        _check_entry_shapes(fields, headers, version)  # shapes before reading
                    fields[key] = _native(_field(data, key, path))
            except (ValueError, TypeError) as exc:
                if isinstance(exc, ValueError) and str(exc).startswith(path):
                    raise
                raise ValueError(f"{path} is not a readable nbbp model file: {exc}") from None
            except (OSError, EOFError, zipfile.BadZipFile, KeyError, NotImplementedError,
                    RuntimeError, MemoryError, OverflowError, zlib.error, SyntaxError,
                    tokenize.TokenError) as exc:  # the last two: a .npy header that won't parse
                raise ValueError(f"{path} is not a readable nbbp model file (truncated or "
                                 f"corrupted): {type(exc).__name__}: {exc}") from None

    return fields


def sizes_of(field):
    """The layer widths of a file: whole positive numbers, at least 2 of them."""
    if field.ndim != 1 or field.dtype.kind not in "iu" or len(field) < 2 or np.any(field < 1):
        raise ValueError(f"its sizes are not a list of 2 or more positive integers (dtype "
                         f"{field.dtype}, shape {field.shape})")
    return [int(s) for s in field]


def _check_entry_shapes(fields, headers, version):
    """The large entries' shapes, from their headers, against the architecture in the small
    ones: theta and mask_theta hold one value per parameter, stats two per normalised neuron,
    the optimizer state a row per parameter."""
    sizes = sizes_of(fields["sizes"])
    n_layers = len(sizes) - 1
    bias = [bool(b) for b in fields["bias"]]
    batch_norm = [bool(b) for b in fields.get("batch_norm", np.zeros(n_layers - 1, bool))]
    if len(bias) != n_layers or len(batch_norm) != n_layers - 1:
        return  # the Network's own checks name this (every entry's size is bounded by the file)
    n_params, n_stats = parameter_count(sizes, bias, batch_norm)
    expected = {"theta": (n_params,), "mask_theta": (n_params,)}
    if version >= 2:
        expected["stats"] = (n_stats,)
    for key, shape in expected.items():
        if key in headers and headers[key][0] != shape:
            what = ("its running statistics do not match its architecture" if key == "stats"
                    else "its parameters do not match its architecture")
            raise ValueError(f"{what}: its {key} has shape {headers[key][0]}, and sizes {sizes} "
                             f"need {shape}")
    state = headers.get("optimizer_state")
    if state is not None and (len(state[0]) != 2 or state[0][1] != n_params or state[0][0] > 2):
        raise ValueError(f"its optimizer state does not match its parameters: shape {state[0]}, "
                         f"where {n_params} parameters need (rows, {n_params}), 2 rows at most")


# Errors that mean a file's values are not a model's: Network.load names the file in one
# ValueError for each of them (RecursionError: deeply nested JSON).
INVALID = (ValueError, TypeError, KeyError, json.JSONDecodeError, OverflowError, MemoryError,
           RecursionError)


def architecture(fields):
    """The Network constructor's arguments that a file's entries (``read``) describe."""
    sizes = sizes_of(fields["sizes"])
    n_layers = len(sizes) - 1
    bias = [bool(b) for b in fields["bias"]]
    batch_norm = [bool(b) for b in fields.get("batch_norm", [False] * (n_layers - 1))]
    residual = fields.get("residual", np.zeros((0, 2), dtype=np.int64))
    if residual.ndim != 2 or residual.shape[1] != 2 or residual.dtype.kind != "i":
        raise ValueError("its residual connections are not a list of (from, to) pairs")
    return dict(sizes=sizes, activation=[str(a) for a in fields["activation"]],
                output=str(fields["output"]), loss=str(fields["loss"]), init=str(fields["init"]),
                seed=None, dtype=str(fields["dtype"]),
                bias=bias if len(bias) == n_layers else [],
                batch_norm=batch_norm if len(batch_norm) == n_layers - 1 else [],
                residual=[(int(s), int(t)) for s, t in residual] or None,
                skip=str(fields.get("skip", "activation")),
                dropout=_dropout(fields.get("dropout", np.zeros(n_layers - 1))))


def _dropout(field):
    """A file's dropout probabilities: a 1-D array of floats (the constructor checks them)."""
    if field.ndim != 1 or field.dtype.kind != "f":
        raise ValueError(f"its dropout is not a list of probabilities (dtype {field.dtype}, "
                         f"shape {field.shape})")
    return [float(p) for p in field]


def values(fields, layout, dtype, n_params, n_stats):
    """A file's parameters and state (``read``), checked against the network its architecture
    built (its layout, dtype, and the lengths of theta and stats): a dict of theta, mask_theta,
    has_mask, stats (or None: a version 1 file), rng_state, optimizer (or None), opt_state and
    opt_steps."""
    n_layers = layout.shape[0]
    has_mask = [bool(m) for m in fields["has_mask"]]
    theta, mask_theta = fields["theta"], fields["mask_theta"]
    if theta.shape != (n_params,) or mask_theta.shape != (n_params,) or theta.dtype != dtype \
            or len(has_mask) != n_layers:
        raise ValueError("its parameters do not match its architecture")
    if not np.isfinite(theta).all():
        raise ValueError("its parameters hold NaN or inf")
    if not np.all((mask_theta == 0) | (mask_theta == 1)):
        raise ValueError("its masks hold values other than 0 and 1")
    # Only the weights of a masked layer may be masked: biases, gamma, beta and dense layers
    # are all 1.
    expected_ones = np.ones_like(mask_theta, dtype=bool)
    for weights, masked in zip(weight_ranges(layout), has_mask):
        if masked:
            expected_ones[weights] = False
    if np.any(mask_theta[expected_ones] != 1):
        raise ValueError("its masks disagree with which layers it says are masked")
    stats = fields.get("stats")
    if stats is not None:
        if stats.shape != (n_stats,) or stats.dtype != dtype:
            raise ValueError("its running statistics do not match its architecture")
        if not np.isfinite(stats).all():
            raise ValueError("its running statistics hold NaN or inf")
        if any(np.any(v < 0) for v in batch_norm_views(layout, stats, STATS_OFF)[1]
               if v is not None):
            raise ValueError("its running variances hold negative values")
    for l, weights in enumerate(weight_ranges(layout)):
        if np.any(theta[weights][mask_theta[weights] == 0] != 0):
            raise ValueError(f"weights[{l}] has nonzero entries where masks[{l}] is 0; masked "
                             "weights must stay 0")
    try:  # tried on a generator of the kind a Network has
        rng_state = json.loads(str(fields["rng_state"]))
        np.random.default_rng().bit_generator.state = rng_state
    except (ValueError, TypeError, KeyError, OverflowError, RecursionError) as exc:
        raise ValueError(f"its rng_state is not a random generator's state: "
                         f"{type(exc).__name__}: {exc}") from None
    found = dict(theta=theta, mask_theta=mask_theta, has_mask=has_mask, stats=stats,
                 rng_state=rng_state, optimizer=None, opt_state=None, opt_steps=0)
    name = str(fields["optimizer"])
    if name:
        if name not in ("SGD", "AdaGrad", "RMSProp", "Adam", "AdamW", "LBFGS"):
            raise ValueError(f"unknown optimizer {name!r}")
        optimizer = getattr(optimizers, name)(**json.loads(str(fields["optimizer_args"])))
        state = fields["optimizer_state"]
        if state.shape != (optimizer.n_state, n_params) or state.dtype != dtype:
            raise ValueError("its optimizer state does not match its parameters")
        if not np.isfinite(state).all():
            raise ValueError("its optimizer state holds NaN or inf")
        # the running sums of squared gradients (AdaGrad, RMSProp: row 0; Adam, AdamW: row 1)
        squares = {"AdaGrad": 0, "RMSProp": 0, "Adam": 1, "AdamW": 1}.get(name)
        if squares is not None and np.any(state[squares] < 0):
            raise ValueError(f"its optimizer state holds negative sums of squared "
                             f"gradients ({name})")
        steps_field = fields["optimizer_steps"]
        if steps_field.shape != () or steps_field.dtype.kind not in "iu":
            raise ValueError("its optimizer step count is not an integer")
        steps = int(steps_field)
        if steps < 0:
            raise ValueError(f"its optimizer step count is negative ({steps})")
        if steps > MAX_OPTIMIZER_STEPS:
            raise ValueError(f"its optimizer step count {steps} is past 2^53")
        found.update(optimizer=optimizer, opt_state=state, opt_steps=steps)
    return found



def load(cls, path):
    """A ``cls`` (Network) read from a file written by ``write``: Network.load."""
    fields = read(path)
    try:
        net = cls(**architecture(fields))
        net._restore(values(fields, net._layout, net.dtype, net._theta.size, net._stats.size))
    except INVALID as exc:
        raise ValueError(f"{os.fspath(path)} is not a valid nbbp model file: {exc}") from None
    return net
