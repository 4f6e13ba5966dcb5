"""``birdd setup`` under a root folder: the config it writes, its dry run, a second run, uninstall and purge.

Everything runs for real under ``tmp_path`` as the root (``systemctl --root`` enables the units offline);
the model is a stand-in folder given with ``--model`` (the plan does not read it; the checks are
skipped here and tested in tests/test_setup_errors_are_one_line.py).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from daemon.config import load_config
from daemon.errors import SetupError
from daemon.install.config_text import Station, config_text
from daemon.install.layout import Layout
from daemon.install.setup import carry_out, install, install_plan, parse_broker, uninstall

pytestmark = pytest.mark.skipif(shutil.which("systemctl") is None, reason="systemctl not installed")

GARDEN = Station("garden", 42.45, -76.5, broker_host="127.0.0.1", broker_port=1884, web_port=8123)


def snapshot(root: Path) -> dict[str, tuple]:
    """Every path under ``root`` with its kind, mode and content (or link target)."""
    found = {}
    for path in [root, *root.rglob("*")] if root.exists() else []:
        mode = path.lstat().st_mode & 0o7777
        if path.is_symlink():
            found[str(path)] = ("link", os.readlink(path))
        elif path.is_dir():
            found[str(path)] = ("dir", mode)
        else:
            found[str(path)] = ("file", mode, path.read_bytes())
    return found


def installed(root: Path, station: Station = GARDEN, **options) -> list[str]:
    said: list[str] = []
    model = root.parent / "model"
    model.mkdir(exist_ok=True)
    install(replace(station, model=str(model)), Layout.under(root), dry_run=options.get("dry_run", False),
            skip_checks=True, force=options.get("force", False), say=said.append)
    return said


def removed(root: Path, purge: bool = False, dry_run: bool = False) -> list[str]:
    said: list[str] = []
    uninstall(Layout.under(root), purge=purge, dry_run=dry_run, say=said.append)
    return said


def a_lived_in_root(tmp_path: Path) -> Path:
    """A root that already holds a system's files: setup must leave them as they are."""
    root = tmp_path / "root"
    (root / "etc/systemd/system/multi-user.target.wants").mkdir(parents=True)
    (root / "etc/hostname").write_text("station\n")
    (root / "etc/systemd/system/other.service").write_text("[Service]\nExecStart=/bin/true\n")
    (root / "etc/systemd/system/multi-user.target.wants/other.service").symlink_to("../other.service")
    (root / "var/lib").mkdir(parents=True)
    return root


def test_the_config_loads_and_names_the_station_and_its_place(tmp_path):
    layout = Layout.under(tmp_path / "root")
    path = tmp_path / "config.toml"
    path.write_text(config_text(replace(GARDEN, mic="USB"), layout))
    config = load_config(path)
    assert (config.station.name, config.station.latitude, config.station.longitude) == ("garden", 42.45, -76.5)
    assert config.detection.range_filter and (config.audio.source, config.audio.device) == ("mic", "USB")
    assert (config.mqtt.host, config.mqtt.port, config.web.port) == ("127.0.0.1", 1884, 8123)
    assert config.model.path == str(layout.model_dir) and config.outbox.path.startswith(str(layout.state_dir))
    system = config_text(GARDEN, Layout.under("/"))  # on a station: the paths the sandboxed service sees
    assert 'path = "/var/lib/birdd/model"' in system and 'path = "/var/lib/birdd/outbox.sqlite"' in system


def test_a_stream_url_is_a_url_source(tmp_path):
    station = replace(GARDEN, url="rtsp://camera.local/live")
    path = tmp_path / "config.toml"
    path.write_text(config_text(station, Layout.under(tmp_path)))
    audio = load_config(path).audio
    assert (audio.source, audio.url) == ("url", station.url)


def test_a_dry_run_lists_every_change_and_makes_none(tmp_path):
    root = a_lived_in_root(tmp_path)
    before = snapshot(root)
    said = "\n".join(installed(root, dry_run=True))
    assert snapshot(root) == before
    for path in ("etc/birdd/config.toml", "etc/systemd/system/birdd.service", "etc/systemd/system/birdd-web.service",
                 "etc/birdd/setup-manifest.json"):
        assert f"would write {root / path} (new," in said
    assert "would create directory " + str(root / "var/lib/private") + " (mode 0700)" in said
    assert f"would enable at boot: systemctl --root={root} enable birdd.service birdd-web.service" in said
    assert '    latitude = 42.45' in said  # new files are shown whole
    assert said.endswith("the page: http://127.0.0.1:8123/   (detections on MQTT: birdd/garden/#)")


def test_a_second_run_changes_nothing_and_says_so(tmp_path):
    root = tmp_path / "root"
    installed(root)
    assert (root / "etc/systemd/system/multi-user.target.wants/birdd.service").is_symlink()
    after_first = snapshot(root)
    said = installed(root)
    assert snapshot(root) == after_first
    assert f"nothing to change: birdd is installed as asked under {root}" in said
    assert not any(line.startswith(("write", "update", "create", "enable")) for line in said), said


def test_a_new_place_is_a_diff_then_an_update(tmp_path):
    root = tmp_path / "root"
    installed(root)
    moved = replace(GARDEN, latitude=51.51, longitude=-0.13)
    before = snapshot(root)
    dry = "\n".join(installed(root, moved, dry_run=True))
    assert snapshot(root) == before
    assert f"would update {root / 'etc/birdd/config.toml'}" in dry
    assert "    -latitude = 42.45\n    -longitude = -76.5\n    +latitude = 51.51\n    +longitude = -0.13" in dry
    assert "would update " + str(root / "etc/systemd/system/birdd.service") not in dry  # the units stay
    installed(root, moved)
    assert load_config(root / "etc/birdd/config.toml").station.latitude == 51.51


def test_a_config_edited_by_hand_is_not_overwritten_without_force(tmp_path):
    root = tmp_path / "root"
    installed(root)
    config = root / "etc/birdd/config.toml"
    config.write_text(config.read_text().replace("range_filter = true", "range_filter = true\nthreshold = 0.7"))
    installed(root)  # the same station: setup needs no change, the edit stays
    assert "threshold = 0.7" in config.read_text()
    with pytest.raises(SetupError, match=rf"^{config}: changed since birdd setup wrote it; --force replaces it$"):
        installed(root, replace(GARDEN, name="orchard"))
    installed(root, replace(GARDEN, name="orchard"), force=True)
    assert load_config(config).station.name == "orchard"


def test_uninstall_leaves_the_root_as_it_was(tmp_path):
    root = a_lived_in_root(tmp_path)
    before = snapshot(root)
    installed(root)
    assert snapshot(root) != before
    said = removed(root)
    assert snapshot(root) == before, said
    assert said[0] == f"stop and disable: systemctl --root={root} disable birdd.service birdd-web.service"
    with pytest.raises(SetupError, match=r"setup-manifest\.json: not found, so birdd setup installed nothing"):
        removed(root)


def test_uninstall_keeps_the_data_and_purge_removes_it(tmp_path):
    root = tmp_path / "root"
    layout = Layout.under(root)
    for purge in (False, True):
        installed(root)
        (layout.state_dir / "clips/2026-05-25").mkdir(parents=True)
        (layout.state_dir / "detections.sqlite").write_bytes(b"rows")
        (layout.state_dir / "clips/2026-05-25/1.flac").write_bytes(b"audio")
        (root / "var/lib/birdd").symlink_to("private/birdd")  # what systemd makes at the first start
        if not purge:
            said = removed(root)
            assert f"kept {layout.state_dir}: it holds data (--purge removes it)" in said
            assert (layout.state_dir / "detections.sqlite").read_bytes() == b"rows"
            assert not (root / "etc").exists()
            shutil.rmtree(root)
    dry = removed(root, purge=True, dry_run=True)
    assert f"would remove {layout.state_dir} (the station's data: --purge)" in dry
    removed(root, purge=True)
    assert not root.exists()  # setup made the root folder itself: nothing is left


def test_setup_refuses_a_file_it_did_not_write(tmp_path):
    root = tmp_path / "root"
    (root / "etc/birdd").mkdir(parents=True)
    (root / "etc/birdd/config.toml").write_text('[station]\nname = "manual"\n')
    with pytest.raises(SetupError, match=r"config\.toml: not written by birdd setup; --force replaces it$"):
        installed(root)
    assert not (root / "etc/systemd").exists()  # the plan is made whole before anything is changed


def test_a_failed_step_can_be_undone(tmp_path):
    """A step that fails mid-way (here: the unit folder is a file) leaves a manifest that uninstall follows."""
    root = tmp_path / "root"
    (root / "etc/systemd").mkdir(parents=True)
    (root / "etc/systemd/system").write_text("not a folder")
    layout = Layout.under(root)
    plan, _ = install_plan(replace(GARDEN, model=str(tmp_path)), layout)
    with pytest.raises(SetupError, match=r"^write .*birdd.service \(new, \d+ lines, mode 0644\): [^\n]+$"):
        carry_out(plan, False, lambda line: None)
    assert layout.manifest.is_file()
    removed(root)
    assert sorted(p.name for p in root.rglob("*")) == ["etc", "system", "systemd"]


@pytest.mark.parametrize(("text", "expected"), [
    ("localhost:1883", ("localhost", 1883)), ("10.0.0.2", ("10.0.0.2", 1883)), ("[::1]:1884", ("::1", 1884)),
])
def test_broker_addresses(text, expected):
    assert parse_broker(text) == expected


@pytest.mark.parametrize("text", ["host:", "host:port", ":1883", "host:70000"])
def test_bad_broker_addresses_name_the_option(text):
    with pytest.raises(SetupError, match=rf"^--broker {text}: expected HOST:PORT"):
        parse_broker(text)
