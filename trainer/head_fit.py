"""Fit the linear head: multi-label (one sigmoid per species) logistic regression, one species at a time.

Each species is a scikit-learn ``LogisticRegression`` (L-BFGS) on the same standardised features: measured
faster than a hand-written joint L-BFGS over all species for the same scores (docs/accuracy.md, "Head fitting").
"""

from __future__ import annotations

import logging
import statistics
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

log = logging.getLogger(__name__)

MAX_POSITIVE_WEIGHT = 50.0
"""cap on how much more a positive window counts than a negative one"""


def standardise(features: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(mean, scale, (features - mean) / scale)`` per feature column, in float64."""
    x = features.astype(np.float64)
    mean = x.mean(axis=0)
    scale = x.std(axis=0) + 1e-6
    return mean, scale, (x - mean) / scale


def positive_weights(labels: np.ndarray, row_weights: np.ndarray) -> np.ndarray:
    """Per species, the weight of a positive window: its negatives' total over its positives' (at most
    :data:`MAX_POSITIVE_WEIGHT`; 1 for a species without positives)."""
    positives = (labels * row_weights[:, None]).sum(axis=0)
    ratio = np.where(positives > 0, (row_weights.sum() - positives) / np.maximum(positives, 1e-9), 1.0)
    return np.minimum(ratio, MAX_POSITIVE_WEIGHT)


def fit_multilabel_logistic(features: np.ndarray, labels: np.ndarray, l2: float = 1e-3, max_iter: int = 300,
                            sample_weight: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Fit ``sigmoid(((x - mean) / scale) @ W + b)`` to 0/1 (or soft) labels, by L-BFGS per species.

    The loss of a species is its binary cross-entropy averaged over windows (weighted by
    ``sample_weight``), plus ``l2 * |w|^2 / 2`` (the bias is not penalised); its positives are
    weighted so they count as much as its negatives (species are rare; :func:`positive_weights`).
    That is scikit-learn's ``C * sum(weighted loss) + |w|^2 / 2`` with ``C = 1 / (l2 * total weight)``.
    A soft label ``y`` counts as a positive of weight ``y`` and a negative of weight ``1 - y``; a species
    with positives only or negatives only gets zero weights and the bias of its smoothed base rate.
    Returns the arrays of :class:`daemon.model.head.LinearHead`: head_mean, head_scale, head_weights, head_bias.
    """
    mean, scale, x = standardise(features)
    y = labels.astype(np.float64)
    n, d = x.shape
    w_rows = np.ones(n) if sample_weight is None else sample_weight.astype(np.float64)
    pos_weight = positive_weights(y, w_rows)
    c = 1.0 / (l2 * w_rows.sum())
    weights, bias = np.zeros((d, y.shape[1])), np.zeros(y.shape[1])
    iterations: list[int] = []
    for j in range(y.shape[1]):
        positive, negative = w_rows * y[:, j] * pos_weight[j], w_rows * (1.0 - y[:, j])
        if not positive.any() or not negative.any():
            bias[j] = np.log((positive.sum() + 1.0) / (negative.sum() + 1.0))
            continue
        soft = (positive > 0) & (negative > 0)
        if soft.any():  # each soft window twice: as a positive and as a negative
            rows = np.concatenate([np.flatnonzero(positive > 0), np.flatnonzero(negative > 0)])
            target = np.arange(rows.size) < np.count_nonzero(positive > 0)
            row_weight = np.where(target, positive[rows], negative[rows])
            x_j = x[rows]
        else:
            target, row_weight, x_j = positive > 0, positive + negative, x
        model = LogisticRegression(C=c, solver="lbfgs", max_iter=max_iter)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # counted in the log line below
            model.fit(x_j, target, sample_weight=row_weight)
        weights[:, j], bias[j] = model.coef_[0], model.intercept_[0]
        iterations.append(int(model.n_iter_[0]))
    log.info("head: %d windows x %d features -> %d species (%d fitted), L-BFGS iterations median %s, "
             "%d at max_iter %d", n, d, y.shape[1], len(iterations),
             statistics.median(iterations) if iterations else "-", iterations.count(max_iter), max_iter)
    return {"head_mean": mean.astype(np.float32), "head_scale": scale.astype(np.float32),
            "head_weights": weights.astype(np.float32), "head_bias": bias.astype(np.float32)}
