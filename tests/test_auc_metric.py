"""The BirdCLEF metric against hand-computed cases."""

import numpy as np
import pytest

from daemon.batch.evaluate import macro_roc_auc, score_submission
from daemon.errors import SubmissionError


def auc(labels: list[int], scores: list[float]) -> float:
    return macro_roc_auc(np.array(labels)[:, None], np.array(scores)[:, None], ["x"])[0]


def test_auc_hand_computed():
    # positives at 0.9 and 0.4; negatives 0.5, 0.1: pairs (0.9>0.5, 0.9>0.1, 0.4<0.5, 0.4>0.1) -> 3/4
    assert auc([1, 0, 1, 0], [0.9, 0.5, 0.4, 0.1]) == pytest.approx(0.75)
    assert auc([1, 0], [0.3, 0.3]) == pytest.approx(0.5)  # a tie counts one half
    assert auc([0, 1, 1], [0.9, 0.1, 0.2]) == 0.0


def test_equals_the_competition_metric():
    """BirdCLEF's metric: sklearn's macro roc_auc_score over the columns that have a positive."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(7)
    labels = (rng.random((60, 8)) < 0.2).astype(int)
    labels[:, 3] = 0  # a column with no positive is left out
    scores = rng.random((60, 8))
    keep = labels.sum(axis=0) > 0
    expected = roc_auc_score(labels[:, keep], scores[:, keep], average="macro")
    assert macro_roc_auc(labels, scores, list("abcdefgh"))[0] == pytest.approx(expected, abs=1e-12)


def test_macro_skips_species_without_positives():
    labels = np.array([[1, 0, 0], [0, 0, 1], [0, 0, 0]])
    scores = np.array([[0.9, 0.1, 0.2], [0.1, 0.5, 0.1], [0.2, 0.2, 0.0]])
    score, per = macro_roc_auc(labels, scores, ["a", "b", "c"])
    assert set(per) == {"a", "c"}
    assert per == {"a": 1.0, "c": 0.5}  # c: positive 0.1 beats 0.0, loses to 0.2
    assert score == pytest.approx(0.75)


def write(path, header, rows):
    path.write_text("\n".join([",".join(header), *(",".join(map(str, r)) for r in rows)]) + "\n")
    return path


def test_score_submission_aligns_rows_and_columns(tmp_path):
    labels = write(tmp_path / "l.csv", ["row_id", "a", "b"], [["x_5", 1, 0], ["x_10", 0, 1]])
    sub = write(tmp_path / "s.csv", ["row_id", "b", "a"], [["x_10", 0.8, 0.1], ["x_5", 0.2, 0.7]])
    score, _ = score_submission(sub, labels)
    assert score == 1.0


def test_mismatched_rows_and_columns_are_named(tmp_path):
    labels = write(tmp_path / "l.csv", ["row_id", "a", "b"], [["x_5", 1, 0], ["x_10", 0, 1]])
    sub = write(tmp_path / "s.csv", ["row_id", "a", "c"], [["x_5", 0.2, 0.7], ["x_10", 0.8, 0.1]])
    with pytest.raises(SubmissionError, match=r"species column\(s\) missing .* \(e\.g\. b\).*not in .*\(e\.g\. c\)"):
        score_submission(sub, labels)
    sub = write(tmp_path / "s.csv", ["row_id", "a", "b"], [["x_5", 0.2, 0.7], ["x_15", 0.8, 0.1]])
    with pytest.raises(SubmissionError, match=r"row_id.*x_10"):
        score_submission(sub, labels)
    sub = write(tmp_path / "s.csv", ["row_id", "a", "b"], [["x_5", "high", 0.7]])
    with pytest.raises(SubmissionError, match=r"s\.csv:2: non-numeric"):
        score_submission(sub, labels)


def test_non_finite_scores_are_refused(tmp_path):
    labels = write(tmp_path / "l.csv", ["row_id", "a"], [["x_5", 1], ["x_10", 0]])
    sub = write(tmp_path / "s.csv", ["row_id", "a"], [["x_5", "nan"], ["x_10", 0.1]])
    with pytest.raises(SubmissionError, match=r"s\.csv:2: NaN or infinite value in row 'x_5'"):
        score_submission(sub, labels)
