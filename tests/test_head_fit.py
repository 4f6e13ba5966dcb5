"""The multi-label logistic head learns separable species and keeps rare positives."""

import numpy as np

from daemon.batch.evaluate import macro_roc_auc
from daemon.model.head import LinearHead
from trainer.head_fit import fit_multilabel_logistic


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


def test_fit_minimises_the_documented_loss_with_soft_labels(rng):
    n, d = 300, 4
    x = rng.standard_normal((n, d)) * 3 + 1
    y = np.zeros((n, 2))
    y[:, 0] = x[:, 0] + rng.standard_normal(n) > 2
    y[:, 1] = x[:, 1] > 1
    y[:30, 1] = 0.5  # soft targets: half a positive, half a negative
    l2 = 1e-2
    arrays = fit_multilabel_logistic(x, y, l2=l2, max_iter=1000)
    xs = (x - arrays["head_mean"]) / arrays["head_scale"]
    p = 1 / (1 + np.exp(-(xs @ arrays["head_weights"] + arrays["head_bias"])))
    positives = y.sum(axis=0)
    pos_weight = np.minimum((n - positives) / positives, 50)
    # gradient of mean((y * pw + 1 - y) * p - y * pw) terms plus l2 * w: zero at the optimum
    residual = ((y * pos_weight + 1 - y) * p - y * pos_weight) / n
    grad_w = xs.T @ residual + l2 * arrays["head_weights"]
    assert np.abs(grad_w).max() < 1e-3 and np.abs(residual.sum(axis=0)).max() < 1e-3
    assert np.abs(arrays["head_weights"]).max() > 0.1  # something was learnt


def test_species_without_positives_gets_zero_weights_and_a_low_bias(rng):
    x = rng.standard_normal((100, 3))
    y = np.zeros((100, 2))
    y[:, 0] = x[:, 0] > 0
    arrays = fit_multilabel_logistic(x, y, l2=1e-2)
    assert np.all(arrays["head_weights"][:, 1] == 0)
    assert arrays["head_bias"][1] < np.log(2 / 100)
    assert np.abs(arrays["head_weights"][0, 0]) > 0.5
