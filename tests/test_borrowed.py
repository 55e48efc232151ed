"""The epoch driver borrows its arrays (nbbp._simd.borrowed): its batch loop adds to no
reference count. Under NUMBA_DEBUG_NRT, Numba prints a line for every count it changes, so a fit
of three batches must print as many as a fit of one; before the driver borrowed, a 64-32-10
network counted about 200 times a batch, and this test's 8-16-3 one 180 (whole) and 53
(chunked)."""

import os
import subprocess
import sys

import pytest

# A float64 network: dense in whole batches of 32, dense in batches of 256 (a tiny network's
# are run in chunks of 128, passes.chunk_rows), with sample weights, or batch-normalised. The
# first fit compiles or loads the driver; the second is counted. Numba prints its counts from C:
# C's stdout is flushed at each marker, so that they fall between the markers they belong to.
SCRIPT = """
import ctypes, sys
import numpy as np
import nbbp
n_batches, batch, case = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
rng = np.random.default_rng(0)
n = n_batches * batch
X, y = rng.standard_normal((n, 8)), rng.integers(0, 3, size=n)
net = nbbp.Network((8, 16, 3), seed=0, batch_norm=case == "batch-normalised")
weight = rng.uniform(0.5, 2, size=n) if case == "weighted" else None
net.fit(X, y, epochs=1, batch_size=batch, shuffle=False, sample_weight=weight)
libc = ctypes.CDLL(None)
libc.fflush(None)
print("=== counting", flush=True)
net.fit(X, y, epochs=1, batch_size=batch, shuffle=False, sample_weight=weight)
libc.fflush(None)
print("=== done", flush=True)
"""


def counts(n_batches, batch, case):
    """(increfs, decrefs) printed by the second fit of SCRIPT."""
    # the compile helper off: a helper process's lines would mix with the counted fit's
    env = dict(os.environ, NUMBA_DEBUG_NRT="1", NBBP_COMPILE_HELPER="0")
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(n_batches), str(batch), case],
                            env=env, capture_output=True, text=True, timeout=900, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    counted = result.stdout.split("=== counting")[1].split("=== done")[0]
    return counted.count("NRT_Incref"), counted.count("NRT_Decref")


@pytest.mark.parametrize("batch, case", [(32, "dense"), (256, "dense"), (32, "weighted"),
                                         (32, "batch-normalised")],
                         ids=["whole", "chunked", "weighted", "batch-normalised"])
def test_the_epoch_driver_counts_no_reference_a_batch(batch, case):
    one = counts(1, batch, case)
    # the fit's own counts, outside the loop (Python's arrays into and out of the call), are
    # printed: the count is read, not missing
    assert one[1] > 0
    assert counts(3, batch, case) == one
