"""The daemon end to end against a real mosquitto: payloads, status, outages, kills, reloads, bad input."""

from __future__ import annotations

import json
import re
import shutil
import signal
import sqlite3
import time
from pathlib import Path

import pytest
from daemon_process import Daemon, write_config

pytestmark = pytest.mark.integration

PAYLOAD_KEYS = {"detection_id", "station", "source", "start", "end", "species_code", "common_name",
                "scientific_name", "confidence", "model", "id", "clip", "source_name"}
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture
def run_daemon(tmp_path, trained_model, synthetic_corpus):
    """Start ``birdd run`` with a file source over the synthetic test soundscapes; killed at teardown."""
    daemons: list[Daemon] = []

    def start(broker=None, *, realtime=False, loop=False, threshold=0.3, mqtt=None, model=None, name="d",
              port=None, extra=None) -> Daemon:
        files = sorted(str(p) for p in (synthetic_corpus / "test_soundscapes").glob("*.ogg"))
        mqtt_table = {"host": "127.0.0.1", "port": port or (broker.port if broker else 1),
                      "reconnect_min_s": 0.2, "reconnect_max_s": 1.0, "status_interval_s": 1.0, **(mqtt or {})}
        config = write_config(tmp_path / f"{name}.toml", {
            "station": {"name": "test"},
            "audio": {"source": "file", "files": files, "realtime": realtime, "loop": loop},
            "model": {"path": str(model or trained_model)},
            "detection": {"threshold": threshold},
            "mqtt": mqtt_table,
            "outbox": {"path": str(tmp_path / "outbox.sqlite")},
            **(extra or {}),
        })
        daemon = Daemon(config, tmp_path / f"{name}.log")
        daemons.append(daemon)
        return daemon

    yield start
    for daemon in daemons:
        daemon.close()


def outbox_ids(tmp_path: Path) -> list[str]:
    with sqlite3.connect(tmp_path / "outbox.sqlite") as db:
        return [json.loads(p)["detection_id"] for (p,) in db.execute("SELECT payload FROM outbox ORDER BY seq")]


def logged_detections(log: Path) -> int:
    return int(re.search(r"birdd stopped: [\d.]+ s of audio, \d+ windows, (\d+) detections", log.read_text()).group(1))


def test_detections_status_and_discovery(mosquitto, subscribe, run_daemon):
    sub = subscribe(mosquitto, "birdd/test/#", "homeassistant/#")
    daemon = run_daemon(mosquitto)
    assert daemon.wait(60) == 0
    detections = [m.json() for m in sub.wait_for(lambda m: len(m) >= 1, topic="birdd/test/detections")]
    sub.wait_for(lambda m: m and m[-1].text == "offline", topic="birdd/test/status")
    produced = logged_detections(daemon.log)
    detections = [m.json() for m in sub.wait_for(lambda m: len(m) >= produced, topic="birdd/test/detections")]
    assert len({d["detection_id"] for d in detections}) == produced > 0
    first = detections[0]
    assert set(first) == PAYLOAD_KEYS
    assert first["station"] == "test" and first["source"].endswith(".ogg")
    assert ISO_MS.match(first["start"]) and ISO_MS.match(first["end"])
    assert 0.3 <= first["confidence"] <= 1 and first["model"]["backend"] == "stsg"
    assert [m.text for m in sub.messages("birdd/test/status")][:1] == ["online"]
    stats = sub.wait_for(lambda m: len(m) >= 1, topic="birdd/test/status/stats")[-1].json()
    assert {"uptime_s", "windows", "detections", "audio_overruns", "real_time_factor", "outbox_backlog",
            "mqtt_reconnects", "queue_depth"} <= set(stats)
    assert len([m for m in sub.messages() if m.topic.startswith("homeassistant/")]) == 3
    late = subscribe(mosquitto, "homeassistant/#", "birdd/test/status")  # gets what the broker retained
    retained = late.wait_for(lambda m: len(m) >= 4)
    assert all(m.retain for m in retained)
    assert {m.text for m in retained if m.topic == "birdd/test/status"} == {"offline"}
    assert all(json.loads(m.payload)["unique_id"].startswith("birdd_test_") for m in retained
               if m.topic.startswith("homeassistant/"))
    assert outbox_ids(daemon.log.parent) == []  # everything acknowledged


def test_sigterm_drains_and_exits_within_5_s(mosquitto, subscribe, run_daemon):
    sub = subscribe(mosquitto, "birdd/test/status")
    daemon = run_daemon(mosquitto, realtime=True, loop=True)
    sub.wait_for(lambda m: any(x.text == "online" for x in m))
    time.sleep(1.0)
    started = time.monotonic()
    daemon.signal(signal.SIGTERM)
    assert daemon.wait(10) == 0
    assert time.monotonic() - started < 5.0
    sub.wait_for(lambda m: m[-1].text == "offline", timeout=3)


def test_sigkill_leaves_last_will_offline(mosquitto, subscribe, run_daemon):
    sub = subscribe(mosquitto, "birdd/test/status")
    daemon = run_daemon(mosquitto, realtime=True, loop=True)
    sub.wait_for(lambda m: any(x.text == "online" for x in m))
    daemon.signal(signal.SIGKILL)
    daemon.wait(5)
    sub.wait_for(lambda m: m[-1].text == "offline", timeout=5)


def test_broker_down_10_s_loses_nothing(mosquitto, subscribe, run_daemon):
    """Ten seconds down is ten reconnect attempts at the fixture's 1-s cap: the daemon keeps detecting meanwhile."""
    sub = subscribe(mosquitto, "birdd/test/detections")
    daemon = run_daemon(mosquitto, realtime=True, loop=True, threshold=0.2)
    sub.wait_for(lambda m: len(m) >= 1, timeout=20)
    mosquitto.stop()
    time.sleep(10)
    mosquitto.start()
    time.sleep(3)
    daemon.signal(signal.SIGTERM)
    assert daemon.wait(10) == 0
    produced = logged_detections(daemon.log)
    received = sub.wait_for(lambda m: len({x.json()["detection_id"] for x in m}) >= produced, timeout=20)
    assert len({x.json()["detection_id"] for x in received}) == produced
    assert "awaiting the broker in the outbox" in daemon.log.read_text()
    assert outbox_ids(daemon.log.parent) == []


def test_sigkill_with_backlog_then_restart_delivers_every_id(make_broker, subscribe, run_daemon, tmp_path):
    offline = run_daemon(None, realtime=False, threshold=0.2, name="first")  # no broker: all stays in the outbox
    offline.wait_for_log("detection ", timeout=30)
    time.sleep(0.5)
    offline.signal(signal.SIGKILL)
    offline.wait(5)
    backlog = outbox_ids(tmp_path)
    assert backlog
    broker = make_broker()
    sub = subscribe(broker, "birdd/test/detections")
    again = run_daemon(broker, threshold=1.0, name="second")  # hears nothing new, publishes the backlog
    received = sub.wait_for(lambda m: len(m) >= len(backlog), timeout=20)
    assert [m.json()["detection_id"] for m in received][: len(backlog)] == backlog
    assert again.wait(30) == 0
    assert outbox_ids(tmp_path) == []


def test_sighup_refuses_a_tampered_bundle_and_keeps_running(mosquitto, subscribe, run_daemon, trained_model,
                                                           tmp_path):
    model = shutil.copytree(trained_model, tmp_path / "model")
    sub = subscribe(mosquitto, "birdd/test/status/events")
    daemon = run_daemon(mosquitto, realtime=True, loop=True, model=model)
    daemon.wait_for_log("birdd running")
    codebook = model / "codebook.npy"
    good = codebook.read_bytes()
    codebook.write_bytes(good[:-1] + bytes([good[-1] ^ 0xFF]))
    daemon.signal(signal.SIGHUP)
    event = sub.wait_for(lambda m: len(m) >= 1)[0].json()
    assert event["kind"] == "model_reload_failed" and "codebook.npy: sha256 does not match" in event["message"]
    assert daemon.process.poll() is None
    codebook.write_bytes(good)
    daemon.signal(signal.SIGHUP)
    events = sub.wait_for(lambda m: any(x.json()["kind"] == "model_reloaded" for x in m), timeout=10)
    assert events[-1].json()["kind"] == "model_reloaded"
    daemon.signal(signal.SIGTERM)
    assert daemon.wait(10) == 0


def test_bad_credentials_are_reported_and_nothing_is_lost(make_broker, run_daemon, tmp_path, monkeypatch):
    broker = make_broker(users={"birdd": "right"})
    monkeypatch.setenv("BIRDD_MQTT_PASSWORD", "wrong")
    daemon = run_daemon(broker, mqtt={"username": "birdd"}, threshold=0.2)
    assert daemon.wait(60) == 0
    log = daemon.log.read_text()
    assert "refused" in log.lower()
    assert len(outbox_ids(tmp_path)) == logged_detections(daemon.log) > 0


def test_bad_config_is_one_line_naming_the_key(tmp_path):
    import subprocess
    import sys

    config = write_config(tmp_path / "bad.toml", {"mqtt": {"port": "1883"}})
    birdd = str(Path(sys.executable).with_name("birdd"))
    proc = subprocess.run([birdd, "run", "-c", str(config)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"birdd: error: {config}: mqtt.port: expected int, got str"


def test_prometheus_metrics_are_served(mosquitto, run_daemon):
    import socket
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    daemon = run_daemon(mosquitto, realtime=True, loop=True, extra={"metrics": {"port": port}})
    daemon.wait_for_log("metrics on http://")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
        if re.search(r"^birdd_windows_total [1-9]", text, re.M):
            break
        time.sleep(0.5)
    for name in ("birdd_windows_total", "birdd_detections_total", "birdd_inference_seconds_bucket",
                 "birdd_publish_latency_seconds_bucket", "birdd_mqtt_connected 1.0", "birdd_outbox_backlog",
                 "birdd_audio_overruns"):
        assert name in text, name
    assert re.search(r"^birdd_windows_total [1-9]", text, re.M)
    daemon.signal(signal.SIGTERM)
    assert daemon.wait(10) == 0


def test_filter_counters_reach_the_status_and_prometheus(mosquitto, subscribe, run_daemon):
    """The confirmation rule on: what it confirms, merges and drops is counted on the status topic and as
    ``birdd_filter_*`` gauges."""
    import socket
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sub = subscribe(mosquitto, "birdd/test/status/stats")
    daemon = run_daemon(mosquitto, loop=True, extra={"metrics": {"port": port},
                                                     "filters": {"confirm": True, "confirm_high_confidence": 1.0}})
    stats = sub.wait_for(lambda m: m and m[-1].json()["filters"]["confirm_dropped"] > 0, timeout=30)[-1].json()
    assert set(stats["filters"]) == {"privacy_voices", "privacy_dropped", "noise_windows", "noise_dropped",
                                     "confirm_confirmed", "confirm_merged", "confirm_dropped", "quiet_dropped",
                                     "quiet_audio_s", "audio_withheld_s"}
    assert stats["filters"]["privacy_dropped"] == stats["filters"]["quiet_dropped"] == 0
    assert stats["detections"] < stats["windows"]  # most windows' detections were single, unconfirmed ones
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    assert re.search(r"^birdd_filter_confirm_dropped [1-9]", text, re.M)
    assert "birdd_filter_privacy_dropped 0.0" in text
    daemon.signal(signal.SIGTERM)
    assert daemon.wait(10) == 0
