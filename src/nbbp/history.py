"""The record of a training run."""

from __future__ import annotations

from typing import Any

import numpy as np


class DivergenceError(FloatingPointError):
    """Training produced a non-finite loss or parameter. The network keeps the weights of the
    last finite epoch; ``history`` holds the epochs recorded before it."""

    def __init__(self, message: str, history: History | None = None) -> None:
        super().__init__(message)
        self.history = history


class History:
    """Per-epoch record of ``Network.fit``.

    Attributes
    ----------
    loss : list of float
        Training E per epoch: the batch losses' mean weighted by batch size, each with
        l2/2 sum ||W||^2 at the weights that batch saw.
    val_loss, val_score : list of float
        Validation E and score (accuracy, or R^2 for squared_error) per epoch, when validating.
    grad_norm : list of ndarray
        Per epoch, for each layer l, the mean over batches of ||dE/dW(l)|| (Frobenius norm).
    delta_mean : list of ndarray
        Per epoch, for each layer l, the mean of |delta_i(l)| over samples and neurons. With
        sigmoid hidden layers (sigmoid' <= 0.25) it shrinks layer by layer towards the input.
    learning_rate : list of float
        The learning rate of each epoch (a schedule's, or the constant one).
    best_epoch : int or None
        With early stopping, the epoch (from 0) whose weights the network kept.
    stopped_early : bool
        Whether early stopping or a callback ended training before ``epochs``.
    result : scipy.optimize.OptimizeResult or None
        With optimizer="lbfgs", SciPy's result (its message, status, iterations and
        evaluations); else None.
    """

    def __init__(self) -> None:
        self.loss: list[float] = []
        self.val_loss: list[float] = []
        self.val_score: list[float] = []
        self.grad_norm: list[np.ndarray] = []
        self.delta_mean: list[np.ndarray] = []
        self.learning_rate: list[float] = []
        self.best_epoch: int | None = None
        self.stopped_early = False
        self.result: Any = None

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.__dict__.setdefault("learning_rate", [])  # pickled before schedules: not recorded
        self.__dict__.setdefault("result", None)

    @property
    def epochs(self) -> int:
        """Number of epochs recorded."""
        return len(self.loss)

    def as_arrays(self) -> dict[str, np.ndarray]:
        """The record as arrays: grad_norm and delta_mean are (epochs, n_layers)."""
        return {
            "loss": np.array(self.loss),
            "val_loss": np.array(self.val_loss),
            "val_score": np.array(self.val_score),
            "grad_norm": np.array(self.grad_norm),
            "delta_mean": np.array(self.delta_mean),
            "learning_rate": np.array(self.learning_rate),
        }

    def __repr__(self) -> str:
        last = f", last loss {self.loss[-1]:.6g}" if self.loss else ""
        return f"History({self.epochs} epochs{last})"
