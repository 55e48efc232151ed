"""The compiled kernels index only what they own: the equivalence tests pass again with Numba's
bounds checking on (an out-of-bounds index raises IndexError instead of reading stray memory),
and the kernels run as plain Python under NUMBA_DISABLE_JIT with the same results."""

import os
import pathlib
import subprocess
import sys

TESTS = pathlib.Path(__file__).parent


def run(args, tmp_path, **env):
    full_env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba-cache"), **env)
    return subprocess.run([sys.executable, *args], env=full_env, capture_output=True, text=True,
                          timeout=900, cwd=TESTS.parent)


def test_kernel_equivalence_tests_pass_with_bounds_checking(tmp_path):
    files = ["test_forward.py", "test_deltas.py", "test_gradients.py", "test_losses.py",
             "test_optimizers.py", "test_activations.py"]
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
