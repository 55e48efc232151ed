"""The compiled kernels index only what they own: the equivalence tests pass again with Numba's
bounds checking on (an out-of-bounds index raises IndexError instead of reading stray memory),
and the kernels run as plain Python under NUMBA_DISABLE_JIT with the same results."""

import os
import pathlib
import subprocess
import sys

TESTS = pathlib.Path(__file__).parent


def run(args, tmp_path, **env):
    full_env = dict(os.environ, **{"NUMBA_CACHE_DIR": str(tmp_path / "numba-cache"), **env})
    return subprocess.run([sys.executable, *args], env=full_env, capture_output=True, text=True,
                          timeout=900, cwd=TESTS.parent, check=False)


def test_kernel_equivalence_tests_pass_with_bounds_checking(tmp_path):
    files = ["test_forward.py", "test_deltas.py", "test_gradients.py", "test_losses.py",
             "test_optimizers.py", "test_activations.py",
             # the kernel tests of these two files, not their networks (the epoch driver would
             # compile once more, with bounds checks)
             "test_batchnorm.py::test_batchnorm_train_equals_reference",
             "test_batchnorm.py::test_forward_normalised_equals_the_two_kernels_and_ignores_threads",
             "test_batchnorm.py::test_batchnorm_inference_equals_reference",
             "test_batchnorm.py::test_batchnorm_backward_equals_reference",
             "test_residual.py::test_add_skip_and_activate_equals_reference",
             "test_residual.py::test_residual_delta_equals_reference"]
    result = run(["-m", "pytest", "-q", "-p", "no:cacheprovider", *(str(TESTS / f) for f in files)],
                 tmp_path, NUMBA_BOUNDSCHECK="1")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert " passed" in result.stdout


NO_JIT = """
import numpy as np
import nbbp
from nbbp import reference
rng = np.random.default_rng(0)
mask = rng.integers(0, 2, size=(5, 4))
net = nbbp.Network([4, 5, 3, 2], activation=["tanh", "relu"], output="softmax", seed=1,
                   masks=[mask, None, None], bias=[True, False, True])
X, y = rng.normal(size=(9, 4)), rng.integers(0, 2, size=9)
Y = np.eye(2)[y]
activations = ["tanh", "relu", "softmax"]
zs, a_list = reference.forward(list(net.weights), list(net.biases), X, activations)
assert np.allclose(net.forward(X), a_list[-1], rtol=1e-12, atol=1e-14)
dW, db = net.gradients(X, y)
dW_ref, db_ref = reference.backprop(list(net.weights), list(net.biases), list(net.masks), X, Y,
                                    activations, "cross_entropy")
for l in range(3):
    assert np.allclose(dW[l], dW_ref[l], rtol=1e-12, atol=1e-14)
W_ref, b_ref, losses = reference.train(list(net.weights), list(net.biases), list(net.masks), X, Y,
                                       activations, "cross_entropy", epochs=2, batch_size=4,
                                       learning_rate=0.1, optimizer="adam", l2=0.01)
history = net.fit(X, y, epochs=2, batch_size=4, learning_rate=0.1, optimizer="adam", l2=0.01,
                  shuffle=False)
for l in range(3):
    assert np.allclose(net.weights[l], W_ref[l], rtol=1e-10, atol=1e-12)
assert np.allclose(history.loss, losses, rtol=1e-10)
print("plain python ok")
"""


def test_kernels_run_as_plain_python(tmp_path):
    result = run(["-c", NO_JIT], tmp_path, NUMBA_DISABLE_JIT="1")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "plain python ok"


TRAIN_COUNTING_WARNINGS = """
import warnings
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as caught:
    import numpy as np
    import nbbp
    import nbbp.datasets
    {after_import}
    X, y = nbbp.datasets.xor()
    net = nbbp.Network([2, 8, 1], activation="tanh", output="sigmoid", loss="log_loss", seed=0)
    {train}
    net2 = nbbp.Network([2, 8, 1], activation="tanh", output="sigmoid", loss="log_loss", seed=0)
    net2.fit(X, y, epochs=200, batch_size=4, learning_rate=0.5, optimizer="adam")
print(nbbp.__file__)
print(np.max(np.abs(net.forward(X)[:, 0] - y)), net2.score(X, y))
for w in caught:
    print("WARNING", w.category.__name__, w.message)
"""


def blocked_path(tmp_path, name):
    """A path that nobody, root included, can create: its parent is a regular file."""
    (tmp_path / "a-file").write_text("")
    return tmp_path / "a-file" / name


def test_imports_and_trains_without_a_writable_cache(tmp_path):
    # A copy of nbbp whose __pycache__ is a file, with NUMBA_CACHE_DIR and the user cache
    # directory under a file: every place Numba could cache in is unwritable, even for root.
    package = tmp_path / "site" / "nbbp"
    package.mkdir(parents=True)
    for source in (TESTS.parent / "src" / "nbbp").glob("*.py"):
        (package / source.name).write_text(source.read_text())
    (package / "__pycache__").write_text("")
    script = TRAIN_COUNTING_WARNINGS.format(
        after_import="",
        train="net.fit(X, y, epochs=300, batch_size=4, learning_rate=0.5, optimizer='adam')")
    result = run(["-c", script], tmp_path, NUMBA_CACHE_DIR=str(blocked_path(tmp_path, "numba")),
                 XDG_CACHE_HOME=str(blocked_path(tmp_path, "xdg")),
                 PYTHONPATH=str(package.parent))
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[0] == str(package / "__init__.py")
    max_error, accuracy = map(float, lines[1].split())
    assert max_error < 0.1
    assert accuracy == 1.0
    warned = [line for line in lines[2:] if line.startswith("WARNING")]
    assert len(warned) == 1, lines
    assert warned[0].startswith("WARNING CacheWarning"), lines
    assert "no writable cache directory" in warned[0]
    assert list(package.glob("*.nb?")) == []


def test_a_cache_directory_lost_after_import_falls_back_to_compiling(tmp_path):
    # The cache directory is fine at import, then replaced by a file: loading and saving
    # kernels fail with OSError, and nbbp compiles without the cache, warning once.
    cache = tmp_path / "numba-cache"
    after_import = ("import shutil; shutil.rmtree(nbbp_cache, ignore_errors=True); "
                    "open(nbbp_cache, 'w').close()")
    script = f"nbbp_cache = {str(cache)!r}\n" + TRAIN_COUNTING_WARNINGS.format(
        after_import=after_import,
        train="[net.step(X, y, learning_rate=2.0) for _ in range(2000)]")
    result = run(["-c", script], tmp_path, NUMBA_CACHE_DIR=str(cache))
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    max_error, accuracy = map(float, lines[1].split())
    assert max_error < 0.1
    assert accuracy == 1.0
    warned = [line for line in lines[2:] if line.startswith("WARNING")]
    assert len(warned) == 1, lines
    assert warned[0].startswith("WARNING CacheWarning"), lines
    assert cache.is_file()


FIT = """
import numpy as np
import nbbp
rng = np.random.default_rng(0)
X, y = rng.standard_normal((64, 6)).astype(np.float32), rng.integers(0, 3, 64)
net = nbbp.Network([6, 5, 5, 3], dtype="float32", batch_norm={batch_norm}, seed=0)
history = net.fit(X, y, epochs=2, batch_size=16)
print(np.isfinite(history.loss).all() and np.isfinite(net.predict_proba(X)).all())
# A dense network's driver neither compiles nor loads a batch-normalisation kernel (training
# normalises in forward_normalised).
print(len(nbbp.forward.forward_normalised.signatures))
"""


def test_a_driver_compiled_against_cached_kernels_runs_from_the_cache(tmp_path):
    # Three processes on one cache. The first fits a batch-normalised network: every kernel,
    # and the epoch driver for it, is compiled and cached. The second fits a dense network: its
    # driver (a second signature, without the batch-normalisation branch) is compiled against
    # kernels that all come from the cache, so Numba saves it without the hook that starts the
    # thread pool. The third loads that driver from the cache; without start_thread_pool it
    # crashed with SIGSEGV in its first parallel kernel.
    for batch_norm in (True, False, False):
        result = run(["-c", FIT.format(batch_norm=batch_norm)], tmp_path)
        assert result.returncode == 0, (batch_norm, result.returncode, result.stderr[-3000:])
        assert result.stdout.split() == ["True", "1" if batch_norm else "0"]
