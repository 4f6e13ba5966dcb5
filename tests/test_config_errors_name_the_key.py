"""A bad configuration is one line that names the key (and the file), and `birdd run` exits 2 on it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from daemon.config import config_from_dict, load_config
from daemon.errors import ConfigError


@pytest.mark.parametrize(("table", "message"), [
    ({"mqqt": {}}, "mqqt: unknown section (expected one of station, audio, model, cascade, detection, filters, mqtt, "
                   "outbox, birdweather, webhooks, notifications, store, clips, archive, web, metrics, logging, "
                   "sound_level)"),
    ({"birdweather": {"enabled": True}}, "birdweather.token: required when birdweather.enabled (or "
                                         "birdweather.token_file)"),
    ({"webhooks": {"url": "http://x"}}, "webhooks: expected an array of tables ([[webhooks]])"),
    ({"webhooks": [{"name": "a", "url": "ftp://x"}]}, "webhooks[0].url: must start with http:// or https://"),
    ({"webhooks": [{"name": "a", "url": "http://x"}, {"name": "a", "url": "http://y"}]},
     "webhooks[1].name: 'a' is used by another webhook"),
    ({"notifications": {"quiet_hours": "22:00"}},
     'notifications.quiet_hours[0]: \'22:00\': expected "HH:MM-HH:MM" (local time, e.g. "22:00-06:00")'),
    ({"notifications": {"quiet_hours": ["22:00-06:00", "7-8"]}},
     'notifications.quiet_hours[1]: \'7-8\': expected "HH:MM-HH:MM" (local time, e.g. "22:00-06:00")'),
    ({"audio": {"sources": [{"name": "a", "device": "x"}, {"name": "b", "device": "y"},
                            {"name": "c", "device": "z", "filters": {"quiet_hours": ["22:00-06:00", "25:00-01:00"]}}]}},
     'audio.sources[2].filters.quiet_hours[1]: \'25:00-01:00\': expected "HH:MM-HH:MM" (local time, e.g. '
     '"22:00-06:00")'),
    ({"audio": {"sources": [{"name": "a", "device": "x", "filters": {"confirm_windows": 0}}]}},
     "audio.sources[0].filters.confirm_windows: must be within 1..60"),
    ({"audio": {"sources": [{"name": "a", "device": "x", "filters": {"quiet": 1}}]}},
     "audio.sources[0].filters.quiet: unknown key"),
    ({"audio": {"sources": [{"name": "a", "device": "x", "filters": ["confirm"]}]}},
     "audio.sources[0].filters: expected a table"),
    ({"notifications": {"new_species": ["week"]}}, 'notifications.new_species: expected "today", "year" or "ever"'),
    ({"notifications": {"urls": ["json://a/", "json://a/"]}}, "notifications.urls: a URL is listed twice"),
    ({"mqtt": 1883}, "mqtt: expected a table"),
    ({"mqtt": {"prot": 1}}, "mqtt.prot: unknown key"),
    ({"mqtt": {"port": "1883"}}, "mqtt.port: expected int, got str"),
    ({"mqtt": {"port": 70000}}, "mqtt.port: must be within 1..65535"),
    ({"mqtt": {"qos": 3}}, "mqtt.qos: must be 0, 1 or 2"),
    ({"mqtt": {"reconnect_min_s": 5, "reconnect_max_s": 1}},
     "mqtt.reconnect_min_s: must be > 0 and <= mqtt.reconnect_max_s"),
    ({"outbox": {"max_rows": True}}, "outbox.max_rows: expected int, got bool"),
    ({"outbox": {"max_rows": 0}}, "outbox.max_rows: must be >= 1"),
    ({"store": {"max_rows": 0}}, "store.max_rows: must be >= 1"),
    ({"clips": {"format": "mp3"}}, 'clips.format: expected "flac" or "ogg"'),
    ({"clips": {"margin_s": 9}}, "clips.margin_s: must be within 0..5"),
    ({"clips": {"never_species": "dog1"}}, "clips.never_species: expected a list, got str"),
    ({"clips": {"min_free_mb": -1}}, "clips.min_free_mb: must be >= 0"),
    ({"archive": {"minutes_per_hour": 0}}, "archive.minutes_per_hour: must be within 1..60"),
    ({"archive": {"minutes_per_hour": 61}}, "archive.minutes_per_hour: must be within 1..60"),
    ({"archive": {"minutes_per_hour": 5.5}}, "archive.minutes_per_hour: expected int, got float"),
    ({"archive": {"max_total_mb": 0}}, "archive.max_total_mb: must be > 0"),
    ({"archive": {"min_free_mb": -1}}, "archive.min_free_mb: must be >= 0"),
    ({"archive": {"dir": ""}}, "archive.dir: must not be empty"),
    ({"archive": {"format": "ogg"}}, "archive.format: unknown key"),
    ({"web": {"auth": "digest"}}, 'web.auth: expected "none", "token" or "basic"'),
    ({"web": {"port": 0}}, "web.port: must be within 1..65535"),
    ({"web": {"sse_poll_s": 5}}, "web.sse_poll_s: must be within 0..1 (exclusive of 0)"),
    ({"audio": {"source": "file"}}, 'audio.files: required when audio.source = "file"'),
    ({"audio": {"source": "radio"}}, 'audio.source: expected "mic", "file" or "url"'),
    ({"audio": {"source": "url"}}, 'audio.url: required when audio.source = "url"'),
    ({"audio": {"source": "url", "url": "ftp://u:secret@host/x"}},
     "audio.url: expected a file path or a URL of rtsp://, rtsps://, http://, https://, file://"),
    ({"audio": {"rtsp_transport": "sctp"}}, 'audio.rtsp_transport: expected "tcp" or "udp"'),
    ({"audio": {"stall_s": 0}}, "audio.stall_s: must be > 0 and <= 86400"),
    ({"audio": {"max_drift_s": -1.0}}, "audio.max_drift_s: must be > 0 and <= 86400"),
    ({"sound_level": {"interval_s": 0}}, "sound_level.interval_s: must be within 1..86400"),
    ({"sound_level": {"calibration_db": 1e9}}, "sound_level.calibration_db: must be within -200..200"),
    ({"audio": {"source": "file", "files": "a.wav"}}, "audio.files: expected a list, got str"),
    ({"audio": {"source": "file", "files": ["a.wav", 2]}}, "audio.files[1]: expected str, got int"),
    ({"audio": {"ring_seconds": 5}}, "audio.ring_seconds: must be within 6..600 (more than one window)"),
    ({"station": {"latitude": "north"}}, "station.latitude: expected float, got str"),
    ({"detection": {"threshold": 1.5}}, "detection.threshold: must be within 0..1"),
    ({"detection": {"threshold": float("nan")}}, "detection.threshold: must be a finite number"),
    ({"audio": {"ring_seconds": float("inf")}}, "audio.ring_seconds: must be a finite number"),
    ({"station": {"name": "a/#"}},
     "station.name: must be non-empty, without '/', '+' or '#' (it is part of MQTT topics)"),
    ({"station": {"latitude": 500}}, "station.latitude: must be within -90..90"),
    ({"mqtt": {"keepalive_s": -5}}, "mqtt.keepalive_s: must be within 5..65535"),
    ({"detection": {"species_thresholds": {"amerob": "high"}}},
     "detection.species_thresholds.amerob: expected float, got str"),
    ({"detection": {"species_thresholds": {"amerob": 2}}}, "detection.species_thresholds.amerob: must be within 0..1"),
    ({"detection": {"window_hop_s": 2.5}}, "detection.window_hop_s: must be a whole number from 1 to 5"),
    ({"model": {"threads": 0}}, "model.threads: must be within 1..64"),
    ({"metrics": {"port": -1}}, "metrics.port: must be within 0..65535"),
    ({"logging": {"level": "LOUD"}}, "logging.level: expected DEBUG, INFO, WARNING or ERROR"),
])
def test_bad_values_are_one_line_naming_the_key(table, message):
    with pytest.raises(ConfigError) as info:
        config_from_dict(table)
    assert str(info.value) == message


def test_load_config_prefixes_the_file(tmp_path):
    path = tmp_path / "birdd.toml"
    path.write_text('[audio]\nsource = "file"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f'{path}: audio.files: required when audio.source = "file"'


def test_file_errors_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match=r"absent\.toml: no such file"):
        load_config(tmp_path / "absent.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[mqtt\nport = 1")
    with pytest.raises(ConfigError, match=r"bad\.toml: not valid TOML") as info:
        load_config(bad)
    assert "\n" not in str(info.value)


def test_integers_are_accepted_for_floats():
    config = config_from_dict({"detection": {"threshold": 1}, "station": {"latitude": 52}})
    assert config.detection.threshold == 1.0 and isinstance(config.station.latitude, float)


def test_birdd_run_reports_a_config_error_as_one_line_and_exit_2(tmp_path):
    """What journalctl shows, and the exit status that RestartPreventExitStatus=2 keeps from restarting."""
    path = tmp_path / "birdd.toml"
    path.write_text("[mqtt]\nport = 70000\n")
    birdd = str(Path(sys.executable).with_name("birdd"))
    proc = subprocess.run([birdd, "run", "-c", str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr == f"birdd: error: {path}: mqtt.port: must be within 1..65535\n"
