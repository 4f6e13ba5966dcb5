"""The noise filter (BirdNET's dog/siren/... classes) and the privacy filter on BirdNET's human classes: the
windows where a class fires, and their margins, lose their bird detections; the mask covers the voice."""

from __future__ import annotations

import pytest
from filter_fixtures import HOP, SPECIES, reported, run, windows

from daemon.config import FiltersConfig
from daemon.constants import SAMPLE_RATE
from daemon.errors import ConfigError
from daemon.filters.chain import build_filters
from daemon.filters.mask import PrivacyMask
from daemon.filters.stats import FilterStats
from daemon.pipeline.detection import StreamClock

BIRDS = {"eurbla": 0.9, "tawowl1": 0.9}


def test_a_dog_drops_the_birds_of_its_window_and_of_the_margin_around_it():
    stats = FilterStats()
    chain = build_filters(FiltersConfig(noise=True, noise_threshold=0.3, noise_margin_s=1.0), SPECIES,
                          StreamClock(0.0), stats, None)
    results = windows([BIRDS, BIRDS, BIRDS | {"dog": 0.5}, BIRDS, BIRDS])
    assert sorted({w for w, _ in reported(run(chain, results))}) == [0, 4]
    assert (stats.noise_windows, stats.noise_dropped) == (1, 6)


def test_only_the_listed_species_are_dropped_and_they_stay_dropped_while_remembered():
    chain = build_filters(FiltersConfig(noise=True, noise_margin_s=0.0, noise_species=["tawowl1"],
                                        noise_remember_s=10.0), SPECIES, StreamClock(0.0), FilterStats(), None)
    results = windows([BIRDS, BIRDS | {"dog": 0.9}, BIRDS, BIRDS, BIRDS, BIRDS])
    assert reported(run(chain, results)) == [(0, "eurbla"), (0, "tawowl1"), (1, "eurbla"), (2, "eurbla"),
                                              (3, "eurbla"), (4, "eurbla"), (4, "tawowl1"), (5, "eurbla"),
                                              (5, "tawowl1")]


def test_human_classes_drop_detections_near_the_voice_and_mask_its_audio():
    stats, mask = FilterStats(), PrivacyMask()
    chain = build_filters(FiltersConfig(privacy=True, privacy_detector="classes", privacy_threshold=0.1,
                                        privacy_margin_s=2.0), SPECIES,
                          StreamClock(0.0), stats, mask)
    assert chain.privacy_detector == "classes"
    results = windows([BIRDS, BIRDS, BIRDS | {"human_vocal": 0.15}, BIRDS, BIRDS])
    out = []
    for result in results:
        out += chain.push([result])
        assert all(mask.decided_until >= r.end_sample for r in out)  # a result leaves once its mask is decided
    out += chain.flush()
    assert sorted({w for w, _ in reported(out)}) == [0, 4]
    margin = 2 * SAMPLE_RATE
    assert mask.covers(2 * HOP - margin, 3 * HOP + margin) and not mask.touches(0, 2 * HOP - margin)
    assert stats.privacy_voices == 1 and stats.privacy_dropped == 6


def test_classes_asked_for_but_missing_is_a_config_error():
    species = [s for s in SPECIES if not s.code.startswith("human")]
    with pytest.raises(ConfigError, match=r"filters\.privacy_detector"):
        build_filters(FiltersConfig(privacy=True, privacy_detector="classes"), species, StreamClock(0.0),
                      FilterStats(), None)
