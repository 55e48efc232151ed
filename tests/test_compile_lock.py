"""Two processes that compile nbbp into one empty Numba cache at the same time both work, and so
does a later process that loads what they saved (Numba's cache alone is not safe for this:
numba issues 4807 and 10128; it crashed here when two test runs compiled side by side). Four
such processes compile each function once between them, and a process whose kernels are
cached never waits for a compile in another cache directory."""

import subprocess
import sys
import time

import numpy as np
from conftest import COMPILE_LISTENER

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


def test_every_kernel_has_its_cache_entries_locked():
    import numba.core.dispatcher

    __import__("nbbp")  # loads every module
    from nbbp._jit import _LockedCache

    kernels = {f"{name}.{attr}": obj
               for name, module in list(sys.modules.items()) if name.startswith("nbbp")
               for attr, obj in vars(module).items()
               if isinstance(obj, numba.core.dispatcher.Dispatcher)}
    assert len(kernels) >= 10
    unlocked = [name for name, k in kernels.items()
                if "_with_compile_lock" not in getattr(k.compile, "__qualname__", "")
                or not isinstance(k._cache, _LockedCache)]
    assert unlocked == []


def test_a_failed_compile_releases_its_entry_lock(tmp_path, monkeypatch):
    import fcntl

    import numba
    from numba.core.errors import TypingError

    from nbbp import _jit

    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(numba.config, "CACHE_DIR", str(tmp_path))

    def needs_an_array(a):
        return a[0] + 1

    needs_an_array.__module__ = "nbbp_lock_test"  # a cache entry of its own
    kernel = _jit.jit()(needs_an_array)
    assert isinstance(kernel._cache, _jit._LockedCache)
    try:
        kernel(1.5)  # a typing error: compiled after a miss, never saved
    except TypingError:
        pass
    else:
        raise AssertionError("the typing error did not happen")
    assert kernel._cache._misses == []
    with open(kernel._cache._path, "a") as f:  # no one holds the entry's lock any more
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    assert kernel(np.arange(3.0)) == 1.0  # and the next compile takes and releases it
    assert kernel._cache._misses == []


COLD_THEN_SIGNAL = """
import sys, time
import numpy as np
import nbbp
print("compiling", flush=True)
X = np.random.default_rng(0).normal(size=(64, 5))
nbbp.Network([5, 4, 3]).fit(X, np.arange(64) % 3, epochs=1)
print("done", flush=True)
"""

TIMED_FIT = """
import time
import numpy as np
import nbbp
X = np.random.default_rng(0).normal(size=(64, 5))
start = time.perf_counter()
nbbp.Network([5, 4, 3]).fit(X, np.arange(64) % 3, epochs=1)
print(time.perf_counter() - start)
"""


def _env(cache):
    # one process each: no compile helper (nbbp._warm; tests/test_warm.py)
    return {"NUMBA_CACHE_DIR": str(cache), "PATH": "/usr/bin:/bin", "NBBP_COMPILE_HELPER": "0"}


def test_a_warm_process_does_not_wait_for_a_cold_compile_elsewhere(tmp_path):
    warm = tmp_path / "warm"
    subprocess.run([sys.executable, "-c", TIMED_FIT], env=_env(warm), check=True,
                   capture_output=True, timeout=600)
    cold = subprocess.Popen([sys.executable, "-c", COLD_THEN_SIGNAL], env=_env(tmp_path / "cold"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert cold.stdout.readline().strip() == "compiling"
        time.sleep(1.0)  # well into its compile (about 14 s from an empty cache)
        timed = subprocess.run([sys.executable, "-c", TIMED_FIT], env=_env(warm), check=True,
                               capture_output=True, text=True, timeout=600)
        assert cold.poll() is None, "the cold compile ended before the warm fit: nothing shown"
        assert float(timed.stdout) <= 2.0
    finally:
        # the rest of the cold compile shows nothing more (two cold processes side by side:
        # test_concurrent_first_compiles_then_a_cached_load), and would take a core for half
        # a minute
        cold.kill()
        cold.communicate(timeout=600)


COUNT_COMPILES = """
import json
import numpy as np
from numba.core import event
import nbbp

""" + COMPILE_LISTENER + """

X = np.random.default_rng(0).normal(size=(64, 5))
with event.install_listener("numba:compile", Compiles()):
    history = nbbp.Network([5, 4, 3], dtype=np.float32).fit(X, np.arange(64) % 3, epochs=2)
print(json.dumps([history.loss[-1], compiled]))
"""


def test_processes_starting_together_on_an_empty_cache_compile_each_function_once(tmp_path):
    import json

    procs = [subprocess.Popen([sys.executable, "-c", COUNT_COMPILES], env=_env(tmp_path / "c"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    outputs = [p.communicate(timeout=900) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, outputs
    results = [json.loads(out) for out, _ in outputs]
    assert len({loss for loss, _ in results}) == 1  # the same network, trained the same way
    # nbbp's own cached functions (not Numba's per-process overload helpers)
    compiled = [name for _, names in results for name in names
                if name.startswith("nbbp.") and "<locals>" not in name]
    assert compiled, "nothing was compiled: the cache was not empty"
    assert sorted(compiled) == sorted(set(compiled)), [n for n in set(compiled)
                                                       if compiled.count(n) > 1]


# The kernels of a backward pass, called from Python (no epoch driver): forward, delta rule,
# gradients and loss.
COUNT_KERNEL_COMPILES = """
import json
import numpy as np
from numba.core import event
import nbbp
""" + COMPILE_LISTENER + """
X = np.random.default_rng(0).normal(size=(64, 5))
with event.install_listener("numba:compile", Compiles()):
    dW, _ = nbbp.Network([5, 4, 3], dtype=np.float32).gradients(X, np.arange(64) % 3)
print(json.dumps([float(dW[0].sum()), compiled]))
"""

# A process whose register blocks follow another rule (12 rows where the host has 8, as nbbp
# before 8-row blocks on x86), sharing the cache directory.
OTHER_BLOCKS = """
import nbbp.host
rows = nbbp.host.host_profile().block_rows
nbbp.host.HostProfile.block_rows = property(lambda self: 12 if rows != 12 else 8)
"""


def test_an_entry_compiled_for_other_register_blocks_is_compiled_anew(tmp_path):
    # The kernels freeze the register block in; Numba keys an entry on the CPU and the
    # function's bytecode only, so without nbbp's key (_jit.profile_key) the second process
    # would load the first's kernels and size their scratch for its own blocks: an IndexError.
    import json

    env = _env(tmp_path / "c")
    first = subprocess.run([sys.executable, "-c", OTHER_BLOCKS + COUNT_KERNEL_COMPILES], env=env,
                           capture_output=True, text=True, timeout=900, check=False)
    assert first.returncode == 0, first.stderr[-3000:]
    second = subprocess.run([sys.executable, "-c", COUNT_KERNEL_COMPILES], env=env,
                            capture_output=True, text=True, timeout=900, check=False)
    assert second.returncode == 0, second.stderr[-3000:]
    _, compiled = json.loads(second.stdout)
    for kernel in ("forward.forward_layer", "gradients.weight_gradients", "deltas.hidden_delta"):
        assert f"nbbp.{kernel}" in compiled
    third = subprocess.run([sys.executable, "-c", COUNT_KERNEL_COMPILES], env=env,
                           capture_output=True, text=True, timeout=900, check=False)
    assert third.returncode == 0, third.stderr[-3000:]
    assert not [name for name in json.loads(third.stdout)[1] if name.startswith("nbbp.")]
