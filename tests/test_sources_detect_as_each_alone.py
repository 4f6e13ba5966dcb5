"""Two sources in one daemon give, window for window, what each gives alone; their names reach every output; a third
source's own quiet hours (its [audio.sources.filters]) silence it alone."""

from __future__ import annotations

import json
import sqlite3
import urllib.request
from datetime import datetime
from pathlib import Path

import pytest
import soundfile as sf
from conftest import HOST, free_port
from daemon_process import Daemon, toml_value, write_config
from web_fixtures import ServerThread

from daemon.batch.replay import score_file
from daemon.config import DetectionConfig, load_config
from daemon.model.loader import load_model
from daemon.model.windows import WindowGrid
from daemon.pipeline.policy import DetectionPolicy
from daemon.store.source_health import health_path

pytestmark = pytest.mark.integration
SECTIONS = ("detection", "filters")



def seconds(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def with_sources(path: Path, sources: list[dict]) -> Path:
    """Append ``[[audio.sources]]`` tables (a ``detection`` or ``filters`` key becomes its sub-table)."""
    lines = []
    for source in sources:
        lines.append("[[audio.sources]]")
        lines += [f"{key} = {toml_value(value)}" for key, value in source.items() if key not in SECTIONS]
        for section in SECTIONS:
            if section in source:
                lines.append(f"[audio.sources.{section}]")
                lines += [f"{key} = {toml_value(value)}" for key, value in source[section].items()]
    path.write_text(path.read_text() + "\n".join(lines) + "\n")
    return path


def get(url: str, token: str | None = None):
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_two_sources_each_detect_as_alone(trained_model, synthetic_corpus, tmp_path, mosquitto, subscribe,
                                          monkeypatch):
    garden_file, pond_file = sorted((synthetic_corpus / "test_soundscapes").glob("*.ogg"))[:2]
    files = {"garden": garden_file, "pond": pond_file}
    model = load_model(trained_model)
    # threshold 0: every window reports every species; pond overrides [detection] and leaves one species out
    policies = {"garden": DetectionConfig(threshold=0.0),
                "pond": DetectionConfig(threshold=0.0, exclude=[model.species[0].code])}
    outbox = tmp_path / "outbox.sqlite"
    sub = subscribe(mosquitto, "birdd/t/detections", "homeassistant/#")
    config = with_sources(write_config(tmp_path / "config.toml", {
        "station": {"name": "t"},
        "audio": {"source": "file", "realtime": False},
        "model": {"path": str(trained_model)},
        "detection": {"threshold": 0.0},
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port, "reconnect_min_s": 0.2, "reconnect_max_s": 1.0},
        "outbox": {"path": str(outbox)},
        "archive": {"enabled": True, "dir": str(tmp_path / "archive"), "minutes_per_hour": 60},
        "web": {"bind": HOST, "port": free_port(), "auth": "token", "password_env": "SOURCES_TEST_TOKEN"},
    }), [{"name": "garden", "files": [str(garden_file)]},
         {"name": "pond", "files": [str(pond_file)], "detection": {"exclude": policies["pond"].exclude}},
         {"name": "night", "files": [str(garden_file)], "filters": {"quiet_hours": "00:00-24:00"}}])
    daemon = Daemon(config, tmp_path / "daemon.log")
    try:
        assert daemon.wait(90) == 0, daemon.log.read_text()
    finally:
        daemon.close()

    loaded = load_config(config)
    with sqlite3.connect(loaded.store.path) as db:
        rows = db.execute("SELECT source_name, source, clip FROM detections").fetchall()
    messages = sub.wait_for(lambda ms: len([m for m in ms if m.topic == "birdd/t/detections"]) >= len(rows),
                            timeout=30)
    payloads = [m.json() for m in messages if m.topic == "birdd/t/detections"]
    assert len(payloads) == len(rows) and {p["source_name"] for p in payloads} == {"garden", "pond"}
    for name, path in files.items():
        mine = [p for p in payloads if p["source_name"] == name]
        assert {p["source"] for p in mine} == {str(path)}
        origin = min(seconds(p["start"]) for p in mine)
        got = [(round(seconds(p["end"]) - origin), p["species_code"], p["confidence"]) for p in mine]
        policy = DetectionPolicy(policies[name], model.species)
        result = score_file(model, path, WindowGrid())
        expected = [(int(end) // 32000, model.species[j].code, round(c, 4))
                    for end, scores in zip(result.ends, result.scores, strict=True) for j, c in policy.select(scores)]
        assert got == expected and expected, name
    assert len({p["detection_id"] for p in payloads}) == len(payloads)
    with sqlite3.connect(outbox) as db:
        assert db.execute("SELECT count(*) FROM outbox").fetchone()[0] == 0  # every one acknowledged

    discovery = {m.topic: m.json() for m in messages if m.topic.startswith("homeassistant/")}
    for name in files:
        entity = discovery[f"homeassistant/sensor/birdd_t/{name}_last_species/config"]
        assert entity["unique_id"] == f"birdd_t_{name}_last_species" and f"'{name}'" in entity["value_template"]

    assert all(str(files[name]) == source for name, source, _ in rows)
    clips = [(name, clip) for name, _, clip in rows if clip]
    assert {name for name, _ in clips} == {"garden", "pond"}
    assert all(Path(clip).name.startswith(f"{name}_") for name, clip in clips)
    assert all((Path(loaded.clips.dir) / clip).is_file() for _, clip in clips)

    for name in ("garden", "pond", "night"):  # every source's audio in the archive, in a folder of its name
        kept = sum(sf.info(path).frames for path in (tmp_path / "archive" / name).rglob("*.flac"))
        assert 15 * 32000 <= kept <= 20 * 32000, name  # a piece shorter than a window at a minute's edge is not kept
    health = json.loads(health_path(loaded.store.path).read_text())
    assert [(s["name"], s["state"], s["restarts"], s["samples"]) for s in health["sources"]] == [
        ("garden", "finished", 0, 20 * 32000), ("pond", "finished", 0, 20 * 32000),
        ("night", "finished", 0, 20 * 32000)]
    night = health["sources"][2]  # garden's audio, every window scored, every detection in its quiet hours
    assert night["windows"] == health["sources"][0]["windows"] > 0 and night["detections"] == 0

    monkeypatch.setenv("SOURCES_TEST_TOKEN", "secret")
    web = ServerThread(loaded)
    try:
        base = f"{web.url}/api/v2"
        pond = get(f"{base}/detections?source=pond&numResults=1000", "secret")
        pond_rows = sum(name == "pond" for name, _, _ in rows)
        assert pond["total"] == pond_rows == len(pond["data"]) > 0
        assert {(d["source"]["name"], d["source"]["id"]) for d in pond["data"]} == {("pond", str(pond_file))}
        assert get(f"{base}/detections?source=nowhere", "secret")["total"] == 0
        streams = get(f"{base}/streams/health", "secret")
        assert [(s["source"], s["url"], s["process_state"], s["restart_count"], s["total_bytes_received"])
                for s in streams] == [("garden", str(garden_file), "stopped", 0, 4 * 20 * 32000),
                                      ("pond", str(pond_file), "stopped", 0, 4 * 20 * 32000),
                                      ("night", str(garden_file), "stopped", 0, 4 * 20 * 32000)]
        status = get(f"{base}/streams/status", "secret")
        assert (status["total_streams"], status["healthy_streams"], status["unhealthy_streams"]) == (3, 0, 3)
        assert [s["source"] for s in status["streams_summary"]] == ["garden", "pond", "night"]
    finally:
        web.stop()
