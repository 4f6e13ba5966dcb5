"""The daemon's range filter follows the station's local date: a clock crossing a week boundary changes the list.

Eastern Phoebe (Sayornis phoebe) comes back to Ithaca, NY, in March: BirdNET's range model leaves it out
of the list of week 8 (22-28 February) and puts it in week 9 (1-7 March). The same detection maker (no
restart, no reload) stops removing it when the stream clock passes midnight on 28 February.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pytest
from tflite_fixtures import BIRDNET_LIKE, write_tiny_model

from daemon.config import DetectionConfig
from daemon.constants import SAMPLE_RATE
from daemon.model.loader import load_model
from daemon.model.range_filter import StationRange
from daemon.pipeline.detection import StreamClock
from daemon.pipeline.policy import DetectionMaker
from daemon.pipeline.scoring import PipelineStats
from trainer.tflite_zero_shot import all_classes_bundle

pytestmark = pytest.mark.integration

LABELS = ["Sayornis phoebe_Eastern Phoebe", "Turdus migratorius_American Robin", "Human vocal_Human vocal"]


@pytest.fixture
def model(tmp_path):
    """An all-classes bundle over a tiny model whose labels are three of BirdNET's."""
    tiny = write_tiny_model(tmp_path / "tiny.tflite", BIRDNET_LIKE.chunk_samples, n_logits=len(LABELS))
    (tmp_path / BIRDNET_LIKE.labels_file).write_text("\n".join(LABELS) + "\n")
    return load_model(all_classes_bundle(tmp_path / "bundle", tiny.path, BIRDNET_LIKE))


def test_a_week_boundary_changes_the_list_without_a_restart(range_filter, model):
    clock = StreamClock(datetime(2026, 2, 28, 23, 59, 50).timestamp())  # local time, as the station's date
    stats = PipelineStats()
    config = DetectionConfig(threshold=0.5, range_filter=True)
    maker = DetectionMaker(config, "garden", model, clock, StationRange(range_filter, model.species, 42.45, -76.5),
                           stats)
    scores = np.array([0.9, 0.7, 0.99], dtype=np.float32)  # phoebe, robin, a human voice
    codes = [[d.species_code for d in maker.detect("mic", end - 5 * SAMPLE_RATE, end, scores)]
             for end in (5 * SAMPLE_RATE, 15 * SAMPLE_RATE)]  # 23:59:55 on 28 Feb, 00:00:05 on 1 March
    assert codes == [["turdus_migratorius"], ["sayornis_phoebe", "turdus_migratorius"]]
    assert stats.windows_out_of_range == 1  # the phoebe was the best species of the February window


def test_a_window_whose_best_species_is_in_range_is_not_counted(range_filter, model):
    stats = PipelineStats()
    maker = DetectionMaker(DetectionConfig(threshold=0.5, range_filter=True), "garden", model,
                           StreamClock(datetime(2026, 2, 10, 12).timestamp()),
                           StationRange(range_filter, model.species, 42.45, -76.5), stats)
    assert [d.species_code for d in maker.detect("mic", 0, 5 * SAMPLE_RATE, np.array([0.6, 0.8, 0.1]))] == [
        "turdus_migratorius"]
    assert [d.species_code for d in maker.detect("mic", 0, 5 * SAMPLE_RATE, np.array([0.4, 0.3, 0.9]))] == []
    assert stats.windows_out_of_range == 0
