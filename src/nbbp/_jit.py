"""The one place that sets Numba's options, so no kernel's flags can drift from another's."""

import contextlib
import os
import tempfile

from numba import njit

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; first compiles are not serialised there
    fcntl = None

# Reassociation and contraction let LLVM vectorise the j-sums; nnan and ninf stay off so that a
# NaN or inf in the data propagates to the result instead of being assumed away.
FASTMATH = frozenset({"nsz", "arcp", "contract", "reassoc"})

# Below this many multiply-adds a kernel runs on one thread. One thread does 2^20 of them in
# about 50 us; waking the thread pool costs tens of microseconds, and under load far more: a
# 32x128x64 forward call (2^18) took 443 us on 2 threads with another process busy, and a
# 4-5-3-3 loss call on 6 samples 31 ms, against 47 us on one thread.
PARALLEL_MIN_WORK = 1 << 20


def jit(parallel=False, inline=False):
    """Return the Numba decorator for a kernel (parallel) or a helper (inlined).

    Everything compiles lazily on first call and is cached on disk, so ``import nbbp`` compiles
    nothing. ``error_model="numpy"`` makes 1/0 give inf rather than raise.
    """
    options = dict(fastmath=set(FASTMATH), error_model="numpy", cache=True, nogil=True)
    if parallel:
        options["parallel"] = True
    if inline:
        options["inline"] = "always"
    return njit(**options)


# A kernel takes a last argument ``parallel``: True runs its outer loop as prange over threads,
# False as a plain loop, over one inlined body. One compiled function serves both, so a fit
# compiles and links each kernel once (a separate serial twin of every kernel cost 6 s of a
# 31 s first fit, and linking both into the epoch driver 8 s more).
kernel = jit(parallel=True)
helper = jit(inline=True)


def use_threads(work):
    """Whether a kernel call of ``work`` multiply-adds should run on the thread pool."""
    return work >= PARALLEL_MIN_WORK


@contextlib.contextmanager
def compile_lock():
    """Hold an exclusive lock shared by every nbbp process of this user while compiling.

    Numba's on-disk cache is not safe when two processes compile the same parallel function at
    once: both pick the same cache file number, one overwrites the other's code, and a later
    load calls into the wrong machine code and crashes (numba issues 4807 and 10128; seen here
    when two test runs compiled nbbp side by side). With the lock, the second process waits
    and then loads what the first one saved.
    """
    if fcntl is None:
        yield
        return
    path = os.path.join(tempfile.gettempdir(), f"nbbp-compile-{os.getuid()}.lock")
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
