"""A first fit from an empty cache compiles in two processes at once.

Numba compiles one function at a time, in one thread. A first fit of a dense network from an
empty cache spends about 18 s compiling on the 2-core Intel Xeon of 2026-12, in this order
(training.train_epoch types its callees as it meets them): the forward kernel (3.6 s), the loss
and output delta (1.6 s), the weight gradients (3.8 s), the delta rule (2.0 s), the optimizer
step (1.6 s), then the driver itself (3.2 s). The backward kernels do not depend on the forward
ones. So when a fit finds them neither loaded nor in the on-disk cache, and the process may run
on a second CPU, it starts ``python -m nbbp._warm <dtype>``, a helper process that compiles
them into the cache while the fit compiles the rest. The cache's entry locks
(_jit._LockedCache) make each function compile once: whichever process reaches it first
compiles it, and the other waits for its entry and loads it. Helper or not, the fit runs the
same machine code (the same functions, compiled for the same signatures on the same CPU).

NBBP_COMPILE_HELPER=0 turns the helper off, =1 starts it even on one CPU; unset, it starts
where the process may use two CPUs or more. A helper that cannot start or fails costs the fit
nothing but its own compiles: the fit compiles what it finds missing.
"""

import os
import subprocess
import sys

import numpy as np
from numba import from_dtype, types
from numba.core.caching import NullCache

from ._jit import fcntl

ENVIRONMENT = "NBBP_COMPILE_HELPER"
LOCK_NAME = "nbbp-compile-helper.lock"  # in the cache directory: one helper at a time there

_helper = None  # this process's latest helper (subprocess.Popen), kept so it is never reaped early
# the dtypes whose kernels this process has found compiled, or sent a helper for
_settled: set[np.dtype] = set()


def backward_kernels(dtype):
    """(kernel, signature) of the backward kernels as the epoch driver calls them for a network
    of ``dtype``, in the order the helper compiles them (the order the driver needs them). The
    driver's buffers are C-contiguous views and its scalars are the parameters' dtype, int64
    codes and bool flags (tests/test_warm.py checks these against what a fit compiles)."""
    from .deltas import hidden_delta
    from .gradients import weight_gradients
    from .optimizers import optimizer_update

    dt = from_dtype(np.dtype(dtype))
    matrix, vector = types.Array(dt, 2, "C"), types.Array(dt, 1, "C")
    flag, code = types.boolean, types.int64
    return [
        # delta, A_prev, W, l2, M, has_mask, dW, db, has_bias, parallel, scratch
        (weight_gradients, (matrix, matrix, matrix, dt, matrix, flag, matrix, vector, flag, flag,
                            vector)),
        # delta, W, Z_prev, A_prev, code, delta_prev, parallel, scratch
        (hidden_delta, (matrix, matrix, matrix, matrix, code, matrix, flag, vector)),
        # opt_code, param, grad, scale, state, alpha, h0, h1, h2, h3, t, parallel
        (optimizer_update, (code, vector, vector, dt, matrix, dt, dt, dt, dt, dt, code, flag)),
    ]


def _wanted():
    """Whether this process may start a helper: NBBP_COMPILE_HELPER, else two CPUs or more."""
    value = os.environ.get(ENVIRONMENT, "")
    if value not in ("", "0", "1"):
        raise ValueError(f"{ENVIRONMENT}={value!r}: set it to 0 (no compile helper) or 1 (a "
                         "helper at a first compile), or leave it unset (a helper where the "
                         "process may use two CPUs or more)")
    if value:
        return value == "1"
    cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else range(
        os.cpu_count() or 1)
    return len(cpus) >= 2


def _missing(kernel, signature):
    """Whether ``kernel`` has ``signature`` neither loaded in this process nor in its on-disk
    cache (read from the cache's index, as Numba reads it before compiling)."""
    if signature in kernel.overloads:
        return False
    cache = kernel._cache
    try:
        key = cache._index_key(signature, kernel.targetctx.codegen())
        return key not in cache._cache_file._load_index()
    except Exception:  # an unreadable index: Numba will compile, and find out; leave it be
        return False


def start(dtype):
    """Start a helper compiling the backward kernels for ``dtype`` where one is wanted and
    useful: one of them is not yet compiled, the cache is on disk and locked (not on Windows,
    where there are no file locks to share the work by), sys.executable is an interpreter (not
    a frozen application), and no helper of this process is still running. Each dtype is
    looked up once per process (three cache indexes read; a partial_fit loop must not pay that
    per call). Returns the helper (subprocess.Popen) or None."""
    global _helper  # noqa: PLW0603 - a once-per-process helper
    dtype = np.dtype(dtype)
    # a frozen application's sys.executable is the application, not an interpreter to run -m in
    if not _wanted() or fcntl is None or dtype in _settled or getattr(sys, "frozen", False):
        return None
    kernels = backward_kernels(dtype)
    cache = getattr(kernels[0][0], "_cache", None)  # None: NUMBA_DISABLE_JIT, nothing compiles
    if cache is None or isinstance(cache, NullCache) or not any(
            _missing(kernel, signature) for kernel, signature in kernels):
        _settled.add(dtype)  # looked up once: partial_fit's later calls pay nothing
        return None
    if _helper is not None and _helper.poll() is None:
        return None
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    try:
        _helper = subprocess.Popen([sys.executable, "-m", "nbbp._warm", np.dtype(dtype).name],
                                   env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
    except OSError:  # no interpreter to start: the fit compiles everything itself
        return None
    _settled.add(dtype)
    return _helper


def main(argv):
    """The helper: compile (or find in the cache) the backward kernels for dtype argv[0], unless
    another helper holds the cache directory's helper lock. Returns the exit status."""
    kernels = backward_kernels(np.dtype(argv[0]))
    path = os.path.join(kernels[0][0]._cache._cache_path, LOCK_NAME)
    try:
        lock = open(path, "a")  # noqa: SIM115 - held until the process ends
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # another helper is at work here, or no lock file can be had
        return 0
    for kernel, signature in kernels:
        kernel.compile(signature)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
