"""nbbp: fast backpropagation for multilayer perceptrons, in Numba kernels that read like the
formulas. Importing nbbp compiles nothing: kernels compile on first use and are cached on disk."""

from . import reference
from .network import Network

__version__ = "0.1.0"
__all__ = ["Network", "reference", "__version__"]
