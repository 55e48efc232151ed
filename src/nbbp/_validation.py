"""Input checks shared by the public API. Each error names the argument, what was expected and
what was received; nothing here mutates its inputs."""

import inspect
import numbers
import os
import weakref
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from typing import NamedTuple

import numpy as np
from numba import prange

from ._jit import helper, kernel, part, use_threads
from ._layout import parameter_count
from .activations import ACTIVATIONS, HIDDEN_ACTIVATIONS
from .initializers import INITIALIZERS, default_init
from .losses import LOSSES, VALID_OUTPUTS

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
SKIP_FORMS = ("activation", "identity")  # a(t) = f(z(t) + a(s)), a(t) = a(s) + f(z(t))


class Spec:
    """A hyperparameter object (an optimizer, a schedule): its attributes are its
    hyperparameters; two are equal when of one type with equal attributes."""

    def __eq__(self, other):
        return type(self) is type(other) and vars(self) == vars(other)

    def __hash__(self):
        return hash((type(self).__name__, tuple(sorted(vars(self).items()))))

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


def check_choice(value, choices, name):
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)}; got {value!r}")
    return value


def check_dtype(dtype) -> np.dtype:
    # np.dtype(None) is float64, and a dtype compares equal to None: test identity first.
    try:
        dt = None if dtype is None else np.dtype(dtype)
    except (TypeError, ValueError):
        dt = None
    if dt is None or not any(dt == valid for valid in FLOAT_DTYPES):
        raise ValueError(f"dtype must be float32 or float64; got {dtype!r}")
    return dt


def finite_float(value):
    """``value`` as a finite Python float if it is a real number other than a bool (an int, a
    float, a NumPy scalar, a Fraction), else None. np.isfinite refuses a Fraction; float()
    takes every numbers.Real, and an int past float's range raises OverflowError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    try:
        number = float(value)
    except (OverflowError, ValueError, TypeError):
        return None
    return number if np.isfinite(number) else None


def check_positive_number(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a positive number; got {type(value).__name__} {value!r}")
    number = finite_float(value)
    if number is None or number <= 0:
        raise ValueError(f"{name} must be a finite number > 0; got {value!r}")
    return number


def check_real(value, name, low=-np.inf, high=np.inf, low_open=False, high_open=False):
    """``value`` as a float, if it is a finite real number in the interval from ``low`` to
    ``high`` (each end closed unless ``low_open`` / ``high_open``)."""
    number = finite_float(value)
    if number is None:
        raise ValueError(f"{name} must be a finite number; got {value!r}")
    too_low = number <= low if low_open else number < low
    too_high = number >= high if high_open else number > high
    if too_low or too_high:
        interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise ValueError(f"{name} must be in {interval}; got {value!r}")
    return number


def as_scalar(value, dtype, name):
    """``value`` in ``dtype``, refusing one that overflows it (1e39 is inf in float32)."""
    with np.errstate(over="ignore", under="ignore"):
        out = dtype.type(value)
    if not np.isfinite(out):
        raise ValueError(f"{name}={value!r} is too large for a {dtype} network")
    if out == 0 and value != 0:  # 1e-46 is 0 in float32: training would change nothing
        raise ValueError(f"{name}={value!r} is too small for a {dtype} network: it rounds to 0")
    return out


def per_layer(value, n_layers, name) -> list:
    """Expand a single value to one per layer, or check a list has one per layer."""
    if isinstance(value, (list, tuple)):
        if len(value) != n_layers:
            raise ValueError(f"{name} must be one value or a list of {n_layers} (one per layer); "
                             f"got a list of {len(value)}")
        return list(value)
    return [value] * n_layers


def _numeric_array(data, name):
    try:
        arr = np.asarray(data)
    except (ValueError, TypeError) as exc:
        raise TypeError(f"{name} must be a numeric array; could not convert it: {exc}") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a numeric array (bool, int or float); got dtype "
                        f"{arr.dtype}")
    return arr


def _writeable(arr):
    """``arr`` as an array the kernels take without a second compilation: Numba types
    read-only arrays apart, which would compile a second copy of every kernel and of the epoch
    driver (about 30 s). A read-only memmap (``np.load(path, mmap_mode="r")``), or a
    C-contiguous view of one, becomes a copy-on-write mapping of the same bytes of its file:
    writeable by type, read from disk as the kernels touch it, never copied (the kernels write
    nothing into their inputs). Any other read-only array (np.broadcast_to, a frozen array) is
    copied."""
    if arr.flags.writeable:
        return arr
    mapped = _copy_on_write(arr)
    return mapped if mapped is not None else arr.copy()


# The mappings _copy_on_write made, by id (held weakly: each goes with the last array on it;
# arrays are not hashable)
OWN_MAPPINGS: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


def advise_random_reads(arr):
    """Tell the kernel that the file mapping under ``arr`` is read at random, as a shuffled
    epoch reads rows: no read-ahead of the pages around each row, which on a file larger than
    the page cache reads the file many times over and evicts the rows to come. Only a mapping
    _copy_on_write made: a user's own keeps its read-ahead."""
    import mmap

    view = arr
    while isinstance(view, np.ndarray) and OWN_MAPPINGS.get(id(view)) is not view:
        view = view.base
    if isinstance(view, np.memmap) and isinstance(view.base, mmap.mmap):
        view.base.madvise(mmap.MADV_RANDOM)


def _copy_on_write(arr):
    """A copy-on-write np.memmap of the file bytes under ``arr``, as a plain ndarray, or None
    when ``arr`` is not a C-contiguous view of a read-only file mapping whose file is still
    the one at its path (the same device and inode: a file replaced since, by a rename or a
    moved symlink, is not remapped) or this cannot be told (no /proc/self/maps)."""
    import mmap

    root = arr
    while isinstance(root, np.ndarray) and not isinstance(root.base, mmap.mmap):
        root = root.base
    if (not isinstance(root, np.memmap) or root.mode != "r" or not root.filename
            or not arr.flags.c_contiguous or arr.size == 0):
        return None
    address = root.__array_interface__["data"][0]
    identity = _file_identity(root.filename)
    if identity is None or _mapped_file(address) != identity:
        return None
    start = arr.__array_interface__["data"][0] - address
    try:
        view = np.memmap(root.filename, dtype=arr.dtype, mode="c", offset=root.offset + start,
                         shape=arr.shape)
    except (OSError, ValueError):  # the file is gone or shorter: copy what the array holds
        return None
    OWN_MAPPINGS[id(view)] = view  # advise_random_reads may change its read-ahead
    return np.asarray(view)


def _file_identity(path):
    try:
        st = os.stat(path)
    except OSError:
        return None
    return os.major(st.st_dev), os.minor(st.st_dev), st.st_ino


def _mapped_file(address):
    """(major, minor, inode) of the file mapped at ``address``, from /proc/self/maps, or
    None."""
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                fields = line.split()
                start, end = (int(v, 16) for v in fields[0].split("-"))
                if start <= address < end:
                    major, minor = (int(v, 16) for v in fields[3].split(":"))
                    return (major, minor, int(fields[4])) if int(fields[4]) else None
    except (OSError, ValueError, IndexError):
        return None
    return None


FINITE_CHECK_ROWS = 1 << 14  # rows per block: the check's temporary stays O(block), not O(data)


def _check_finite(arr, name, original, compiled=True, threads=True):
    """A ValueError naming the first row of ``arr`` (``original`` converted) that holds NaN or
    inf; where that row of ``original`` is finite, the conversion overflowed (1e39 in float32),
    and the message says so. ``threads``: as first_non_finite_row."""
    row = first_non_finite_row(arr, compiled, threads)
    if row >= 0:
        converted = ""
        if arr is not original and np.isfinite(original[row]).all():
            converted = f" after conversion to {arr.dtype} (a value too large for it)"
        raise ValueError(f"{name} contains NaN or inf (first at row {row}){converted}")


def first_non_finite_row(arr, compiled=True, threads=True):
    """The first row (index along the first axis) of ``arr`` holding a NaN or an inf, or -1.

    A writeable float32/float64 C-contiguous matrix, the arrays the kernels take, is checked by
    a compiled kernel without a temporary (``compiled``; it compiles nothing more for them):
    np.isfinite(X).all() took 6.3 ms of each fit on W2's 20,000 x 784 float32, 8% of an epoch,
    this 1.75 ms on 2 threads. It runs on the thread pool where ``arr`` is large and
    ``threads`` allows (see as_inputs). Anything else by NumPy, FINITE_CHECK_ROWS rows at a
    time.
    """
    if (compiled and arr.ndim == 2 and arr.dtype in FLOAT_DTYPES and arr.flags.c_contiguous
            and arr.flags.writeable and arr.shape[1] > 0):
        # None where on one thread: no parallel loop compiled (see _jit)
        return int(_first_non_finite_row(arr, (threads and use_threads(arr.size)) or None))
    for start in range(0, max(len(arr), 1), FINITE_CHECK_ROWS):
        block = arr[start:start + FINITE_CHECK_ROWS]
        if not np.isfinite(block).all():
            return start + int(np.argwhere(~np.isfinite(block))[0][0])
    return -1


@helper
def _row_is_finite(X, k):
    """Whether row k of X holds only finite values: |x| < inf is false for NaN and for +-inf.
    Counted over the row, which vectorises where an early exit would not."""
    inf = X.dtype.type(np.inf)
    bad = 0
    for j in range(X.shape[1]):
        bad += not abs(X[k, j]) < inf
    return bad == 0


# Rows per task of the compiled check: blocks small enough for 2 threads to share evenly.
FINITE_BLOCK_ROWS = 256


@part
def _first_non_finite_in(X, block):
    """The first row of block ``block`` (of FINITE_BLOCK_ROWS rows) of X with a NaN or an inf,
    or -1."""
    k0 = block * FINITE_BLOCK_ROWS
    for k in range(k0, min(k0 + FINITE_BLOCK_ROWS, X.shape[0])):
        if not _row_is_finite(X, k):
            return k
    return -1


@kernel
def _first_non_finite_row(X, parallel):
    """The first row of the float matrix X holding a NaN or an inf, or -1. Parallel over blocks
    of FINITE_BLOCK_ROWS rows."""
    n_blocks = (X.shape[0] + FINITE_BLOCK_ROWS - 1) // FINITE_BLOCK_ROWS
    firsts = np.empty(n_blocks, np.int64)
    if parallel is not None and parallel:
        for block in prange(n_blocks):
            firsts[block] = _first_non_finite_in(X, np.int64(block))
    else:
        for block in range(n_blocks):
            firsts[block] = _first_non_finite_in(X, block)
    for block in range(n_blocks):
        if firsts[block] >= 0:
            return firsts[block]
    return -1


def as_inputs(X, n_features, dtype, name="X", threads=None):
    """X as a C-contiguous (n_samples, n_features) array of ``dtype`` with finite values.

    ``threads`` (None: always) is threads(n_samples), whether the caller's work on X will use
    the thread pool; the finite check uses it only then. Waking the pool for the check alone
    leaves its threads spinning for milliseconds after (OpenMP's wait policy), taking a core
    from any other busy thread: a tiny network's fit right after a NumPy matmul, whose
    OpenBLAS threads spin too, took 6.5-18.4 ms an epoch (medians of four runs, two of them
    slowed) against 5.9-8.1 with the check on one thread (W1's 20,000 x 64, 2 cores, AMD EPYC
    Zen 4)."""
    arr = _numeric_array(X, name)
    if arr.ndim != 2:
        hint = " (use X.reshape(1, -1) for one sample)" if arr.ndim == 1 else ""
        raise ValueError(f"{name} must be 2-D, (n_samples, {n_features}); got shape "
                         f"{arr.shape}{hint}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty: it has 0 samples")
    if arr.shape[1] != n_features:
        raise ValueError(f"{name} has {arr.shape[1]} features per sample; this network takes "
                         f"{n_features} (sizes[0])")
    with np.errstate(over="ignore", invalid="ignore"):
        out = _writeable(np.ascontiguousarray(arr, dtype=dtype))
    _check_finite(out, name, arr, threads=threads is None or threads(out.shape[0]))
    return out


def _checked_labels(arr, n_out, name):
    if arr.dtype.kind == "f" and not np.all(arr == np.round(arr)):
        raise ValueError(f"{name} as class labels must be whole numbers; got "
                         f"{arr[arr != np.round(arr)][0].item()!r}")
    bad = (arr < 0) | (arr >= n_out)
    if bad.any():
        raise ValueError(f"{name} has class label {arr[bad][0].item()!r} out of range: "
                         f"cross_entropy with {n_out} outputs takes labels 0..{n_out - 1}")
    return _writeable(np.ascontiguousarray(arr, dtype=np.int64))


def as_labels(y, n_samples, n_out, name="y"):
    """Integer class labels (n_samples,) in [0, n_out) for cross_entropy, as int64; None when y
    is not a 1-D label vector (then as_targets takes it). Training keeps labels as labels, so
    no one-hot copy of the data set is made."""
    arr = _numeric_array(y, name)
    if arr.ndim != 1:
        return None
    if arr.shape[0] != n_samples:
        raise ValueError(f"X has {n_samples} samples but {name} has {arr.shape[0]}")
    _check_finite(arr, name, arr, compiled=False)  # any dtype: no compile for it
    return _checked_labels(arr, n_out, name)


def as_sample_weight(sample_weight, n_samples, name="sample_weight"):
    """sample_weight as float64 (n_samples,): one finite weight >= 0 per sample, not all 0 (a
    number weighs every sample alike); None stays None."""
    if sample_weight is None:
        return None
    arr = _numeric_array(sample_weight, name)
    if arr.dtype.kind == "b":
        raise TypeError(f"{name} must hold numbers, not booleans")
    if arr.ndim == 0:
        arr = np.full(n_samples, arr)
    if arr.ndim != 1 or arr.shape[0] != n_samples:
        raise ValueError(f"{name} must have one weight per sample, shape ({n_samples},); got "
                         f"shape {arr.shape}")
    weights = arr.astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(weights) | (weights < 0))
    if bad.size:
        raise ValueError(f"{name} must be finite and >= 0; {name}[{bad[0]}] is "
                         f"{arr[bad[0]].item()!r}")
    if not weights.any():
        raise ValueError(f"{name} is 0 for every sample: there is nothing to learn from")
    return np.ascontiguousarray(weights)


def class_weights(class_weight, classes, n_classes):
    """Per-sample weights (float64) from ``class_weight`` for the samples' class indices
    ``classes`` in [0, n_classes): "balanced", n / (n_present_classes * count(class)) as
    scikit-learn's compute_class_weight, or a dict {class index: weight >= 0} (others 1)."""
    if isinstance(class_weight, str):
        if class_weight != "balanced":
            raise ValueError(f"class_weight must be 'balanced', a dict or None; got "
                             f"{class_weight!r}")
        counts = np.bincount(classes, minlength=n_classes)
        per_class = np.ones(n_classes)
        present = counts > 0
        per_class[present] = len(classes) / (np.count_nonzero(present) * counts[present])
        return per_class[classes]
    if not isinstance(class_weight, Mapping):
        raise TypeError(f"class_weight must be 'balanced', a dict or None; got "
                        f"{type(class_weight).__name__} {class_weight!r}")
    per_class = np.ones(n_classes)
    for key, value in class_weight.items():
        if (isinstance(key, (bool, np.bool_)) or not isinstance(key, numbers.Integral)
                or not 0 <= key < n_classes):
            raise ValueError(f"class_weight names the class {key!r}; the classes are 0 to "
                             f"{n_classes - 1}")
        weight = finite_float(value)
        if weight is None or weight < 0:
            raise ValueError(f"class_weight[{key!r}] must be a finite number >= 0; got "
                             f"{value!r}")
        per_class[int(key)] = weight
    return per_class[classes]


def as_targets(y, n_samples, n_out, loss, dtype, name="y"):
    """y as a C-contiguous (n_samples, n_out) array of ``dtype``.

    cross_entropy takes integer labels in [0, n_out) (shape (n_samples,)), turned into one-hot
    rows, or probability rows (n_samples, n_out). log_loss takes 0/1 targets; poisson finite
    values >= 0; squared_error any finite values. A 1-D y is accepted for a single output.
    """
    arr = _numeric_array(y, name)
    if arr.ndim == 0 or arr.ndim > 2:
        raise ValueError(f"{name} must be 1-D or 2-D; got shape {arr.shape}")
    if arr.shape[0] != n_samples:
        raise ValueError(f"X has {n_samples} samples but {name} has {arr.shape[0]}")
    _check_finite(arr, name, arr, compiled=False)  # any dtype: no compile for it

    if loss == "cross_entropy" and arr.ndim == 1:
        labels = _checked_labels(arr, n_out, name)
        Y = np.zeros((n_samples, n_out), dtype=dtype)
        Y[np.arange(n_samples), labels] = 1
        return Y

    if arr.ndim == 1:
        if n_out != 1:
            expected = "integer labels (n_samples,) or " if loss == "cross_entropy" else ""
            raise ValueError(f"{name} must be {expected}(n_samples, {n_out}); got shape "
                             f"{arr.shape}")
        arr = arr.reshape(-1, 1)
    if arr.shape[1] != n_out:
        raise ValueError(f"{name} must have {n_out} columns, one per output neuron; got shape "
                         f"{arr.shape}")
    if loss == "poisson" and (arr < 0).any():
        raise ValueError(f"{name} for poisson must be >= 0 (counts, rates); got "
                         f"{arr[arr < 0][0].item()!r}")
    if loss == "log_loss" and not np.all((arr == 0) | (arr == 1)):
        raise ValueError(f"{name} for log_loss must hold only 0 and 1; got "
                         f"{arr[(arr != 0) & (arr != 1)][0].item()!r}")
    if loss == "cross_entropy" and ((arr < 0).any() or not np.allclose(
            arr.sum(axis=1, dtype=np.float64), 1.0, rtol=0, atol=1e-6)):
        raise ValueError(f"{name} rows for cross_entropy must be one-hot or probabilities "
                         "(non-negative, summing to 1)")
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.ascontiguousarray(arr, dtype=dtype)
    _check_finite(out, name, arr)
    return _writeable(out)


# ------------------------------------------------------------ the constructor and fit

def check_training(training):
    if not isinstance(training, (bool, np.bool_)):
        raise TypeError(f"training must be True or False; got {training!r}")
    return bool(training)


def check_residual(residual, sizes):
    """The skips as sorted (s, t) pairs: a(s) is added to z(t)."""
    L = len(sizes) - 1
    if residual is None:
        return []
    if isinstance(residual, numbers.Integral) and not isinstance(residual, bool):
        k = int(residual)
        if k < 1:
            raise ValueError(f"residual must be an int >= 1 (a skip every k layers), a list "
                             f"of (from, to) pairs, or None; got {residual!r}")
        pairs = [(s, s + k) for s in range(1, L - k, k) if sizes[s] == sizes[s + k]]
        if not pairs:
            raise ValueError(f"residual={k} adds no skip: sizes {sizes} have no hidden "
                             f"layers s and s + {k} of equal width (s = 1, 1 + {k}, ...)")
        return pairs
    if isinstance(residual, (str, bytes)) or not isinstance(residual, (list, tuple)):
        raise TypeError(f"residual must be None, an int or a list of (from, to) pairs; got "
                        f"{residual!r}")
    pairs = []
    for pair in residual:
        if (not isinstance(pair, (list, tuple)) or len(pair) != 2
                or any(isinstance(v, bool) or not isinstance(v, numbers.Integral) for v in pair)):
            raise TypeError(f"residual must be a list of (from, to) pairs of layer indices; "
                            f"got the entry {pair!r}")
        s, t = int(pair[0]), int(pair[1])
        if not 0 <= s < t <= L:
            raise ValueError(f"residual pair ({s}, {t}) must have 0 <= from < to <= {L} "
                             "(layers count as in sizes, 0 the input)")
        if sizes[s] != sizes[t]:
            raise ValueError(f"residual pair ({s}, {t}) joins layers of different widths: "
                             f"sizes[{s}] = {sizes[s]}, sizes[{t}] = {sizes[t]}")
        if any(t == other for _, other in pairs):
            raise ValueError(f"residual has two skips into layer {t}; at most one per layer")
        pairs.append((s, t))
    return sorted(pairs, key=lambda pair: pair[1])


def check_count(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1; got {value!r}")
    return int(value)


def check_sizes(sizes):
    # An ordered sequence: a set would come out sorted, a dict as its keys, and a 0-d array
    # has a __len__ that raises
    if (isinstance(sizes, (str, bytes, AbstractSet, Mapping)) or not hasattr(sizes, "__len__")
            or np.ndim(sizes) == 0):  # a list, tuple, array or pandas Series
        raise TypeError(f"sizes must be a list of layer widths such as [2, 3, 1]; got {sizes!r}")
    sizes = list(sizes)
    if len(sizes) < 2:
        raise ValueError(f"sizes needs at least 2 entries (inputs and outputs); got {sizes!r}")
    for s in sizes:
        if isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 1:
            raise ValueError(f"sizes must hold positive integers; got {sizes!r}")
    return [int(s) for s in sizes]


def check_masks(masks, sizes, dtype):
    n_layers = len(sizes) - 1
    if masks is None:
        return [None] * n_layers
    if not isinstance(masks, (list, tuple)) or len(masks) != n_layers:
        raise ValueError(f"masks must be None or a list of {n_layers} entries (one per layer, "
                         "each a 0/1 array or None)")
    out = []
    for l, m in enumerate(masks):
        if m is None:
            out.append(None)
            continue
        try:
            arr = np.asarray(m)
        except (ValueError, TypeError) as exc:  # ragged rows
            raise ValueError(f"masks[{l}] must be a 0/1 array of shape "
                             f"{(sizes[l + 1], sizes[l])}; could not make an array of it: "
                             f"{exc}") from None
        shape = (sizes[l + 1], sizes[l])
        if arr.shape != shape:
            raise ValueError(f"masks[{l}] must have shape {shape} (sizes[{l + 1}], sizes[{l}]); "
                             f"got {arr.shape}")
        if arr.dtype.kind not in "biuf" or not np.all((arr == 0) | (arr == 1)):
            raise ValueError(f"masks[{l}] must hold only 0 and 1")
        out.append(np.array(arr, dtype=dtype, order="C"))  # a copy: the caller's array stays theirs
    return out


def _physical_memory():
    """Bytes of memory of this machine, or None where the OS does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(sizes, bias, batch_norm, dtype):
    """A ValueError, before anything is allocated, for a network whose parameters and their
    masks (two flat vectors) would not fit in this machine's memory, or whose count would not
    fit the int64 offsets of the layout."""
    n_params, _ = parameter_count(sizes, bias, batch_norm)
    need = 2 * n_params * dtype.itemsize
    available = _physical_memory()
    if n_params >= 1 << 62 or (available is not None and need > available):
        have = ("" if available is None
                else f", more than this machine's {available / 2**30:,.1f} GiB")
        raise ValueError(f"sizes {list(sizes)} make {n_params:,} parameters: {need:,} bytes "
                         f"({need / 2**30:,.1f} GiB) for them and their masks in "
                         f"{dtype.name}{have}")


def check_callback(callback):
    """A TypeError, before training, for a callback that cannot be called as callback(epoch,
    history)."""
    if callback is None:
        return
    if not callable(callback):
        raise TypeError(f"callback must be callable as callback(epoch, history); got {callback!r}")
    try:
        signature = inspect.signature(callback)
    except (TypeError, ValueError):  # a builtin without a signature: take it on trust
        return
    try:
        signature.bind(0, None)
    except TypeError as exc:
        raise TypeError(f"callback must be callable as callback(epoch, history); "
                        f"{getattr(callback, '__name__', callback)!r}{signature} cannot: "
                        f"{exc}") from None


class NetworkArguments(NamedTuple):
    """The Network constructor's arguments, checked and normalised: the widths, one activation
    name per hidden layer, a copy of each mask (or None), one bias flag per layer, one
    batch_norm flag per hidden layer, the residual (s, t) pairs and the seeded generator."""

    sizes: list[int]
    hidden: list[str]
    output: str
    loss: str
    init: str
    dtype: np.dtype
    masks: list[np.ndarray | None]
    bias: list[bool]
    batch_norm: list[bool]
    skips: list[tuple[int, int]]
    skip: str
    dropout: list[float]
    rng: np.random.Generator


def network_arguments(sizes, activation, output, loss, init, seed, dtype, masks, bias, batch_norm,
                      residual, skip="activation", dropout=0.0) -> NetworkArguments:
    """The Network constructor's arguments, checked and normalised before anything is
    allocated."""
    sizes = check_sizes(sizes)
    n_layers = len(sizes) - 1
    if isinstance(activation, str) or not isinstance(activation, (list, tuple)):
        check_choice(activation, (*HIDDEN_ACTIVATIONS, "softmax"), "activation")
    hidden = per_layer(activation, n_layers - 1, "activation")
    for name in hidden:
        if name == "softmax":
            raise ValueError("activation 'softmax' is for the output layer only; hidden layers "
                             f"take one of {list(HIDDEN_ACTIVATIONS)}")
        check_choice(name, HIDDEN_ACTIVATIONS, "activation")
    check_choice(loss, LOSSES, "loss")
    check_choice(output, ACTIVATIONS, "output")
    if output not in VALID_OUTPUTS[loss]:
        why = "its log link, o = exp(z) > 0" if loss == "poisson" else "outputs in (0, 1)"
        raise ValueError(f"loss {loss!r} needs {why}: output must be one of "
                         f"{list(VALID_OUTPUTS[loss])}; got {output!r}")
    if output == "softmax" and sizes[-1] < 2:
        raise ValueError("output 'softmax' needs at least 2 output neurons; got sizes[-1] = "
                         f"{sizes[-1]} (use 'sigmoid' with 'log_loss' for one)")
    if loss == "cross_entropy" and sizes[-1] < 2:
        raise ValueError("loss 'cross_entropy' needs at least 2 output neurons, one per class; "
                         f"got sizes[-1] = {sizes[-1]} (use 'sigmoid' with 'log_loss' for one)")
    init = default_init(hidden) if init is None else check_choice(init, INITIALIZERS, "init")
    dtype = check_dtype(dtype)
    bias = per_layer(bias, n_layers, "bias")
    for b in bias:
        if not isinstance(b, (bool, np.bool_)):
            raise TypeError(f"bias must be a bool or a list of bools; got {b!r}")
    masks = check_masks(masks, sizes, dtype)
    batch_norm = per_layer(batch_norm, n_layers - 1, "batch_norm")
    for flag in batch_norm:
        if not isinstance(flag, (bool, np.bool_)):
            raise TypeError(f"batch_norm must be a bool or a list of bools, one per hidden "
                            f"layer; got {flag!r}")
    skips = check_residual(residual, sizes)
    check_choice(skip, SKIP_FORMS, "skip")
    into_output = [pair for pair in skips if pair[1] == n_layers]
    if skip == "identity" and into_output:
        raise ValueError(f"skip='identity' adds a(s) after f, so it cannot join the output "
                         f"layer: residual pair {into_output[0]} ends at layer {n_layers}, the "
                         f"output (skip='activation' can)")
    dropout = per_layer(dropout, n_layers - 1, "dropout")
    for i, p in enumerate(dropout):
        number = finite_float(p)
        if number is None or not 0 <= number < 1:
            raise ValueError(f"dropout must be a probability in [0, 1), one value or one per "
                             f"hidden layer; got {p!r}" + (f" for hidden layer {i + 1}"
                                                          if len(dropout) > 1 else ""))
        dropout[i] = number
    check_memory(sizes, bias, batch_norm, dtype)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)
                             or seed < 0):
        raise TypeError(f"seed must be None or a non-negative int; got {seed!r}")
    return NetworkArguments(sizes, hidden, output, loss, init, dtype, masks, bias, batch_norm,
                            skips, skip, dropout,
                            np.random.default_rng(None if seed is None else int(seed)))


def finite_parameters(vectors, arrays, what):
    """A ValueError naming the first parameter array holding NaN or inf, for a call (``what``)
    that cannot take them: training would spread them and report a divergence, and ``load``
    refuses such a file. Training never leaves one (a diverging epoch is rolled back), so it was
    set by hand. ``vectors``: the flat parameter vectors, checked first (fast); ``arrays()``:
    {name: per-layer arrays or None}, searched in order for the name when one is not finite."""
    if all(first_non_finite_row(v.reshape(1, -1)) < 0 for v in vectors if v.size):
        return
    name = "a parameter"
    for key, per_layer_arrays in arrays().items():
        bad = [l for l, a in enumerate(per_layer_arrays)
               if a is not None and not np.isfinite(a).all()]
        if bad:
            name = f"{key}[{bad[0]}]"
            break
    raise ValueError(f"{what}: {name} holds NaN or inf (set by hand?); give it finite values "
                     "first")


def finite_network(net, vectors, what):
    """finite_parameters for a Network: its flat vectors, then its per-layer arrays by name."""
    names = ("weights", "biases", "gammas", "betas", "running_means", "running_vars")
    finite_parameters(vectors, lambda: {name: getattr(net, name) for name in names}, what)


def masked_weights(theta, masked, weights, mask_views):
    """A ValueError naming the first layer with a nonzero weight where its mask is 0 (set by
    hand: masked weights must stay 0). ``masked``: the indices in theta of the masked weights;
    ``mask_views()``: the masks per layer, as ``weights``."""
    if masked.size and np.any(theta[masked] != 0):
        layer = next(l for l, M in enumerate(mask_views()) if np.any(weights[l][M == 0] != 0))
        raise ValueError(f"weights[{layer}] has nonzero entries where masks[{layer}] is 0; "
                         "masked weights must stay 0")


def finite_gradients(grad, dtype, layers_checked):
    """A FloatingPointError if the gradients overflowed for finite inputs; ``layers_checked()``
    first raises its own error naming the layer if the forward pass overflowed already."""
    if first_non_finite_row(grad.reshape(1, -1)) >= 0:
        layers_checked()
        raise FloatingPointError("gradients: the gradients overflowed (inf or NaN) for finite "
                                 f"inputs; the inputs or weights are too large for {dtype.name}")


def finite_layers(zs, a_list, what, parameters_checked, first_row=0):
    """A FloatingPointError naming the first layer whose pre-activations or activations are not
    finite, for inputs that were (checked on the way in): an overflow, which would otherwise
    come out as NaN probabilities, and class 0 from predict. ``parameters_checked()`` first
    raises its own error if the cause is a NaN or inf set by hand in the parameters. The rows
    are samples first_row, first_row + 1, ...; a layer given as None is skipped."""
    for l, (Z, A) in enumerate(zip(zs, a_list[1:])):
        if Z is None:
            continue
        rows = [r for r in (first_non_finite_row(Z), first_non_finite_row(A)) if r >= 0]
        if rows:
            parameters_checked()
            raise FloatingPointError(
                f"{what}: layer {l} (of {len(zs)}) overflowed: its values are inf or NaN for "
                f"finite inputs (first at sample {first_row + min(rows)}); the inputs or "
                f"weights are too large for {Z.dtype.name}")


def check_contract_fits(net, contract):
    """The contract fits the network: a feature per input; for a classifier, distinct classes,
    one per output (or two for one sigmoid output); no classes for a regression."""
    if len(contract.features) != net.sizes[0]:
        raise ValueError(f"the data contract names {len(contract.features)} features; the "
                         f"network takes {net.sizes[0]} inputs")
    classifier = net.loss_name in ("cross_entropy", "log_loss")
    if contract.classes is None:
        return
    n = len(contract.classes)
    if not classifier or len(set(contract.classes)) != n or not (
            n == net.sizes[-1] or (n == 2 and net.sizes[-1] == 1 and net.loss_name == "log_loss")):
        raise ValueError(f"the data contract names {n} classes ({len(set(contract.classes))} "
                         f"distinct); the network has {net.sizes[-1]} outputs and loss "
                         f"{net.loss_name}")
