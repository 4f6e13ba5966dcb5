"""Fit the linear head: multi-label (one sigmoid per species) logistic regression, all species at once."""

from __future__ import annotations

import logging

import numpy as np
import scipy.optimize

from trainer.recipe import HeadParams

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


PLATT_STEPS = 25
"""Newton steps of the per-species calibration (two parameters each; it converges in a handful)"""


ROWS_PER_BLOCK = 4096
"""windows standardised at a time by the least-squares fit (in float64), so it never holds a float64 copy of
all the features"""


def row_blocks(n_rows: int) -> list[slice]:
    """Consecutive slices of at most :data:`ROWS_PER_BLOCK` rows covering ``range(n_rows)``."""
    return [slice(i, min(i + ROWS_PER_BLOCK, n_rows)) for i in range(0, n_rows, ROWS_PER_BLOCK)]


def column_moments(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(mean, scale)`` of each column as :func:`standardise` computes them, block by block in float64."""
    blocks = row_blocks(features.shape[0])
    mean = sum(features[b].sum(axis=0, dtype=np.float64) for b in blocks) / features.shape[0]
    square = sum(((features[b] - mean) ** 2).sum(axis=0) for b in blocks) / features.shape[0]
    return mean, np.sqrt(square) + 1e-6


def least_squares_targets(y: np.ndarray, logit_floor: float) -> np.ndarray:
    """What least squares fits of the float64 targets ``y``: ``y`` itself, or for ``logit_floor < 0`` their logits
    raised to at least ``logit_floor`` (``-inf``: the whole logits)."""
    if logit_floor >= 0:
        return y
    clipped = np.clip(y, 1e-7, 1 - 1e-7)
    return np.maximum(np.log(clipped / (1 - clipped)), logit_floor)


def fit_least_squares(features: np.ndarray, targets: np.ndarray, l2: float = 3.0,
                      logit_floor: float = 0.0) -> dict[str, np.ndarray]:
    """Fit ``((x - mean) / scale) @ W + b`` to the targets (or to their floored logits,
    :func:`least_squares_targets`) by least squares (the squared error averaged over windows plus
    ``l2 * |W|^2 / 2``, one closed-form solve for all species), then calibrate each species' output ``u`` to a
    probability ``sigmoid(a * u + c)`` (Platt scaling on the targets themselves, ``a > 0`` so the order of the
    windows is kept) and fold the calibration into the head. Returns the arrays of
    :class:`daemon.head.LinearHead`.

    Soft teacher targets are mostly near 0; least squares follows the probabilities where cross-entropy
    chases the teacher's tiny differences between near-zero ones (``docs/accuracy.md``, distillation).
    The normal equations are summed a block of windows at a time: memory beyond the features themselves
    is one block and the ``d x d`` system.
    """
    mean, scale = column_moments(features)
    y = targets.astype(np.float64)
    fitted = least_squares_targets(y, logit_floor)
    (n, d), blocks = features.shape, row_blocks(features.shape[0])
    bias = fitted.mean(axis=0)
    gram, moment = np.zeros((d, d)), np.zeros((d, y.shape[1]))
    for b in blocks:
        x = (features[b] - mean) / scale
        gram += x.T @ x
        moment += x.T @ (fitted[b] - bias)
    weights = np.linalg.solve(gram + l2 * n * np.eye(d), moment)
    outputs = np.concatenate([((features[b] - mean) / scale) @ weights for b in blocks]) + bias
    slope, offset = platt(outputs, y)
    log.info("head (least squares): %d windows x %d features -> %d species, calibration slope median %.2f",
             n, d, y.shape[1], float(np.median(slope)))
    return {"head_mean": mean.astype(np.float32), "head_scale": scale.astype(np.float32),
            "head_weights": (weights * slope).astype(np.float32),
            "head_bias": (bias * slope + offset).astype(np.float32)}


def platt(outputs: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column, ``(a, c)`` minimising the cross-entropy of ``sigmoid(a * u + c)`` against the (soft)
    targets, by Newton's method on all columns at once; ``a`` is kept at least 1e-3 (order preserved)."""
    centre, std = outputs.mean(axis=0), outputs.std(axis=0) + 1e-12
    u = (outputs - centre) / std
    a, c = np.ones(u.shape[1]), np.zeros(u.shape[1])
    for _ in range(PLATT_STEPS):
        p = 0.5 * (1.0 + np.tanh(0.5 * (a * u + c)))
        r, h = p - targets, p * (1.0 - p) + 1e-9
        g_a, g_c = (r * u).mean(axis=0), r.mean(axis=0)
        h_aa, h_ac, h_cc = (h * u * u).mean(axis=0) + 1e-6, (h * u).mean(axis=0), h.mean(axis=0) + 1e-6
        det = h_aa * h_cc - h_ac**2
        a = np.maximum(a - (h_cc * g_a - h_ac * g_c) / det, 1e-3)
        c = c - (h_aa * g_c - h_ac * g_a) / det
    return a / std, c - a * centre / std


def fit_head(features: np.ndarray, targets: np.ndarray, params: HeadParams) -> dict[str, np.ndarray]:
    """The head the recipe asks for (``params.loss``)."""
    if params.loss == "squares":
        return fit_least_squares(features, targets, params.l2, params.logit_floor)
    return fit_multilabel_logistic(features, targets, params.l2, params.max_iter)
