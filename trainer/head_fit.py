"""Fit the linear head: multi-label (one sigmoid per species) logistic regression, all species at once."""

from __future__ import annotations

import logging

import numpy as np
import scipy.optimize

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
    """Fit ``sigmoid(((x - mean) / scale) @ W + b)`` to 0/1 (or soft) labels by L-BFGS.

    The loss is the binary cross-entropy summed over species and averaged over windows, plus
    ``l2 * |W|^2 / 2``;
    positives of each species are weighted so they count as much as its negatives (species are
    rare). Returns the arrays of :class:`daemon.head.LinearHead`: head_mean, head_scale,
    head_weights, head_bias.
    """
    mean, scale, x = standardise(features)
    y = labels.astype(np.float64)
    n, d = x.shape
    s = y.shape[1]
    w_rows = np.ones(n) if sample_weight is None else sample_weight.astype(np.float64)
    pos_weight = positive_weights(y, w_rows)
    norm = w_rows.sum()

    def loss_and_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
        weights, bias = theta[: d * s].reshape(d, s), theta[d * s:]
        z = x @ weights + bias
        # numerically stable log(1 + exp(-z)) and log(1 + exp(z))
        log_p = -np.logaddexp(0.0, -z)
        log_not_p = -np.logaddexp(0.0, z)
        cell_weight = w_rows[:, None] * (y * pos_weight + (1.0 - y))
        target = y * pos_weight / (y * pos_weight + (1.0 - y))
        loss = -(w_rows[:, None] * (y * pos_weight * log_p + (1.0 - y) * log_not_p)).sum() / norm
        loss += 0.5 * l2 * (weights**2).sum()
        residual = cell_weight * (np.exp(log_p) - target) / norm
        grad_w = x.T @ residual + l2 * weights
        grad_b = residual.sum(axis=0)
        return loss, np.concatenate([grad_w.ravel(), grad_b])

    start = np.zeros(d * s + s)
    result = scipy.optimize.minimize(loss_and_grad, start, jac=True, method="L-BFGS-B",
                                     options={"maxiter": max_iter})
    log.info("head: %d windows x %d features -> %d species, loss %.4f after %d iterations",
             n, d, s, result.fun, result.nit)
    weights, bias = result.x[: d * s].reshape(d, s), result.x[d * s:]
    return {"head_mean": mean.astype(np.float32), "head_scale": scale.astype(np.float32),
            "head_weights": weights.astype(np.float32), "head_bias": bias.astype(np.float32)}
