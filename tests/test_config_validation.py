"""config.toml documents every key; bad configs give one line naming the key."""

import dataclasses
import tomllib
import typing
from pathlib import Path

import pytest

from daemon.config import Config, config_from_dict, load_config
from daemon.errors import ConfigError

DEFAULT = Path(__file__).resolve().parent.parent / "config.toml"


def test_default_config_validates_and_names_every_key():
    config = load_config(DEFAULT)
    assert config == Config()  # the documented values are the defaults
    text = DEFAULT.read_text()
    data = tomllib.loads(text)
    for section in dataclasses.fields(Config):
        cls = typing.get_type_hints(Config)[section.name]
        for field in dataclasses.fields(cls):
            assert field.name in data[section.name] or f"# {field.name} = " in text, f"{section.name}.{field.name}"


@pytest.mark.parametrize(("table", "message"), [
    ({"mqtt": {"port": "1883"}}, "mqtt.port: expected int, got str"),
    ({"mqtt": {"port": 70000}}, "mqtt.port: must be within 1..65535"),
    ({"mqtt": {"prot": 1}}, "mqtt.prot: unknown key"),
    ({"mqqt": {}}, "mqqt: unknown section"),
    ({"audio": {"source": "file"}}, 'audio.files: required when audio.source = "file"'),
    ({"audio": {"source": "radio"}}, 'audio.source: expected "mic" or "file"'),
    ({"detection": {"threshold": 1.5}}, "detection.threshold: must be within 0..1"),
    ({"detection": {"species_thresholds": {"amerob": "high"}}},
     "detection.species_thresholds.amerob: expected float, got str"),
    ({"detection": {"window_hop_s": 2.5}}, "detection.window_hop_s: must be a whole number from 1 to 5"),
    ({"audio": {"files": "a.wav", "source": "file"}}, "audio.files: expected a list, got str"),
    ({"logging": {"level": "LOUD"}}, "logging.level: expected DEBUG, INFO, WARNING or ERROR"),
    ({"outbox": {"max_rows": True}}, "outbox.max_rows: expected int, got bool"),
])
def test_bad_values_name_the_key(table, message):
    with pytest.raises(ConfigError) as info:
        config_from_dict(table)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_file_errors_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match=r"absent\.toml: no such file"):
        load_config(tmp_path / "absent.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[mqtt\nport = 1")
    with pytest.raises(ConfigError, match=r"bad\.toml: not valid TOML"):
        load_config(bad)


def test_integers_are_accepted_for_floats():
    assert config_from_dict({"detection": {"threshold": 1}}).detection.threshold == 1.0
