"""nbbp: fast backpropagation for multilayer perceptrons, in Numba kernels that read like the
formulas. Importing nbbp compiles nothing: kernels compile on first use and are cached on disk."""

from . import reference, schedules, tabular
from ._gradcheck import gradcheck
from ._version import __version__
from .history import DivergenceError, History
from .network import Network
from .optimizers import LBFGS, SGD, AdaGrad, Adam, AdamW, Optimizer, RMSProp

load = Network.load

__all__ = [
    "LBFGS",
    "SGD",
    "AdaGrad",
    "Adam",
    "AdamW",
    "DivergenceError",
    "History",
    "MLPClassifier",
    "MLPRegressor",
    "Network",
    "Optimizer",
    "RMSProp",
    "__version__",
    "gradcheck",
    "load",
    "reference",
    "schedules",
    "tabular",
]

# The scikit-learn estimators load on first use, so that `import nbbp` needs no scikit-learn.
_LAZY = {"MLPClassifier": "sklearn", "MLPRegressor": "sklearn"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'nbbp' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
