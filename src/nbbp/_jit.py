"""The one place that sets Numba's options, so no kernel's flags can drift from another's."""

import types

from numba import njit

# Reassociation and contraction let LLVM vectorise the j-sums; nnan and ninf stay off so that a
# NaN or inf in the data propagates to the result instead of being assumed away.
FASTMATH = frozenset({"nsz", "arcp", "contract", "reassoc"})

# Below this many multiply-adds a call runs on one thread. One thread does 2^20 of them in about
# 50 us; waking the thread pool costs tens of microseconds, and under load far more: a 4-5-3-3
# loss call on 6 samples took 31 ms with two busy OpenMP threads on a loaded 2-core machine, and
# 47 us on one thread. A 32x128x64 forward call (2^18) took 443 us on 2 threads under load.
PARALLEL_MIN_WORK = 1 << 20


def jit(parallel=False, inline=False):
    """Return the Numba decorator for a kernel variant or a scalar/row helper.

    Everything compiles lazily on first call and is cached on disk, so ``import nbbp`` compiles
    nothing. ``error_model="numpy"`` makes 1/0 give inf rather than raise.
    """
    options = dict(fastmath=set(FASTMATH), error_model="numpy", cache=True, nogil=True)
    if parallel:
        options["parallel"] = True
    if inline:
        options["inline"] = "always"
    return njit(**options)


helper = jit(inline=True)


class Kernel:
    """A kernel compiled twice from one function: ``parallel`` (prange over threads) and
    ``serial`` (prange as range). Calling it picks ``serial`` when ``work(*args)`` is below
    PARALLEL_MIN_WORK. Both variants compute every element with the same loop body, so the
    choice, like the thread count, never changes a result."""

    def __init__(self, py_func, work):
        self.py_func = py_func
        self.work = work
        self.parallel = jit(parallel=True)(py_func)
        # Numba names cache files after the function's qualname: a renamed clone keeps the
        # serial variant's cache entries apart from the parallel one's.
        self.serial = jit(parallel=False)(_renamed(py_func, "_serial"))
        self.__doc__ = py_func.__doc__
        self.__name__ = py_func.__name__

    def __call__(self, *args):
        if self.work(*args) < PARALLEL_MIN_WORK:
            return self.serial(*args)
        return self.parallel(*args)

    def __repr__(self):
        return f"<nbbp kernel {self.__name__}>"


def _renamed(fn, suffix):
    clone = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + suffix,
                               fn.__defaults__, fn.__closure__)
    clone.__qualname__ = fn.__qualname__ + suffix
    clone.__module__ = fn.__module__
    return clone


def kernel(work):
    """Decorate a kernel; ``work(*args)`` estimates its multiply-adds for the serial cut-off."""
    return lambda py_func: Kernel(py_func, work)
