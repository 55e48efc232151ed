"""Two processes that compile nbbp into one empty Numba cache at the same time both work, and so
does a later process that loads what they saved (Numba's cache alone is not safe for this:
numba issues 4807 and 10128; it crashed here when two test runs compiled side by side)."""

import subprocess
import sys

JOB = """
import sys
import numpy as np
import nbbp
X = np.random.default_rng(0).normal(size=(64, 5))
y = np.arange(64) % 3
history = nbbp.Network([5, 4, 3], dtype=np.float32).fit(X, y, epochs=2)
print(repr(history.loss[-1]))
"""


def test_concurrent_first_compiles_then_a_cached_load(tmp_path):
    env = {"NUMBA_CACHE_DIR": str(tmp_path / "numba-cache"), "PATH": "/usr/bin:/bin"}
    start = lambda: subprocess.Popen([sys.executable, "-c", JOB], env=env,  # noqa: E731
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first, second = start(), start()
    outputs = [p.communicate(timeout=600) for p in (first, second)]
    assert [first.returncode, second.returncode] == [0, 0], outputs
    later = start()
    out, err = later.communicate(timeout=600)
    assert later.returncode == 0, err
    # Same seed and data: the three processes trained the same network.
    assert outputs[0][0] == outputs[1][0] == out


def test_every_kernel_compiles_under_the_lock():
    import numba.core.dispatcher

    __import__("nbbp")  # loads every module

    kernels = {f"{name}.{attr}": obj
               for name, module in list(sys.modules.items()) if name.startswith("nbbp")
               for attr, obj in vars(module).items()
               if isinstance(obj, numba.core.dispatcher.Dispatcher)}
    assert len(kernels) >= 10
    unlocked = [name for name, k in kernels.items()
                if "_with_compile_lock" not in getattr(k.compile, "__qualname__", "")]
    assert unlocked == []


def test_a_failed_lock_acquisition_holds_nothing(monkeypatch):
    import threading

    from numba import njit

    from nbbp import _jit

    def fail(*args):
        raise OSError("simulated flock failure")

    with monkeypatch.context() as m:
        m.setattr(_jit.fcntl, "flock", fail)
        try:
            _jit.compile_lock.__enter__()
        except OSError:
            pass
        else:
            raise AssertionError("the simulated failure did not happen")
    assert _jit.compile_lock._depth == 0 and _jit.compile_lock._file is None
    compiled = []
    worker = threading.Thread(target=lambda: compiled.append(njit(lambda x: x + 1)(1)))
    worker.start()
    worker.join(60)
    assert compiled == [2]  # Numba's own compiler lock was released too
    with _jit.compile_lock:
        pass
