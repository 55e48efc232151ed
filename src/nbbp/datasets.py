"""Small synthetic data sets built into nbbp, generated from a seed (nothing is downloaded)."""

from __future__ import annotations

import numpy as np


def spirals(n_samples: int = 1500, n_classes: int = 3, noise: float = 0.15,
            seed: int | None = 0) -> tuple[np.ndarray, np.ndarray]:
    """Interleaved 2-D spirals, one arm per class: a classic problem no linear model solves.

    Returns
    -------
    X : ndarray, shape (n_samples, 2), float64
    y : ndarray, shape (n_samples,), int64 class labels in [0, n_classes)
    """
    if n_samples < 1 or n_classes < 2:
        raise ValueError(f"spirals needs n_samples >= 1 and n_classes >= 2; got {n_samples}, "
                         f"{n_classes}")
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, size=n_samples)
    t = rng.uniform(0.05, 1.0, size=n_samples)
    angle = 3 * np.pi * t + 2 * np.pi * y / n_classes + rng.normal(scale=noise, size=n_samples)
    X = np.column_stack([t * np.cos(angle), t * np.sin(angle)])
    return X, y.astype(np.int64)


def xor() -> tuple[np.ndarray, np.ndarray]:
    """The four XOR points: X (4, 2) and y (4,), y = x1 xor x2."""
    X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    return X, np.array([0.0, 1.0, 1.0, 0.0])
