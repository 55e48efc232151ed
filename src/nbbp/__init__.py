"""nbbp: fast backpropagation for multilayer perceptrons, in Numba kernels that read like the
formulas. Importing nbbp compiles nothing: kernels compile on first use and are cached on disk."""

from . import reference
from .history import DivergenceError, History
from .network import Network
from .optimizers import SGD, AdaGrad, Adam, Optimizer, RMSProp
from .persistence import load

__version__ = "0.1.0"
__all__ = ["Network", "History", "DivergenceError", "Optimizer", "SGD", "AdaGrad", "RMSProp",
           "Adam", "load", "reference", "__version__"]
