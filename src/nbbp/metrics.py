"""Held-out metrics for a trained model: accuracy, per-class precision, recall and F1 and the
confusion matrix for a classifier; R^2, MAE and RMSE for a regression. NumPy only (the CLI's
``train`` and ``evaluate`` report them without scikit-learn); the definitions are
scikit-learn's, and the tests check them against it.

    precision_c = TP_c / (TP_c + FP_c)    recall_c = TP_c / (TP_c + FN_c)
    F1_c = 2 precision_c recall_c / (precision_c + recall_c)
    R^2 = 1 - sum (y - p)^2 / sum (y - mean y)^2

A ratio whose denominator is 0 (a class never predicted, or never present) is 0, as
scikit-learn's ``zero_division=0``; R^2 of a constant target is 1 for a perfect prediction and
0 otherwise, as scikit-learn's ``r2_score``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Classification:
    """A classifier's metrics over ``n`` samples; arrays are per class, in class order."""

    accuracy: float
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    support: np.ndarray
    confusion: np.ndarray  # confusion[i, j]: samples of true class i predicted as class j


@dataclass(frozen=True)
class Regression:
    r2: float
    mae: float
    rmse: float


def _labels(values, n_classes, name):
    values = np.asarray(values)
    if values.ndim != 1 or not (np.issubdtype(values.dtype, np.integer) or values.size == 0):
        raise ValueError(f"{name} must be a 1-D array of class indices; got shape {values.shape} "
                         f"of {values.dtype}")
    if values.size and (values.min() < 0 or values.max() >= n_classes):
        raise ValueError(f"{name} holds a class index outside 0..{n_classes - 1}")
    return values.astype(np.int64)


def _ratio(top, bottom):
    return np.divide(top, bottom, out=np.zeros(len(top)), where=bottom > 0)


def classification(y_true, y_pred, n_classes: int) -> Classification:
    """The metrics of predicted class indices ``y_pred`` against ``y_true`` (both 0 ..
    n_classes - 1)."""
    y_true = _labels(y_true, n_classes, "y_true")
    y_pred = _labels(y_pred, n_classes, "y_pred")
    if len(y_true) != len(y_pred) or len(y_true) == 0:
        raise ValueError(f"y_true and y_pred need the same, non-zero length; got {len(y_true)} "
                         f"and {len(y_pred)}")
    confusion = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(confusion, (y_true, y_pred), 1)
    hits = np.diag(confusion).astype(np.float64)
    support = confusion.sum(axis=1)
    precision = _ratio(hits, confusion.sum(axis=0))
    recall = _ratio(hits, support)
    f1 = _ratio(2 * precision * recall, precision + recall)
    return Classification(float(hits.sum() / len(y_true)), precision, recall, f1, support,
                          confusion)


def regression(y_true, y_pred) -> Regression:
    """R^2 (averaged over outputs, as scikit-learn's default), MAE and RMSE (over every value)
    of ``y_pred`` against ``y_true``."""
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if y_true.shape != y_pred.shape or y_true.size == 0:
        raise ValueError(f"y_true and y_pred need the same, non-empty shape; got {y_true.shape} "
                         f"and {y_pred.shape}")
    t = y_true.reshape(len(y_true), -1)
    p = y_pred.reshape(len(y_pred), -1)
    residual = ((t - p) ** 2).sum(axis=0)
    total = ((t - t.mean(axis=0)) ** 2).sum(axis=0)
    r2 = np.where(total > 0, 1 - residual / np.where(total > 0, total, 1),
                  np.where(residual == 0, 1.0, 0.0))
    error = t - p
    return Regression(float(r2.mean()), float(np.abs(error).mean()),
                      float(np.sqrt((error ** 2).mean())))


def report(metrics: Classification | Regression, classes=None) -> list[str]:
    """The metrics as lines of text: for a classifier, accuracy, a table of precision, recall,
    F1 and support per class (named by ``classes``), and the confusion matrix."""
    if isinstance(metrics, Regression):
        return [f"R^2 {metrics.r2:.4f}, MAE {metrics.mae:.6g}, RMSE {metrics.rmse:.6g}"]
    names = [str(c) for c in (classes if classes is not None
                              else range(len(metrics.support)))]
    width = max(8, *(len(n) for n in names))
    lines = [f"accuracy {metrics.accuracy:.4f}",
             f"{'class':<{width}}  precision  recall      f1  support"]
    for name, p, r, f, s in zip(names, metrics.precision, metrics.recall, metrics.f1,
                                metrics.support):
        lines.append(f"{name:<{width}}  {p:9.4f}  {r:6.4f}  {f:6.4f}  {s:7d}")
    cell = max(6, width, len(str(metrics.confusion.max())))
    lines.append("confusion matrix (rows: true class; columns: predicted class)")
    lines.append(" " * width + "".join(f"  {n:>{cell}}" for n in names))
    for name, row in zip(names, metrics.confusion):
        lines.append(f"{name:<{width}}" + "".join(f"  {v:>{cell}d}" for v in row))
    return lines
