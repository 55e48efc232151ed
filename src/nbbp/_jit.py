"""The one place that sets Numba's options, so no kernel's flags can drift from another's."""

import os
import warnings

from numba import get_num_threads, njit, types
from numba.core.caching import FunctionCache, NullCache
from numba.core.compiler_lock import global_compiler_lock
from numba.core.errors import NumbaPerformanceWarning
from numba.extending import overload, register_jitable

from .host import host_profile

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
# (batch normalisation, packing delta's panels): below this many elements, one thread. Such a
# kernel streams each element a few times, so a second thread saves less than it costs until
# the array is large. On the Intel Xeon (AVX-512) of 2026-12, 64-byte aligned float32, the
# batch-normalisation forward at 128x256 (D1) took 40 us on 2 threads and 16 on 1, at 256x1024
# 119 against 221; D1 trained 6-8% faster with it serial than on 2 threads, and 5-7% faster
# with the backward serial too than on 2 threads (alternating pairs of runs). The cut-off of
# 2^14 before was measured on the AMD EPYC with older, column-indexed kernels.
PARALLEL_MIN_ELEMENTS = 1 << 18


def jit(parallel=False, inline=False, fastmath=True):
    """Return the Numba decorator for a kernel (parallel), a helper (inlined by Numba into its
    caller) or, with neither, a serial function compiled on its own (a driver, a ``part``).

    Everything compiles lazily on first call and is cached on disk, so ``import nbbp`` compiles
    nothing. ``error_model="numpy"`` makes 1/0 give inf rather than raise.
    """
    options = dict(fastmath=set(FASTMATH) if fastmath else False, error_model="numpy",
                   nogil=True)
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
    global _cache_warned  # noqa: PLW0603 - a once-per-process flag
    if not _cache_warned:
        _cache_warned = True
        warnings.warn(f"nbbp cannot use Numba's on-disk cache ({reason}); kernels will compile "
                      "in every process. Set NUMBA_CACHE_DIR to a writable directory to cache "
                      "them.", CacheWarning, stacklevel=2)


def _cached_if_possible(py_func, options):
    # njit(cache=True) gives the dispatcher Numba's FunctionCache; this gives it _LockedCache in
    # its place (Numba's Dispatcher.enable_caching, with the subclass). Numba looks for a
    # writable cache directory when the cache is made, that is at import, and raises
    # RuntimeError if none of NUMBA_CACHE_DIR, the package's __pycache__ and the user cache
    # directory can be written: a read-only install would not even import.
    dispatcher = njit(cache=False, **options)(py_func)
    if not hasattr(dispatcher, "enable_caching"):  # NUMBA_DISABLE_JIT: the function itself
        return dispatcher
    try:
        dispatcher._cache = _LockedCache(py_func)
    except RuntimeError as error:
        if "no locator available" not in str(error):
            raise
        _no_cache("no writable cache directory")
    return dispatcher


# A kernel takes an argument ``parallel``, its last but for a ``scratch`` buffer where it needs
# one (forward_layer, hidden_delta, weight_gradients): True runs its outer loop as prange over
# threads, False as a plain loop, over one body (inlined helpers, or calls of a ``part``). One
# compiled function serves both, so a fit compiles and links each kernel once (a separate serial
# twin of every kernel cost 6 s of a 31 s first fit, and linking both into the epoch driver 8 s
# more).
#
# ``parallel`` None is a third case: one thread, and the pool's loop not compiled at all. A
# kernel tests it as ``if parallel is not None and parallel:``, which Numba decides while it
# compiles where ``parallel`` is None (its own type: Numba prunes a branch on ``arg is None`` by
# the argument's type), so that specialisation has no parallel loop to lower. A caller that never
# uses the pool passes None: the epoch driver of a network too small for threads (pool_flag), and
# a call from Python under the cut-off. The specialisation for None compiled in 1.6 s against
# 3.9 s for forward_layer's for a bool (AMD EPYC Zen 3), so a tiny network's first fit compiles
# no parallel loop. It runs the same loop as False.
kernel = jit(parallel=True)
helper = jit(inline=True)
# A serial function compiled on its own: the epoch driver, a kernel with little work per sample
# (losses, the output delta), and a large block of a kernel's work (a tile or strip of a matrix
# product, a block of batch normalisation), called from the kernel's parallel and serial loops
# instead of inlined by Numba into each: 5 s less compile for the forward and gradient kernels,
# with their timings equal or better (the forward at 256x1024x1024: 3.9 -> 3.4 ms).
part = jit()
# A part whose sums keep their order (no fastmath): where two callers must get the same bits
# whatever code the compiler makes around it (passes.batch_weight).
ordered_part = jit(fastmath=False)
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


# The cut-offs are one function each, for Python and compiled callers alike: register_jitable
# runs them as Python, and inlines them into compiled code (integer comparisons: none of the
# factory's options bear on them).
@register_jitable
def use_threads(work):
    """Whether a matrix kernel's call of ``work`` multiply-adds runs on the thread pool (from
    Python and from compiled code alike)."""
    return work >= PARALLEL_MIN_WORK


def pool_flag(pool, parallel):
    """A kernel's ``parallel`` argument in the epoch driver: ``parallel`` (a bool decided per
    call) where ``pool`` is a bool (the network may train on threads), None where ``pool`` is
    None (it never does: each kernel's specialisation for None, which has no parallel loop, is
    the one compiled and called). Decided by type when the driver compiles."""
    return None if pool is None else parallel


@overload(pool_flag, inline="always")
def _pool_flag(pool, parallel):
    if isinstance(pool, types.NoneType):
        return lambda pool, parallel: None
    return lambda pool, parallel: parallel


@register_jitable
def use_threads_elementwise(n_elements):
    """Whether a kernel doing a few operations per element of an array of n_elements (batch
    normalisation, packing) runs on the thread pool."""
    return n_elements >= PARALLEL_MIN_ELEMENTS


def _open_lock_file(path):
    """The lock file at ``path``, opened (created if need be), or None where it cannot be."""
    if fcntl is None:
        return None
    try:
        return open(path, "a")
    except OSError:
        return None


def profile_key():
    """What a compiled kernel freezes of the host profile: the vector width and the register
    block, part of every cache entry's key (_LockedCache). Numba keys an entry on the CPU name
    and features and on the function's own bytecode, not on what the compiler read from other
    modules: an entry compiled under another rule for the blocks (12 rows where AVX-512 now
    has 8, from an earlier nbbp in a kept cache directory) would load, with its scratch sized
    for other blocks (an IndexError from a checked view). With the key it compiles anew."""
    p = host_profile()
    return ("nbbp host profile", p.vector_bytes, p.block_rows, p.block_vectors)


class _LockedCache(FunctionCache):
    """Numba's on-disk cache of one function, with a file lock per cache entry: a file beside
    the function's index in its cache directory (``<index>.nbi.lock``), flock'ed shared while
    a process loads an entry, and exclusive from a miss until the compiled entry is saved. Its
    entries' keys also hold profile_key().

    Numba's cache alone is not safe when two processes compile the same parallel function at
    once: both pick the same cache file number, one overwrites the other's code, and a later
    load calls into the wrong machine code and crashes (numba issues 4807 and 10128; it
    crashed here when two test runs compiled nbbp side by side). Under this lock a function is
    compiled by one process while the others wait for its entry and then load it, so processes
    starting together on an empty cache compile each function once. A process whose entries
    are in the cache never waits for a compile of another function, and processes with
    different cache directories never wait for each other. (An earlier lock, one file per
    user taken for every load as well, made a warm process's first fit take 23.7 s beside a
    cold compile in another cache directory.) Locks are taken in the order of the call graph
    (a function's lock before its callees'), which has no cycles, so processes cannot deadlock.
    """

    def __init__(self, py_func):
        super().__init__(py_func)
        self._path = os.path.join(self._cache_path, self._cache_file._index_name + ".lock")
        self._misses = []  # per miss, from load_overload to save_overload: the lock file or None

    def _index_key(self, sig, codegen):
        # Numba's load and save, and _warm._missing, all find an entry through this key
        return (*super()._index_key(sig, codegen), profile_key())

    def load_overload(self, sig, target_context):
        # Unlocked where this process compiles another signature of this function (it holds
        # the lock) or where no lock is to be had (no fcntl, or an unwritable directory).
        f = None if any(m is not None for m in self._misses) else _open_lock_file(self._path)
        if f is None:
            cres = super().load_overload(sig, target_context)
            if cres is None:
                self._misses.append(None)
            return cres
        keep = False
        try:
            fcntl.flock(f, fcntl.LOCK_SH)
            cres = super().load_overload(sig, target_context)
            if cres is None:
                fcntl.flock(f, fcntl.LOCK_EX)
                # another process may have compiled and saved it while this one waited
                cres = super().load_overload(sig, target_context)
                keep = cres is None
        finally:
            if keep:
                self._misses.append(f)
            else:
                f.close()  # closing the file releases its lock
        return cres

    def save_overload(self, sig, cres):
        depth = len(self._misses) - 1
        try:
            super().save_overload(sig, cres)
        finally:
            self.release_to(max(depth, 0))

    def release_to(self, depth):
        """Release the locks of the misses past the first ``depth`` (a compile that failed, or
        whose entry is saved)."""
        while len(self._misses) > depth:
            f = self._misses.pop()
            if f is not None:
                f.close()


_NO_PARALLEL_LOOP = "(?s).*no transformation for parallel execution was possible"


def _with_compile_lock(dispatcher):
    """Run the dispatcher's compiles under Numba's compiler lock, releasing its cache's entry
    locks (_LockedCache) if a compile fails. Numba calls
    ``dispatcher.compile`` only for a signature it has not loaded yet, so calls that find their
    machine code pay nothing."""
    unlocked = getattr(dispatcher, "compile", None)
    if unlocked is None:  # NUMBA_DISABLE_JIT: a plain Python function, nothing to compile
        return dispatcher

    def compile(sig):
        # Numba's own compiler lock, which its compile takes too: the cache's misses belong to
        # one thread at a time.
        with global_compiler_lock, warnings.catch_warnings():
            # a kernel's specialisation for parallel=None has, by design, no parallel loop,
            # which Numba would warn of for a function compiled parallel=True
            warnings.filterwarnings("ignore", _NO_PARALLEL_LOOP, NumbaPerformanceWarning)
            cache = dispatcher._cache
            depth = len(cache._misses) if isinstance(cache, _LockedCache) else 0
            try:
                return unlocked(sig)
            except OSError as error:
                # The cache directory became unwritable (or unreadable) after import: compile
                # without it. The machine code is kept if only the save failed.
                if isinstance(cache, _LockedCache):
                    cache.release_to(depth)
                if isinstance(dispatcher._cache, NullCache):
                    raise
                _no_cache(f"{type(error).__name__}: {error}")
                dispatcher._cache = NullCache()
                return unlocked(sig)
            finally:
                if isinstance(cache, _LockedCache):
                    cache.release_to(depth)

    dispatcher.compile = compile
    return dispatcher
