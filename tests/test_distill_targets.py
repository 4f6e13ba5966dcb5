"""The student's targets from its teacher's logits: the mean over neighbouring windows, then probabilities."""

from __future__ import annotations

import numpy as np
import pytest

from trainer.distill import TeacherPass, neighbour_mean, probabilities, soft_targets
from trainer.distill_recipe import DistillRecipe, TeacherParams


def test_each_window_is_averaged_with_the_neighbours_a_file_has():
    logits = np.array([[0.0, 10.0], [3.0, 10.0], [6.0, 10.0], [9.0, 10.0]], np.float32)
    assert np.allclose(neighbour_mean(logits, 1)[:, 0], [1.5, 3.0, 6.0, 7.5])
    assert np.allclose(neighbour_mean(logits, 2)[:, 0], [3.0, 4.5, 4.5, 6.0])
    assert np.allclose(neighbour_mean(logits, 9)[:, 0], 4.5)  # more neighbours than windows: the file's mean
    assert np.allclose(neighbour_mean(logits, 2)[:, 1], 10.0)
    assert neighbour_mean(logits, 0) is logits
    assert np.array_equal(neighbour_mean(logits[:1], 3), logits[:1])
    assert neighbour_mean(logits[:0], 3).shape == (0, 2)


def test_averaging_leaves_the_teachers_logits_as_they_were():
    logits = np.arange(12, dtype=np.float32).reshape(6, 2)
    before = logits.copy()
    neighbour_mean(logits, 2)
    assert np.array_equal(logits, before)


def test_targets_are_the_probability_of_the_mean_logit_not_the_mean_probability():
    logits = np.array([[-8.0], [4.0], [-8.0]], np.float32)
    targets = soft_targets(logits, TeacherParams(neighbours=1))
    assert targets[1, 0] == pytest.approx(float(probabilities(np.float32(-4.0))))
    assert np.allclose(soft_targets(logits, TeacherParams(neighbours=0)), probabilities(logits))


def test_hard_targets_threshold_the_mean_logit():
    logits = np.array([[-1.0], [3.0], [-1.0]], np.float32)
    targets = soft_targets(logits, TeacherParams(neighbours=1, hard_threshold=0.5))
    assert targets[:, 0].tolist() == [1.0, 1.0, 1.0]  # mean logits 1, 1/3, 1; mean probabilities 0.61, 0.497, 0.61
    assert soft_targets(logits, TeacherParams(neighbours=0, hard_threshold=0.5))[:, 0].tolist() == [0.0, 1.0, 0.0]


def test_every_files_targets_take_the_recipes_neighbours(tmp_path):
    logits = [np.array([[-8.0, 0.0], [4.0, 2.0], [-8.0, 1.0]], np.float32), np.array([[3.0, -3.0]], np.float32)]
    run = TeacherPass(None, [(tmp_path / "a.wav", np.zeros(10)), (tmp_path / "b.wav", np.zeros(5))], [], logits)
    scored = run.scored([1, 0], TeacherParams(neighbours=1))
    assert np.allclose(scored[0].targets, probabilities(neighbour_mean(logits[0], 1)[:, [1, 0]]))
    assert np.allclose(scored[1].targets, probabilities(logits[1][:, [1, 0]]))


@pytest.mark.parametrize("value, message", [("-1", "must be 0 or more"), ("1.5", "expected a whole number")])
def test_a_bad_neighbour_count_is_refused_naming_the_key(value, message):
    with pytest.raises(ValueError, match=rf"teacher.neighbours={value}: {message}"):
        DistillRecipe().with_override("teacher.neighbours", value)
    with pytest.raises(ValueError, match="must be 0 or more"):
        TeacherParams(neighbours=1.5)
