"""Configuration of the range filter and of species lists: one line naming the key."""

from __future__ import annotations

import pytest

from daemon.config import DetectionConfig, config_from_dict
from daemon.errors import ConfigError
from daemon.model.loader import Species
from daemon.pipeline.policy import DetectionPolicy
from daemon.service.service import open_range_filter

SPECIES = [Species("amerob", "American Robin", "Turdus migratorius"), Species("eurbla", "Eurasian Blackbird",
                                                                              "Turdus merula")]


def test_range_filter_needs_a_location():
    with pytest.raises(ConfigError, match=r"detection\.range_filter: needs station\.latitude and station\.longitude"):
        config_from_dict({"detection": {"range_filter": True}, "station": {"latitude": 42.4}})
    config = config_from_dict({"detection": {"range_filter": True}, "station": {"latitude": 42.4, "longitude": -76}})
    assert config.detection.range_threshold == 0.03


@pytest.mark.parametrize(("table", "message"), [
    ({"detection": {"range_threshold": 1.5}}, r"detection\.range_threshold: must be within 0\.\.1"),
    ({"station": {"latitude": 91.0}}, r"station\.latitude: must be within -90\.\.90"),
    ({"detection": {"include": 3}}, r"detection\.include: expected str, got int"),
])
def test_bad_values_name_the_key(table, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict(table)


def test_include_takes_codes_names_labels_or_a_species_list_file(tmp_path):
    listing = tmp_path / "species.txt"
    listing.write_text("# birdd species ...\nTurdus merula_Eurasian Blackbird\t0.9982\nPasser domesticus_House "
                       "Sparrow\t0.9\n")
    config = config_from_dict({"detection": {"include": str(listing)}})
    assert DetectionPolicy(config.detection, SPECIES).thresholds.tolist() == [float("inf"), 0.5]
    for entry in ("amerob", "Turdus migratorius", "Turdus migratorius_American Robin"):
        assert DetectionPolicy(DetectionConfig(include=[entry]), SPECIES).thresholds.tolist() == [0.5, float("inf")]


def test_unreadable_or_foreign_species_list_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match=r"detection\.include: .*nothing\.txt: cannot read the species list"):
        DetectionPolicy(DetectionConfig(include=str(tmp_path / "nothing.txt")), SPECIES)
    (tmp_path / "elsewhere.txt").write_text("Passer domesticus_House Sparrow\t0.9\n")
    with pytest.raises(ConfigError, match=r"none of its 1 species is in the model"):
        DetectionPolicy(DetectionConfig(exclude=str(tmp_path / "elsewhere.txt")), SPECIES)


def test_range_filter_without_the_range_model_is_a_config_error(tmp_path, monkeypatch):
    monkeypatch.setattr("daemon.model.tflite_runtime.package_folder", lambda spec: tmp_path / "site")
    config = config_from_dict({"detection": {"range_filter": True}, "station": {"latitude": 42.4, "longitude": -76},
                               "model": {"path": str(tmp_path / "model")}})
    with pytest.raises(ConfigError, match=r"detection\.range_filter: BirdNET_GLOBAL_6K_V2\.4_MData_Model_V2_FP16"
                                          r"\.tflite: TFLite model file not found \(looked in .*model, .*site\)"):
        open_range_filter(config)
