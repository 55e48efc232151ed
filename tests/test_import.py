"""Importing nbbp compiles nothing: every kernel compiles (or loads from the cache) on first use."""

import subprocess
import sys

import pytest

CHECK = """
import sys
import numba.core.dispatcher
import nbbp
kernels = {
    f"{name}.{attr}": obj
    for name, module in list(sys.modules.items()) if name.startswith("nbbp")
    for attr, obj in vars(module).items() if isinstance(obj, numba.core.dispatcher.Dispatcher)
}
assert len(kernels) >= 10, sorted(kernels)
compiled = [name for name, kernel in kernels.items() if kernel.overloads]
print(len(kernels), compiled)
"""


def test_import_compiles_nothing():
    result = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    n_kernels, compiled = result.stdout.split(" ", 1)
    assert int(n_kernels) >= 10
    assert compiled.strip() == "[]"


OPTIONAL = """
import sys
import nbbp
heavy = [m for m in ("sklearn", "matplotlib", "tqdm", "torch", "jax", "nbbp.sklearn", "nbbp.plot",
                    "pyarrow", "onnx", "onnxruntime", "skl2onnx", "nbbp.export",
                    "nbbp.sklearn_onnx", "nbbp.cli", "mpi4py", "nbbp.distributed")
         if m in sys.modules]
print(heavy)
estimator = nbbp.MLPClassifier
print(estimator.__module__, "sklearn" in sys.modules)
"""


def test_import_loads_no_optional_package_until_asked():
    result = subprocess.run([sys.executable, "-c", OPTIONAL], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["[]", "nbbp.sklearn True"]


def test_unknown_attribute_is_an_attribute_error():
    import nbbp

    with pytest.raises(AttributeError, match="no attribute 'MLPClassifer'"):
        _ = nbbp.MLPClassifer  # a typo
    assert {"MLPClassifier", "MLPRegressor", "Network"} <= set(dir(nbbp))
