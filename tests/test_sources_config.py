"""[[audio.sources]]: each source over [audio] and [detection]; a bad entry is one line naming audio.sources[i]."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from daemon.config import DEFAULT_SOURCE_NAME, config_from_dict
from daemon.errors import ConfigError


def sources(*entries: dict, **audio: object) -> dict:
    return {"audio": {"realtime": False, **audio, "sources": list(entries)}}


def test_plain_audio_is_one_source_named_default():
    config = config_from_dict({"audio": {"source": "file", "files": ["a.wav"]}, "detection": {"threshold": 0.3}})
    (only,) = config.source_list
    assert only.name == DEFAULT_SOURCE_NAME and only.audio == config.audio and only.detection == config.detection
    assert config.audio.sources == []


def test_sources_inherit_audio_and_detection_and_override_them():
    config = config_from_dict({**sources({"name": "garden", "device": "USB"},
                                         {"name": "pond", "source": "file", "files": ["p.wav"], "loop": True,
                                          "detection": {"threshold": 0.8, "exclude": ["dog1"]}},
                                         ring_seconds=12.0),
                               "detection": {"threshold": 0.3, "window_hop_s": 3}})
    garden, pond = config.source_list
    assert (garden.name, garden.audio.source, garden.audio.device, garden.audio.ring_seconds) == ("garden", "mic",
                                                                                                  "USB", 12.0)
    assert garden.audio.realtime is False and garden.detection == config.detection
    assert (pond.audio.source, pond.audio.files, pond.audio.loop, pond.audio.ring_seconds) == ("file", ["p.wav"],
                                                                                               True, 12.0)
    assert (pond.detection.threshold, pond.detection.exclude, pond.detection.window_hop_s) == (0.8, ["dog1"], 3)


def test_sources_inherit_filters_and_override_them_with_quiet_hours_in_either_form():
    config = config_from_dict({**sources({"name": "garden", "device": "USB"},
                                         {"name": "pond", "device": "hw:2",
                                          "filters": {"quiet_hours": "22:00-06:00", "confirm": True}},
                                         {"name": "shed", "device": "hw:3", "filters": {"quiet_hours": ""}}),
                               "filters": {"quiet_hours": ["12:00-13:00", "01:00-02:00"], "noise": True}})
    garden, pond, shed = config.source_list
    assert garden.filters == config.filters
    assert (pond.filters.quiet_hours, pond.filters.confirm, pond.filters.noise) == (["22:00-06:00"], True, True)
    assert shed.filters.quiet_hours == [] and shed.filters.noise
    plain = config_from_dict({"filters": {"quiet_hours": "22:00-06:00"}})
    assert plain.filters.quiet_hours == ["22:00-06:00"] and plain.source_list[0].filters == plain.filters


@pytest.mark.parametrize(("table", "message"), [
    (sources({"device": "x"}), 'audio.sources[0].name: required (a name for the source, e.g. "garden")'),
    (sources({"name": "a"}, {"name": "Back yard"}),
     "audio.sources[1].name: 'Back yard' must be 1 to 32 of a-z, 0-9, '_' and '-', starting with a letter or digit "
     "(it names files, MQTT topics and entities)"),
    (sources({"name": "a/b"}), "audio.sources[0].name: 'a/b' must be 1 to 32"),
    (sources({"name": 7}), "audio.sources[0].name: 7 must be 1 to 32"),
    (sources({"name": "x" * 33}), "audio.sources[0].name: 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' must be"),
    (sources({"name": "pond"}, {"name": "garden"}, {"name": "pond"}),
     "audio.sources[2].name: 'pond' is already the name of audio.sources[0]"),
    (sources({"name": "a", "devise": "x"}), "audio.sources[0].devise: unknown key"),
    (sources({"name": "a", "sources": []}),
     "audio.sources[0].sources: cannot be set per source (set it in its section: every source shares it)"),
    (sources({"name": "a", "ring_seconds": "long"}), "audio.sources[0].ring_seconds: expected float, got str"),
    (sources({"name": "a"}, {"name": "b", "ring_seconds": 2}),
     "audio.sources[1].ring_seconds: must be within 6..600 (more than one window)"),
    (sources({"name": "a"}, {"name": "b", "source": "file"}),
     'audio.sources[1].files: required when audio.sources[1].source = "file"'),
    (sources({"name": "a", "source": "radio"}), 'audio.sources[0].source: expected "mic", "file" or "url"'),
    (sources({"name": "a", "retry_initial_s": 9, "retry_max_s": 1}),
     "audio.sources[0].retry_initial_s: must be > 0 and <= audio.sources[0].retry_max_s"),
    (sources({"name": "a", "detection": {"threshold": 2}}),
     "audio.sources[0].detection.threshold: must be within 0..1"),
    (sources({"name": "a", "detection": {"species_thresholds": {"amerob": -1}}}),
     "audio.sources[0].detection.species_thresholds.amerob: must be within 0..1"),
    (sources({"name": "a", "detection": {"treshold": 0.5}}), "audio.sources[0].detection.treshold: unknown key"),
    (sources({"name": "a", "detection": {"window_hop_s": 1}}),
     "audio.sources[0].detection.window_hop_s: cannot be set per source"),
    (sources({"name": "a", "detection": {"range_filter": True}}),
     "audio.sources[0].detection.range_filter: cannot be set per source"),
    (sources({"name": "a", "detection": 0.5}), "audio.sources[0].detection: expected a table"),
    ({"audio": {"sources": {"name": "a"}}}, "audio.sources: expected an array of tables ([[audio.sources]])"),
    ({"audio": {"sources": ["a"]}}, "audio.sources: expected an array of tables ([[audio.sources]])"),
])
def test_bad_source_entries_name_the_key(table, message):
    with pytest.raises(ConfigError) as caught:
        config_from_dict(table)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_with_sources_the_audio_table_only_gives_defaults():
    """[audio] source = "file" without files is fine once every source says what it plays."""
    config = config_from_dict({"audio": {"source": "file", "sources": [{"name": "a", "files": ["a.wav"]}]}})
    assert config.source_list[0].audio.files == ["a.wav"]


def test_birdd_run_reports_a_bad_source_in_one_line_and_exits_2(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('[audio]\nsource = "file"\n[[audio.sources]]\nname = "garden"\nfiles = ["a.wav"]\n'
                    '[[audio.sources]]\nname = "Garden"\nfiles = ["b.wav"]\n')
    birdd = str(Path(sys.executable).with_name("birdd"))
    run = subprocess.run([birdd, "run", "-c", str(path)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [
        f"birdd: error: {path}: audio.sources[1].name: 'Garden' must be 1 to 32 of a-z, 0-9, '_' and '-', "
        "starting with a letter or digit (it names files, MQTT topics and entities)"]


def test_a_source_override_the_model_lacks_is_named_by_the_source(tmp_path, trained_model, synthetic_corpus):
    soundscape = sorted((synthetic_corpus / "test_soundscapes").glob("*.ogg"))[0]
    path = tmp_path / "config.toml"
    path.write_text(f'[model]\npath = "{trained_model}"\n[mqtt]\nenabled = false\n'
                    f'[outbox]\npath = "{tmp_path / "outbox.sqlite"}"\n[store]\npath = "{tmp_path / "d.sqlite"}"\n'
                    f'[clips]\ndir = "{tmp_path / "clips"}"\n[audio]\nsource = "file"\nfiles = ["{soundscape}"]\n'
                    '[[audio.sources]]\nname = "garden"\n[[audio.sources]]\nname = "pond"\n'
                    '[audio.sources.detection]\ninclude = ["nosuch1"]\n')
    birdd = str(Path(sys.executable).with_name("birdd"))
    run = subprocess.run([birdd, "run", "-c", str(path)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines()[-1] == (
        f"birdd: error: {path}: audio.sources[1].detection.include: species code(s) not in the model: nosuch1")
