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
