"""The epoch driver borrows its arrays (nbbp._simd.borrowed): its batch loop adds to no
reference count. Under NUMBA_DEBUG_NRT, Numba prints a line for every count it changes, so a fit
of three batches must print as many as a fit of one; before the driver borrowed, W1's network
counted about 200 times a batch."""

import os
import subprocess
import sys

import pytest

# A dense float64 network, whole batches of 32 or a tiny one's batches of 256 in chunks of 128
# (passes.chunk_rows); the first fit compiles or loads the driver, the second is counted.
SCRIPT = """
import sys
import numpy as np
import nbbp
n_batches, batch = int(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(0)
X = rng.standard_normal((n_batches * batch, 8))
y = rng.integers(0, 3, size=n_batches * batch)
net = nbbp.Network((8, 16, 3), seed=0)
net.fit(X, y, epochs=1, batch_size=batch, shuffle=False)
print("=== counting", flush=True)
net.fit(X, y, epochs=1, batch_size=batch, shuffle=False)
print("=== done", flush=True)
"""


def counts(n_batches, batch):
    """(increfs, decrefs) printed by the second fit of SCRIPT."""
    # the compile helper off: a helper process's lines would mix with the counted fit's
    env = dict(os.environ, NUMBA_DEBUG_NRT="1", NBBP_COMPILE_HELPER="0")
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(n_batches), str(batch)],
                            env=env, capture_output=True, text=True, timeout=900, check=True)
    counted = result.stdout.split("=== counting")[1].split("=== done")[0]
    return counted.count("NRT_Incref"), counted.count("NRT_Decref")


@pytest.mark.parametrize("batch", [32, 256], ids=["whole", "chunked"])
def test_the_epoch_driver_counts_no_reference_a_batch(batch):
    assert counts(3, batch) == counts(1, batch)
