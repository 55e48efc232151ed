"""Input checks shared by the public API. Each error names the argument, what was expected and
what was received; nothing here mutates its inputs."""

import numbers

import numpy as np
from numba import prange

from ._jit import PARALLEL_MIN_WORK, helper, kernel, part

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


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
        raise TypeError(f"{name} must be a numeric array (bool, int or float); got dtype {arr.dtype}")
    return arr


def _writeable(arr):
    """``arr``, or a copy of it if it is read-only (a read-only memmap, np.broadcast_to, a frozen
    array): Numba types read-only arrays apart, so passing one would compile a second copy of
    every kernel and of the epoch driver (about 30 s), where one copy of the data costs little."""
    return arr if arr.flags.writeable else arr.copy()


FINITE_CHECK_ROWS = 1 << 14  # rows per block: the check's temporary stays O(block), not O(data)


def _check_finite(arr, name, original, compiled=True):
    """A ValueError naming the first row of ``arr`` (``original`` converted) that holds NaN or
    inf; where that row of ``original`` is finite, the conversion overflowed (1e39 in float32),
    and the message says so."""
    row = first_non_finite_row(arr, compiled)
    if row >= 0:
        converted = ""
        if arr is not original and np.isfinite(original[row]).all():
            converted = f" after conversion to {arr.dtype} (a value too large for it)"
        raise ValueError(f"{name} contains NaN or inf (first at row {row}){converted}")


def first_non_finite_row(arr, compiled=True):
    """The first row (index along the first axis) of ``arr`` holding a NaN or an inf, or -1.

    A writeable float32/float64 C-contiguous matrix, the arrays the kernels take, is checked by
    a compiled kernel without a temporary (``compiled``; it compiles nothing more for them):
    np.isfinite(X).all() took 6.3 ms of each fit on W2's 20,000 x 784 float32, 8% of an epoch,
    this 1.75 ms on 2 threads. Anything else by NumPy, FINITE_CHECK_ROWS rows at a time.
    """
    if (compiled and arr.ndim == 2 and arr.dtype in FLOAT_DTYPES and arr.flags.c_contiguous
            and arr.flags.writeable and arr.shape[1] > 0):
        return int(_first_non_finite_row(arr, arr.size >= PARALLEL_MIN_WORK))
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
    if parallel:
        for block in prange(n_blocks):
            firsts[block] = _first_non_finite_in(X, np.int64(block))
    else:
        for block in range(n_blocks):
            firsts[block] = _first_non_finite_in(X, block)
    for block in range(n_blocks):
        if firsts[block] >= 0:
            return firsts[block]
    return -1


def as_inputs(X, n_features, dtype, name="X"):
    """X as a C-contiguous (n_samples, n_features) array of ``dtype`` with finite values."""
    arr = _numeric_array(X, name)
    if arr.ndim != 2:
        hint = " (use X.reshape(1, -1) for one sample)" if arr.ndim == 1 else ""
        raise ValueError(f"{name} must be 2-D, (n_samples, {n_features}); got shape {arr.shape}{hint}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty: it has 0 samples")
    if arr.shape[1] != n_features:
        raise ValueError(f"{name} has {arr.shape[1]} features per sample; this network takes "
                         f"{n_features} (sizes[0])")
    with np.errstate(over="ignore", invalid="ignore"):
        out = _writeable(np.ascontiguousarray(arr, dtype=dtype))
    _check_finite(out, name, arr)
    return out


def _checked_labels(arr, n_out, name):
    if arr.dtype.kind == "f" and not np.all(arr == np.round(arr)):
        raise ValueError(f"{name} as class labels must be whole numbers; got {arr[arr != np.round(arr)][0].item()!r}")
    bad = (arr < 0) | (arr >= n_out)
    if bad.any():
        raise ValueError(f"{name} has class label {arr[bad][0].item()!r} out of range: cross_entropy "
                         f"with {n_out} outputs takes labels 0..{n_out - 1}")
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


def as_targets(y, n_samples, n_out, loss, dtype, name="y"):
    """y as a C-contiguous (n_samples, n_out) array of ``dtype``.

    cross_entropy takes integer labels in [0, n_out) (shape (n_samples,)), turned into one-hot
    rows, or probability rows (n_samples, n_out). log_loss takes 0/1 targets; squared_error any
    finite values. A 1-D y is accepted for a single output.
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
            raise ValueError(f"{name} must be {expected}(n_samples, {n_out}); got shape {arr.shape}")
        arr = arr.reshape(-1, 1)
    if arr.shape[1] != n_out:
        raise ValueError(f"{name} must have {n_out} columns, one per output neuron; got shape {arr.shape}")
    if loss == "log_loss" and not np.all((arr == 0) | (arr == 1)):
        raise ValueError(f"{name} for log_loss must hold only 0 and 1; got {arr[(arr != 0) & (arr != 1)][0].item()!r}")
    if loss == "cross_entropy":
        if (arr < 0).any() or not np.allclose(arr.sum(axis=1, dtype=np.float64), 1.0, rtol=0, atol=1e-6):
            raise ValueError(f"{name} rows for cross_entropy must be one-hot or probabilities "
                             "(non-negative, summing to 1)")
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.ascontiguousarray(arr, dtype=dtype)
    _check_finite(out, name, arr)
    return _writeable(out)
