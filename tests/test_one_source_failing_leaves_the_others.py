"""A source that fails is reported and retried while the other sources go on detecting; it joins in once it works."""

from __future__ import annotations

import json
import shutil
import signal
import time

import pytest
from daemon_process import Daemon, write_config
from test_sources_detect_as_each_alone import with_sources

from daemon.config import load_config
from daemon.store.source_health import health_path

pytestmark = pytest.mark.integration

DETECTIONS, EVENTS = "birdd/t/detections", "birdd/t/status/events"


def test_a_failing_source_is_retried_while_the_other_detects(trained_model, synthetic_corpus, tmp_path, mosquitto,
                                                             subscribe):
    good_file, late_file = sorted((synthetic_corpus / "test_soundscapes").glob("*.ogg"))[:2]
    late = tmp_path / "not-yet" / "late.ogg"  # its folder does not exist when the daemon starts
    sub = subscribe(mosquitto, DETECTIONS, EVENTS)
    config = with_sources(write_config(tmp_path / "config.toml", {
        "station": {"name": "t"},
        "audio": {"source": "file", "realtime": True, "loop": True, "retry_initial_s": 0.5, "retry_max_s": 1.0},
        "model": {"path": str(trained_model)},
        "detection": {"threshold": 0.0},
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port, "reconnect_min_s": 0.2, "reconnect_max_s": 1.0},
        "outbox": {"path": str(tmp_path / "outbox.sqlite")},
    }), [{"name": "good", "files": [str(good_file)]}, {"name": "late", "files": [str(late)]}])
    health = health_path(load_config(config).store.path)
    daemon = Daemon(config, tmp_path / "daemon.log")
    try:
        failed = sub.wait_for(lambda ms: any(m.json()["kind"] == "source_failed" for m in ms), topic=EVENTS)
        assert any(m.json()["message"].startswith("late: audio.files: no audio files found") for m in failed)
        sub.wait_for(lambda ms: len(ms) >= 1, topic=DETECTIONS, timeout=20)  # the other source detects meanwhile
        sources = {s["name"]: s for s in json.loads(health.read_text())["sources"]}
        assert (sources["good"]["state"], sources["late"]["state"]) == ("ok", "failed")
        assert "no audio files found" in sources["late"]["error"]
        time.sleep(1.5)  # a retry or two fail too: reported, the daemon stays up
        assert daemon.process.poll() is None
        before = len(sub.messages(DETECTIONS))
        assert {m.json()["source_name"] for m in sub.messages(DETECTIONS)} == {"good"}

        late.parent.mkdir()
        shutil.copy(late_file, late)
        sub.wait_for(lambda ms: any(m.json()["kind"] == "source_restarted" and m.json()["message"].startswith("late:")
                                    for m in ms), topic=EVENTS, timeout=10)
        joined = sub.wait_for(lambda ms: any(m.json()["source_name"] == "late" for m in ms), topic=DETECTIONS,
                              timeout=20)
        assert any(m.json()["source_name"] == "good" for m in joined[before:])  # good never stopped
        assert all(m.json()["source"] == str(late) for m in joined if m.json()["source_name"] == "late")
        time.sleep(0.6)  # the next health write
        sources = {s["name"]: s for s in json.loads(health.read_text())["sources"]}
        assert (sources["late"]["state"], sources["late"]["restarts"], sources["good"]["restarts"]) == ("ok", 1, 0)
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(10) == 0, daemon.log.read_text()
    finally:
        daemon.close()
    log = daemon.log.read_text()
    assert "source late failed: audio.files: no audio files found" in log and "source late restarted" in log
