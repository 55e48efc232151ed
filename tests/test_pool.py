"""A kernel's ``parallel`` argument None (nbbp._jit): one thread, in a specialisation Numba
compiles without a parallel loop, and without Numba's warning that a parallel=True function has
none. (That None gives the reference's results, as False and True do, is in each kernel's
equivalence tests: the ``parallel`` fixture.)"""

import os
import subprocess
import sys

import numba
import numpy as np
import pytest
from numba.core.errors import NumbaPerformanceWarning

from nbbp._jit import FASTMATH
from nbbp.optimizers import SGD_CODE, optimizer_update


def test_none_compiles_no_parallel_loop_and_a_bool_does():
    # compiled afresh (cached code cannot be inspected), with the kernels' options
    fresh = numba.njit(parallel=True, fastmath=set(FASTMATH), error_model="numpy")(
        optimizer_update.py_func)
    dt = np.float32
    param, grad, state = np.ones(8, dt), np.ones(8, dt), np.zeros((0, 8), dt)
    # Numba warns of a parallel=True function with no parallel loop (nbbp's own dispatchers
    # silence it for these specialisations: the next test)
    with pytest.warns(NumbaPerformanceWarning, match="no transformation for parallel"):
        fresh(SGD_CODE, param, grad, dt(1), state, dt(0.5), dt(0), dt(0), dt(0), dt(0), 1, None)
    fresh(SGD_CODE, param, grad, dt(1), state, dt(0.5), dt(0), dt(0), dt(0), dt(0), 1, False)
    assert np.array_equal(param, np.zeros(8, dt))  # two steps of 0.5
    loops = {str(sig[-1]): "__numba_parfor_gufunc" in fresh.inspect_llvm(sig)
             for sig in fresh.signatures}
    assert loops == {"none": False, "bool": True}


# From an empty cache, with Numba's performance warnings as errors: the finite check's
# specialisation for None compiles (no parallel loop), and nothing warns.
NO_WARNING = """
import warnings
import numpy as np
from numba.core.errors import NumbaPerformanceWarning
warnings.simplefilter("error", NumbaPerformanceWarning)
from nbbp._validation import first_non_finite_row
X = np.zeros((3, 4), np.float32)
X[2, 1] = np.nan
print(first_non_finite_row(X, threads=False))
"""


def test_a_specialisation_for_none_compiles_without_a_warning(tmp_path):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", NO_WARNING], env=env, capture_output=True,
                            text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["2"]
