"""The one place that sets Numba's options, so no kernel's flags can drift from another's."""

from numba import njit

# Reassociation and contraction let LLVM vectorise the j-sums; nnan and ninf stay off so that a
# NaN or inf in the data propagates to the result instead of being assumed away.
FASTMATH = frozenset({"nsz", "arcp", "contract", "reassoc"})


def jit(parallel=False, inline=False):
    """Return the decorator for an nbbp kernel (parallel) or a scalar/row helper (inlined).

    Every function is compiled lazily on its first call and cached on disk, so ``import nbbp``
    compiles nothing. ``error_model="numpy"`` makes 1/0 give inf rather than raise.
    """
    options = dict(fastmath=set(FASTMATH), error_model="numpy", cache=True, nogil=True)
    if parallel:
        options["parallel"] = True
    if inline:
        options["inline"] = "always"
    return njit(**options)


kernel = jit(parallel=True)
helper = jit(inline=True)
