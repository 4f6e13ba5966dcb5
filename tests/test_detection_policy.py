"""Scores become detections by threshold, per-species thresholds, include and exclude lists."""

import numpy as np
import pytest

from daemon.config import DetectionConfig
from daemon.errors import ConfigError
from daemon.model.loader import Species
from daemon.pipeline.policy import DetectionPolicy

SPECIES = [Species(c, c.upper()) for c in ("a", "b", "c", "d")]
SCORES = np.array([0.9, 0.4, 0.7, 0.55], dtype=np.float32)


def test_global_threshold_best_first():
    assert DetectionPolicy(DetectionConfig(threshold=0.5), SPECIES).select(SCORES) == [
        (0, pytest.approx(0.9)), (2, pytest.approx(0.7)), (3, pytest.approx(0.55))]


def test_per_species_threshold_include_exclude():
    policy = DetectionPolicy(DetectionConfig(threshold=0.5, species_thresholds={"b": 0.3, "d": 0.6},
                                             exclude=["c"]), SPECIES)
    assert [j for j, _ in policy.select(SCORES)] == [0, 1]
    policy = DetectionPolicy(DetectionConfig(threshold=0.1, include=["b", "d"]), SPECIES)
    assert [j for j, _ in policy.select(SCORES)] == [3, 1]


def test_unknown_species_code_names_the_key():
    with pytest.raises(ConfigError, match=r"detection\.exclude: species code.*zzz"):
        DetectionPolicy(DetectionConfig(exclude=["zzz"]), SPECIES)


def test_per_species_thresholds_by_scientific_name_or_birdnet_label():
    species = [Species("eurbla", "Eurasian Blackbird", "Turdus merula"), Species("sonthr1", "Song Thrush",
                                                                                  "Turdus philomelos")]
    config = DetectionConfig(threshold=0.5, species_thresholds={"Turdus merula": 0.9,
                                                                "Turdus philomelos_Song Thrush": 0.2})
    policy = DetectionPolicy(config, species)
    assert policy.thresholds.tolist() == pytest.approx([0.9, 0.2])
    assert policy.select(np.array([0.8, 0.3], dtype=np.float32)) == [(1, pytest.approx(0.3))]
