"""A first fit from an empty cache compiles the backward kernels in a helper process alongside
(nbbp._warm): the helper compiles exactly the signatures the epoch driver calls, the fit then
loads them instead of compiling them and trains the same network, and the helper stays out of
the way where it is turned off, of no use (nothing to compile, another helper at work, another
cache or CPU target than its parent's) or cannot start."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import COMPILE_LISTENER

from nbbp import Network, _warm

HELPER_KERNELS = ("nbbp.gradients.weight_gradients", "nbbp.deltas.hidden_delta",
                  "nbbp.optimizers.optimizer_update")

COLD_FIT = """
import inspect, json, sys
import numpy as np
from numba.core import event
import nbbp
from nbbp import _warm

""" + COMPILE_LISTENER + """

dtype = np.dtype(sys.argv[1])
X = np.random.default_rng(0).normal(size=(96, 5))
with event.install_listener("numba:compile", Compiles()):
    history = nbbp.Network([5, 4, 3], dtype=dtype).fit(X, np.arange(96) % 3, epochs=2,
                                                      optimizer="adam")
helper = _warm._helpers.get((dtype, False))
status = None if helper is None else helper.wait(timeout=600)
# the signatures the driver asked each backward kernel for, as it typed its calls
asked = [str(signature) in map(str, kernel.overloads)
         for kernel, signature in _warm.backward_kernels(dtype, False)]
# the types of every matrix kernel's ``parallel`` in what this process called: a network this
# small never trains on threads, so its driver calls the specialisations for None alone
from nbbp.forward import forward_layer
kernels = [forward_layer] + [kernel for kernel, _ in _warm.backward_kernels(dtype, False)]
parallels = sorted({str(sig[list(inspect.signature(kernel.py_func).parameters).index("parallel")])
                    for kernel in kernels for sig in kernel.overloads})
print(json.dumps([float(history.loss[-1]), compiled, status, asked, parallels]))
"""

# what a helper does, in this process: prints its exit status
AS_A_HELPER = """
import json, sys
from nbbp import _warm
kernels = _warm.backward_kernels(sys.argv[1], False)
print(_warm.main([sys.argv[1], "0", json.dumps(_warm._target(kernels[0][0]))]))
"""

# a process on a cache: how many backward kernels it finds missing, and whether it would start
# a helper
LOOKUP = """
import sys
from nbbp import _warm
missing = sum(_warm._missing(k, s) for k, s in _warm.backward_kernels(sys.argv[1], False))
print(missing, _warm.start(sys.argv[1], False))
"""


def _env(tmp_path, **extra):
    return {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba-cache"), **extra}


def _python(script, tmp_path, *args, **env):
    result = subprocess.run([sys.executable, "-c", script, *args], env=_env(tmp_path, **env),
                            capture_output=True, text=True, timeout=900, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def _fit_here(dtype):
    X = np.random.default_rng(0).normal(size=(96, 5))
    history = Network([5, 4, 3], dtype=np.dtype(dtype)).fit(X, np.arange(96) % 3, epochs=2,
                                                            optimizer="adam")
    return float(history.loss[-1])


def test_the_helper_compiles_the_signatures_a_fit_then_loads(tmp_path):
    # in turn, so that nothing depends on which process gets to a kernel first
    assert _python(LOOKUP, tmp_path, "float32", NBBP_COMPILE_HELPER="0").split() == ["3", "None"]
    assert _python(AS_A_HELPER, tmp_path, "float32").split() == ["0"]
    # the helper's entries are those the index lookup finds: a new process starts no helper
    assert _python(LOOKUP, tmp_path, "float32", NBBP_COMPILE_HELPER="1").split() == ["0", "None"]
    out = _python(COLD_FIT, tmp_path, "float32", NBBP_COMPILE_HELPER="0")
    loss, compiled, status, asked, parallels = json.loads(out)
    assert status is None  # no helper this time
    assert asked == [True, True, True]  # the driver called the helper's signatures
    assert parallels == ["none"]
    assert "nbbp.training.train_epoch" in compiled  # the rest of the cache was empty
    assert [name for name in HELPER_KERNELS if name in compiled] == []  # loaded, not compiled
    assert loss == _fit_here("float32")  # the same machine code as a fit in this process


def test_a_cold_fit_with_its_helper_alongside_trains_the_same(tmp_path):
    out = _python(COLD_FIT, tmp_path, "float64", NBBP_COMPILE_HELPER="1")
    loss, compiled, status, asked, parallels = json.loads(out)
    assert status == 0  # a helper ran, and ended well
    assert asked == [True, True, True]
    assert parallels == ["none"]
    assert "nbbp.training.train_epoch" in compiled
    own = [name for name in compiled if name.startswith("nbbp.") and "<locals>" not in name]
    assert sorted(own) == sorted(set(own))  # nbbp's functions, each compiled once here
    assert loss == _fit_here("float64")
    assert _python(LOOKUP, tmp_path, "float64", NBBP_COMPILE_HELPER="1").split() == ["0", "None"]


def test_no_helper_where_the_kernels_are_compiled_or_it_is_turned_off(monkeypatch):
    monkeypatch.setattr(_warm, "_settled", set())  # as in a new process
    monkeypatch.setattr(_warm, "_helpers", {})
    X = np.random.default_rng(0).normal(size=(40, 3))
    monkeypatch.setenv(_warm.ENVIRONMENT, "0")
    for dtype in (np.float32, np.float64):
        Network([3, 2], dtype=dtype).fit(X, np.arange(40) % 2, epochs=1)
        # compiled (or loaded) in this process: nothing for a helper to do
        assert not any(_warm._missing(k, s) for k, s in _warm.backward_kernels(dtype, False))
        monkeypatch.setenv(_warm.ENVIRONMENT, "1")
        assert _warm.start(dtype, False) is None
        monkeypatch.setenv(_warm.ENVIRONMENT, "0")


@pytest.mark.parametrize("value", ["yes", "2", " 1"])
def test_a_bad_setting_is_refused_and_the_network_is_unchanged(monkeypatch, value):
    net = Network([3, 2], seed=1)
    before = [W.copy() for W in net.weights]
    monkeypatch.setenv(_warm.ENVIRONMENT, value)
    with pytest.raises(ValueError, match=f"NBBP_COMPILE_HELPER={value!r}: set it to 0"):
        net.fit(np.ones((4, 3)), [0, 1, 0, 1], epochs=1, batch_size=4)
    assert all(np.array_equal(W, old) for W, old in zip(net.weights, before, strict=True))
    assert net.history is None


WANTED_ON_ONE_CPU = """
import os
os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
from nbbp import _warm
print(_warm._wanted())
"""


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity here")
@pytest.mark.parametrize("value, wanted", [(None, "False"), ("1", "True"), ("0", "False")])
def test_one_cpu_starts_no_helper_unless_told(tmp_path, value, wanted):
    env = _env(tmp_path)
    env.pop(_warm.ENVIRONMENT, None)
    if value is not None:
        env[_warm.ENVIRONMENT] = value
    result = subprocess.run([sys.executable, "-c", WANTED_ON_ONE_CPU], env=env,
                            capture_output=True, text=True, timeout=300, check=True)
    assert result.stdout.strip() == wanted


# a helper started while another holds the dtype's helper lock, or with another parent's target
SECOND = """
import fcntl, json, os, subprocess, sys
from nbbp import _warm
kernels = _warm.backward_kernels("float32", False)
directory, target = kernels[0][0]._cache._cache_path, _warm._target(kernels[0][0])
lock = open(os.path.join(directory, "nbbp-compile-helper-float32-0.lock"), "a")
fcntl.flock(lock, fcntl.LOCK_EX)  # as a helper at work would
other = ["elsewhere", target[1]] if sys.argv[1] == "directory" else target
if sys.argv[1] == "cpu":
    other = [directory, ["x86_64-unknown-linux-gnu", "haswell", ""]]
helper = subprocess.run([sys.executable, "-c", _warm._HELPER, json.dumps(sys.path), "float32",
                         "0", json.dumps(other)], timeout=300)
print(helper.returncode, sum(_warm._missing(k, s) for k, s in kernels))
"""


@pytest.mark.parametrize("case, status", [("held", "0"), ("directory", "3"), ("cpu", "3")])
def test_a_helper_that_would_be_of_no_use_leaves_at_once(tmp_path, case, status):
    # another helper at work on this cache, or a cache directory or CPU target not its parent's
    assert _python(SECOND, tmp_path, case).split() == [status, "3"]  # nothing compiled


NO_INTERPRETER = """
import sys
import numpy as np
from nbbp import _warm
{setting}
missing = sum(_warm._missing(k, s) for k, s in _warm.backward_kernels(np.float32, False))
print(_warm.start(np.float32, False), missing)
"""


PATH_OBJECTS = """
import pathlib, sys
import numpy as np
from nbbp import _warm
sys.path.append(pathlib.Path("/nonexistent"))  # a program's own, not a string
helper = _warm.start(np.float32, False)
status = helper.wait(timeout=600)
print(status, sum(_warm._missing(k, s) for k, s in _warm.backward_kernels("float32", False)))
"""


def test_a_helper_starts_with_paths_that_are_not_strings_on_sys_path(tmp_path):
    assert _python(PATH_OBJECTS, tmp_path, NBBP_COMPILE_HELPER="1").split() == ["0", "0"]


@pytest.mark.parametrize("setting", ['sys.executable = "/nonexistent/python"',
                                     "sys.executable = None",
                                     'sys.executable = "/usr/bin/uwsgi"  # Python embedded',
                                     "sys.frozen = True  # as PyInstaller sets it"])
def test_no_helper_without_an_interpreter_to_start(tmp_path, setting):
    out = _python(NO_INTERPRETER.format(setting=setting), tmp_path, NBBP_COMPILE_HELPER="1")
    assert out.split() == ["None", "3"]  # nothing started, nothing compiled


@pytest.mark.parametrize("sizes, batch_size, threaded", [
    ([5, 4, 3], 32, False),  # 32 x 32 multiply-adds a batch: one thread
    ([512, 512, 2], 4, True),  # 4 x 263,168: over the cut-off of 2^20
])
def test_a_fit_starts_the_helper_for_the_kernels_its_driver_calls(monkeypatch, sizes, batch_size,
                                                                    threaded):
    calls = []
    real_start = _warm.start

    def spy(dtype, threaded):  # records, then runs the real start (which the setting stops)
        calls.append((np.dtype(dtype), threaded))
        return real_start(dtype, threaded)

    monkeypatch.setattr(_warm, "start", spy)
    monkeypatch.setenv(_warm.ENVIRONMENT, "0")
    X = np.random.default_rng(0).normal(size=(batch_size, sizes[0]))
    Network(sizes, dtype=np.float32).fit(X, np.arange(batch_size) % sizes[-1], epochs=1,
                                         batch_size=batch_size)
    assert calls == [(np.dtype(np.float32), threaded)]
