"""A first fit from an empty cache compiles in two processes at once.

Numba compiles one function at a time, in one thread. A first fit of a dense network from an
empty cache spends about 18 s compiling on the 2-core Intel Xeon of 2026-12, in this order
(training.train_epoch types its callees as it meets them): the forward kernel (3.6 s), the loss
and output delta (1.6 s), the weight gradients (3.8 s), the delta rule (2.0 s), the optimizer
step (1.6 s), then the driver itself (3.2 s). The backward kernels do not depend on the forward
ones. So when a training call finds them neither loaded nor in the on-disk cache, and the
process may run on a second CPU, it starts a helper process (``main``) that compiles them into
the cache while the call compiles the rest. The cache's entry locks (_jit._LockedCache) make
each function compile once: whichever process reaches it first compiles it, and the other waits
for its entry and loads it. Helper or not, the fit runs the same machine code (the same
functions, compiled for the same signatures on the same CPU).

NBBP_COMPILE_HELPER=0 turns the helper off, =1 starts it even on one CPU; unset, it starts
where the process may use two CPUs or more. POSIX only: the entry locks are file locks. A helper
that cannot start, or fails, leaves the fit to compile what it finds missing.
"""

import json
import os
import subprocess
import sys

import numpy as np
from numba import from_dtype, types
from numba.core.caching import NullCache

from ._jit import fcntl

ENVIRONMENT = "NBBP_COMPILE_HELPER"

# The helper, run as ``python -c`` (``-m nbbp._warm`` would import this module twice, and
# runpy warns): the parent's sys.path first, so that it imports the same nbbp, numba and numpy
# whatever the working directory or PYTHONPATH.
_HELPER = ("import json, sys; sys.path[:] = json.loads(sys.argv[1]); from nbbp import _warm; "
           "sys.exit(_warm.main(sys.argv[2:]))")

# this process's helpers by (dtype, threaded) (subprocess.Popen), kept to be reaped once they end
_helpers: dict[tuple[np.dtype, bool], subprocess.Popen] = {}
# the (dtype, threaded) whose kernels this process has found compiled, or has tried to start a
# helper for
_settled: set[tuple[np.dtype, bool]] = set()


def backward_kernels(dtype, threaded):
    """(kernel, signature) of the backward kernels as the epoch driver calls them for a network
    of ``dtype``, in the order the helper compiles them (the order the driver needs them). The
    driver's buffers are C-contiguous views and its scalars are the parameters' dtype, int64
    codes and bool flags; ``parallel`` is a bool where the network may train on threads
    (``threaded``, training.kernels_on_threads), else None (the kernels' specialisations without
    a parallel loop, _jit.pool_flag). tests/test_warm.py checks a fit against them."""
    from .deltas import hidden_delta
    from .gradients import weight_gradients
    from .optimizers import optimizer_update

    dt = from_dtype(np.dtype(dtype))
    matrix, vector = types.Array(dt, 2, "C"), types.Array(dt, 1, "C")
    flag, code = types.boolean, types.int64
    parallel = flag if threaded else types.none
    return [
        # delta, A_prev, W, l2, M, has_mask, dW, db, has_bias, parallel, scratch
        (weight_gradients, (matrix, matrix, matrix, dt, matrix, flag, matrix, vector, flag,
                            parallel, vector)),
        # delta, W, Z_prev, A_prev, code, delta_prev, parallel, scratch
        (hidden_delta, (matrix, matrix, matrix, matrix, code, matrix, parallel, vector)),
        # opt_code, param, grad, scale, state, alpha, h0, h1, h2, h3, t, parallel
        (optimizer_update, (code, vector, vector, dt, matrix, dt, dt, dt, dt, dt, code,
                            parallel)),
    ]


def _cpus():
    """The CPUs this process may use: its affinity, capped by a cgroup v2 CPU quota (a
    container's --cpus) where there is one."""
    cpus = float(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                 else os.cpu_count() or 1)
    try:
        with open("/sys/fs/cgroup/cpu.max") as f:
            quota, period = f.read().split()[:2]
        if quota != "max":
            cpus = min(cpus, int(quota) / int(period))
    except (OSError, ValueError):
        pass
    return cpus


def _setting():
    """NBBP_COMPILE_HELPER: "0", "1" or "" (unset), else a ValueError naming it."""
    value = os.environ.get(ENVIRONMENT, "")
    if value not in ("", "0", "1"):
        raise ValueError(f"{ENVIRONMENT}={value!r}: set it to 0 (no compile helper) or 1 (a "
                         "helper at a first compile), or leave it unset (a helper where the "
                         "process may use two CPUs or more)")
    return value


def _wanted():
    """Whether this process may start a helper: NBBP_COMPILE_HELPER, else two CPUs or more."""
    value = _setting()
    if value:
        return value == "1"
    return _cpus() >= 2


def _interpreter():
    """sys.executable where it is a Python interpreter to start the helper with; else None (a
    frozen application, or a program embedding Python, such as uWSGI, whose sys.executable is
    itself)."""
    path = sys.executable
    if not path or getattr(sys, "frozen", False):
        return None
    return path if os.path.basename(path).lower().startswith("python") else None


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


def _target(kernel):
    """What a helper must share with its parent to compile into the same cache entries: the
    kernel's cache directory, and the CPU and features it compiles for."""
    return [kernel._cache._cache_path, list(kernel.targetctx.codegen().magic_tuple())]


def start(dtype, threaded):
    """Start a helper compiling the backward kernels for ``dtype`` and ``threaded`` (as
    backward_kernels) where one is wanted and
    useful: one of them is not yet compiled, the cache is on disk and locked (not on Windows,
    where there are no file locks to share the work by), and there is an interpreter to start
    (_interpreter). Each (dtype, threaded) is settled once per process, helper or not (three
    cache indexes read; a partial_fit loop must not pay that per call). Returns the helper
    (subprocess.Popen) or None."""
    for helper in _helpers.values():
        helper.poll()  # reaps one that has ended
    key = np.dtype(dtype), bool(threaded)
    # the setting is checked on every call; the CPUs (a file read) only while still unsettled
    if _setting() == "0" or fcntl is None or key in _settled or not _wanted():
        return None
    _settled.add(key)
    kernels = backward_kernels(*key)
    cache = getattr(kernels[0][0], "_cache", None)  # None: NUMBA_DISABLE_JIT, nothing compiles
    python = _interpreter()
    if python is None or cache is None or isinstance(cache, NullCache) or not any(
            _missing(kernel, signature) for kernel, signature in kernels):
        return None
    env = dict(os.environ)
    env[ENVIRONMENT] = "0"  # nothing the helper runs starts another
    # sys.path as strings (a program may have put a pathlib.Path or bytes there)
    path = [os.fsdecode(p) for p in sys.path if isinstance(p, (str, bytes, os.PathLike))]
    try:
        helper = subprocess.Popen(
            [python, "-c", _HELPER, json.dumps(path), key[0].name, str(int(key[1])),
             json.dumps(_target(kernels[0][0]))],
            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
    except (OSError, ValueError, TypeError, subprocess.SubprocessError):
        return None  # the fit compiles everything itself
    _helpers[key] = helper
    return helper


def main(argv):
    """The helper: compile (or find in the cache) the backward kernels for dtype argv[0] and
    threaded argv[1] ("1" or "0"), unless its cache directory or compile target differ from the
    parent's (argv[2], _target: its entries would be of no use to the parent) or another helper
    for them holds the directory's helper lock. Returns the exit status."""
    dtype, threaded = np.dtype(argv[0]), argv[1] == "1"
    kernels = backward_kernels(dtype, threaded)
    target = _target(kernels[0][0])
    if json.loads(argv[2]) != json.loads(json.dumps(target)):
        return 3
    # in its cache directory
    path = os.path.join(target[0], f"nbbp-compile-helper-{dtype}-{argv[1]}.lock")
    try:
        lock = open(path, "a")  # noqa: SIM115 - held until the process ends
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # another helper is at work here, or no lock file can be had
        return 0
    for kernel, signature in kernels:
        kernel.compile(signature)
    return 0
