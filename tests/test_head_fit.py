"""The multi-label logistic head learns separable species and keeps rare positives."""

import numpy as np
import pytest

from daemon.batch.evaluate import macro_roc_auc
from daemon.model.head import LinearHead
from trainer import head_fit
from trainer.head_fit import fit_head, fit_least_squares, fit_multilabel_logistic, platt
from trainer.recipe import HeadParams


def test_head_separates_and_folds_standardisation(rng):
    n, d, s = 400, 10, 3
    x = rng.standard_normal((n, d)) * 5 + 2
    y = np.zeros((n, s))
    y[:, 0] = x[:, 0] > 4
    y[:, 1] = x[:, 1] + x[:, 2] > 6
    y[:20, 2] = 1  # rare species with a signal in feature 3
    x[:20, 3] += 30
    arrays = fit_multilabel_logistic(x.astype(np.float32), y, l2=1e-4)
    head = LinearHead(**{k.removeprefix("head_"): v for k, v in arrays.items()})
    p = head.probabilities(x.astype(np.float32))
    score, per = macro_roc_auc(y, p, ["a", "b", "c"])
    assert score > 0.97 and min(per.values()) > 0.95
    manual = 1 / (1 + np.exp(-(((x - arrays["head_mean"]) / arrays["head_scale"]) @ arrays["head_weights"]
                                + arrays["head_bias"])))
    np.testing.assert_allclose(p, manual, atol=1e-4)


def test_least_squares_head_ranks_like_its_soft_targets_and_gives_probabilities(rng):
    """The "squares" head follows soft (teacher) targets and its calibrated outputs are probabilities near them."""
    n, d, s = 2000, 12, 4
    x = rng.standard_normal((n, d))
    truth = 1 / (1 + np.exp(-(x[:, :s] * 3 - 2)))  # species k's probability rises with feature k
    arrays = fit_least_squares(x.astype(np.float32), truth, l2=1e-3)
    head = LinearHead(**{k.removeprefix("head_"): v for k, v in arrays.items()})
    p = head.probabilities(x.astype(np.float32))
    for k in range(s):
        assert np.corrcoef(np.argsort(np.argsort(p[:, k])), np.argsort(np.argsort(truth[:, k])))[0, 1] > 0.95
    assert abs(p.mean() - truth.mean()) < 0.02
    assert np.abs(p - truth).mean() < 0.08


def test_least_squares_sums_its_normal_equations_block_by_block(rng, monkeypatch):
    """Blocks of a few rows (the last one short) give the one-shot closed-form solution on standardised
    features."""
    n, d, s, l2 = 103, 6, 3, 0.05
    x = (rng.standard_normal((n, d)) * 4 + 2).astype(np.float32)
    y = rng.uniform(size=(n, s))
    mean, scale, z = head_fit.standardise(x)
    weights = np.linalg.solve(z.T @ z + l2 * n * np.eye(d), z.T @ (y - y.mean(axis=0)))
    slope, _ = platt(z @ weights + y.mean(axis=0), y)
    monkeypatch.setattr(head_fit, "ROWS_PER_BLOCK", 10)
    arrays = fit_least_squares(x, y, l2)
    np.testing.assert_allclose(arrays["head_mean"], mean, rtol=1e-6)
    np.testing.assert_allclose(arrays["head_scale"], scale, rtol=1e-6)
    np.testing.assert_allclose(arrays["head_weights"], weights * slope, rtol=1e-4, atol=1e-6)


def test_platt_scaling_keeps_the_order_and_matches_the_rate(rng):
    u = rng.standard_normal((5000, 2)) * [1.0, 50.0] + [0.0, 7.0]
    targets = (rng.random((5000, 2)) < 1 / (1 + np.exp(-(2 * (u - [0.0, 7.0]) / [1.0, 50.0] - 1)))).astype(float)
    a, c = platt(u, targets)
    assert (a > 0).all()
    p = 1 / (1 + np.exp(-(a * u + c)))
    np.testing.assert_allclose(p.mean(axis=0), targets.mean(axis=0), atol=0.01)
    np.testing.assert_allclose(a * [1.0, 50.0], [2.0, 2.0], rtol=0.15)


def test_head_loss_is_checked_and_chosen_by_the_recipe(rng):
    with pytest.raises(ValueError, match="'hinge' is not one of logistic, squares"):
        HeadParams(loss="hinge")
    x = rng.standard_normal((300, 5)).astype(np.float32)
    y = (x[:, :2] > 0).astype(float)
    squares = fit_head(x, y, HeadParams(loss="squares", l2=1e-3))
    np.testing.assert_allclose(squares["head_weights"], fit_least_squares(x, y, 1e-3)["head_weights"])


def test_least_squares_on_floored_logits_fits_them_and_calibrates_to_the_probabilities(rng):
    """``logit_floor`` fits ``max(logit(y), floor)`` (the closed form on those targets), and the calibration
    still maps the outputs to the probabilities themselves."""
    n, d, l2, floor = 400, 5, 0.01, -6.0
    x = rng.standard_normal((n, d)).astype(np.float32)
    y = 1 / (1 + np.exp(-(x @ rng.standard_normal((d, 2)) * 3 - 4)))
    _, _, z = head_fit.standardise(x)
    clipped = np.clip(y, 1e-7, 1 - 1e-7)  # logits within +-16
    fitted = np.maximum(np.log(clipped / (1 - clipped)), floor)
    weights = np.linalg.solve(z.T @ z + l2 * n * np.eye(d), z.T @ (fitted - fitted.mean(axis=0)))
    slope, _ = platt(z @ weights + fitted.mean(axis=0), y)
    arrays = fit_least_squares(x, y, l2, logit_floor=floor)
    np.testing.assert_allclose(arrays["head_weights"], weights * slope, rtol=1e-4, atol=1e-6)
    plain = fit_least_squares(x, y, l2)
    assert not np.allclose(plain["head_weights"], arrays["head_weights"])
    p = 1 / (1 + np.exp(-(((x - arrays["head_mean"]) / arrays["head_scale"]) @ arrays["head_weights"]
                          + arrays["head_bias"])))
    np.testing.assert_allclose(p.mean(axis=0), y.mean(axis=0), atol=0.02)


def test_a_positive_logit_floor_is_refused():
    with pytest.raises(ValueError, match="below 0"):
        HeadParams(loss="squares", logit_floor=0.5)
