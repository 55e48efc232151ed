"""The one place that sets Numba's options, so no kernel's flags can drift from another's."""

import os
import tempfile
import threading
import warnings

from numba import get_num_threads, njit
from numba.core.caching import NullCache
from numba.core.compiler_lock import global_compiler_lock

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; first compiles are not serialised there
    fcntl = None  # type: ignore[assignment]

# Reassociation and contraction let LLVM vectorise the j-sums; nnan and ninf stay off so that a
# NaN or inf in the data propagates to the result instead of being assumed away.
FASTMATH = frozenset({"nsz", "arcp", "contract", "reassoc"})

# Below this many multiply-adds a kernel runs on one thread. One thread does 2^20 of them in
# about 50 us; waking the thread pool costs tens of microseconds, and under load far more: a
# 32x128x64 forward call (2^18) took 443 us on 2 threads with another process busy, and a
# 4-5-3-3 loss call on 6 samples 31 ms, against 47 us on one thread.
PARALLEL_MIN_WORK = 1 << 20

# The cut-off for kernels doing a few operations per element of an (n_samples, width) array
# (batch normalisation): below this many elements, one thread. Lower than
# the above because the epoch driver calls them between parallel matrix kernels, while the pool
# is awake: at 128x256 float32 (D1), 2 threads against 1 took the batch-normalisation overhead
# of a forward and backward pass from 1.33 to 0.98 ms.
PARALLEL_MIN_ELEMENTS = 1 << 14


def jit(parallel=False, inline=False):
    """Return the Numba decorator for a kernel (parallel), a helper (inlined by Numba into its
    caller) or, with neither, a serial function compiled on its own (a driver, a ``part``).

    Everything compiles lazily on first call and is cached on disk, so ``import nbbp`` compiles
    nothing. ``error_model="numpy"`` makes 1/0 give inf rather than raise.
    """
    options = dict(fastmath=set(FASTMATH), error_model="numpy", nogil=True)
    if parallel:
        options["parallel"] = True
    if inline:
        options["inline"] = "always"
    return lambda py_func: _with_compile_lock(_cached_if_possible(py_func, options))


class CacheWarning(UserWarning):
    """Numba's on-disk cache cannot be written: nbbp compiles its kernels in every process."""


_cache_warned = False


def _no_cache(reason):
    """Warn, once per process, that kernels will not be cached."""
    global _cache_warned
    if not _cache_warned:
        _cache_warned = True
        warnings.warn(f"nbbp cannot use Numba's on-disk cache ({reason}); kernels will compile "
                      "in every process. Set NUMBA_CACHE_DIR to a writable directory to cache "
                      "them.", CacheWarning, stacklevel=2)


def _cached_if_possible(py_func, options):
    # Numba looks for a writable cache directory when the function is decorated, that is at
    # import, and raises RuntimeError if none of NUMBA_CACHE_DIR, the package's __pycache__ and
    # the user cache directory can be written: a read-only install would not even import.
    try:
        return njit(cache=True, **options)(py_func)
    except RuntimeError as error:
        if "no locator available" not in str(error):
            raise
        _no_cache("no writable cache directory")
        return njit(cache=False, **options)(py_func)


# A kernel takes a last argument ``parallel``: True runs its outer loop as prange over threads,
# False as a plain loop, over one body (inlined helpers, or calls of a ``part``). One compiled
# function serves both, so a fit compiles and links each kernel once (a separate serial twin of
# every kernel cost 6 s of a 31 s first fit, and linking both into the epoch driver 8 s more).
kernel = jit(parallel=True)
helper = jit(inline=True)
# A large block of a kernel's work (a tile or strip of a matrix product, a block of batch
# normalisation) is compiled once as a function of its own, called from the kernel's parallel
# and serial loops, instead of inlined by Numba into each: 5 s less compile for the forward and
# gradient kernels, with their timings equal or better (the forward at 256x1024x1024: 3.9 ->
# 3.4 ms).
part = jit()
# A part called from a prange loop takes the loop's index as np.int64(index): Numba types a
# prange index as uint64, and a part called with uint64 from the parallel loop and int64 from
# the serial one was compiled twice (3 parts, about 0.8 s of a first fit). Likewise a literal
# argument (a 0 for the first row) types as Literal[int] and compiles a specialisation of its
# own: pass np.int64(0).


def start_thread_pool():
    """Start Numba's thread pool (once per process; later calls do nothing).

    Call before a serial compiled function that calls parallel kernels, such as the epoch
    driver. Numba records, in the cache entry of each parallel function, a hook that starts the
    pool when the entry is loaded; a caller inherits the hook only from callees compiled in the
    same process. A driver compiled in a process that loaded every parallel kernel it calls from
    the cache is saved without it, and the next process to load that driver called into a pool
    that was never started: a segfault (a network with batch normalisation fitted, then a dense
    one in a second process and a third; or any edit of training.py alone).
    """
    get_num_threads()


def use_threads(work):
    """Whether a kernel call of ``work`` multiply-adds should run on the thread pool."""
    return work >= PARALLEL_MIN_WORK


class _CompileLock:
    """An exclusive lock, shared by every nbbp process of this user, held while Numba loads a
    kernel from its on-disk cache or compiles and saves one.

    Numba's cache is not safe when two processes compile the same parallel function at once:
    both pick the same cache file number, one overwrites the other's code, and a later load
    calls into the wrong machine code and crashes (numba issues 4807 and 10128; it crashed here
    when two test runs compiled nbbp side by side). Re-entrant within a process, since compiling
    the epoch driver compiles the kernels it calls.
    """

    def __init__(self):
        self._rlock = threading.RLock()
        self._depth = 0
        self._file = None

    def __enter__(self):
        # Numba's own compiler lock first, as a compile that Numba starts (of a function that
        # calls an nbbp kernel) already holds it: one order, no deadlock between threads.
        global_compiler_lock.acquire()
        try:
            self._rlock.acquire()
            try:
                if self._depth == 0 and fcntl is not None:
                    self._file = self._locked_file()
                self._depth += 1
            except BaseException:  # a failed open or flock (Ctrl-C while waiting) holds nothing
                self._rlock.release()
                raise
        except BaseException:
            global_compiler_lock.release()
            raise
        return self

    @staticmethod
    def _locked_file():
        try:
            path = os.path.join(tempfile.gettempdir(), f"nbbp-compile-{os.getuid()}.lock")
            f = open(path, "a")
        except OSError:
            # No writable temporary directory: compile unserialised rather than not at all.
            return None
        try:
            fcntl.flock(f, fcntl.LOCK_EX)
        except BaseException:
            f.close()
            raise
        return f

    def __exit__(self, *exc):
        try:
            self._depth -= 1
            if self._depth == 0 and self._file is not None:
                try:
                    fcntl.flock(self._file, fcntl.LOCK_UN)
                finally:
                    self._file.close()
                    self._file = None
        finally:
            self._rlock.release()
            global_compiler_lock.release()


compile_lock = _CompileLock()


def _with_compile_lock(dispatcher):
    """Route the dispatcher's compile (cache load, or compile and save) through compile_lock.
    Numba calls ``dispatcher.compile`` only for a signature it has not loaded yet, so calls
    that find their machine code pay nothing."""
    unlocked = getattr(dispatcher, "compile", None)
    if unlocked is None:  # NUMBA_DISABLE_JIT: a plain Python function, nothing to compile
        return dispatcher

    def compile(sig):
        with compile_lock:
            try:
                return unlocked(sig)
            except OSError as error:
                # The cache directory became unwritable (or unreadable) after import: compile
                # without it. The machine code is kept if only the save failed.
                if isinstance(dispatcher._cache, NullCache):
                    raise
                _no_cache(f"{type(error).__name__}: {error}")
                dispatcher._cache = NullCache()
                return unlocked(sig)

    dispatcher.compile = compile
    return dispatcher
