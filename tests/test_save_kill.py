"""Killing a process in the middle of save leaves a whole file behind: the previous network or
the new one, never a torn mix."""

import os
import signal
import subprocess
import sys
import time

import numpy as np

import nbbp

CHILD = """
import sys
import numpy as np
import nbbp
path = sys.argv[1]
nets = [nbbp.Network([200, 300, 10], seed=s) for s in (1, 2)]   # about 0.5 MB each
nets[0].save(path)
print("saved", flush=True)
i = 0
while True:
    nets[i % 2].save(path)
    i += 1
"""


def test_kill_during_save_leaves_the_old_or_the_new_file(tmp_path):
    path = tmp_path / "model.npz"
    expected = [nbbp.Network([200, 300, 10], seed=s)._theta for s in (1, 2)]
    for delay in (0.0, 0.003, 0.011, 0.029, 0.07):
        with subprocess.Popen([sys.executable, "-c", CHILD, str(path)],
                              stdout=subprocess.PIPE, text=True) as child:
            try:
                assert child.stdout.readline().strip() == "saved"
                time.sleep(delay)
                os.kill(child.pid, signal.SIGKILL)
            finally:
                child.kill()
        loaded = nbbp.load(path)._theta
        assert any(np.array_equal(loaded, theta) for theta in expected)
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "model.npz"]
    assert all(name.startswith(".nbbp-") for name in leftovers)  # a killed write's temp file
