"""``birdd run`` on an RTSP stream (Debian's gst-rtsp-server) that is killed and started again mid-run.

Detections come before and after; the outage is one gap with status events (``stream_error`` when the
child exits, ``stream_resumed`` when audio is back); nothing else is lost (no ring overrun, every detection
stored is published); the stream's password is in no log line, payload, event or status.
"""

from __future__ import annotations

import signal
import sqlite3
import time

import numpy as np
import pytest
import soundfile as sf
from daemon_process import Daemon, write_config
from stream_servers import RtspServer, need, write_wav

from daemon.pipeline.detection import iso_utc

pytestmark = pytest.mark.integration
PASSWORD = "s3cret-pw"


def test_stream_killed_and_restarted_mid_run(tmp_path, mosquitto, subscribe, trained_model, synthetic_corpus):
    need("ffmpeg")
    soundscapes = sorted((synthetic_corpus / "test_soundscapes").iterdir())
    audio, rate = sf.read(soundscapes[0], dtype="float32")
    wav = write_wav(tmp_path / "birds.wav", np.tile(audio, 3), rate)  # 60 s: longer than the test
    server = RtspServer(wav, user="birdd", password=PASSWORD)
    server.start()
    config = write_config(tmp_path / "config.toml", {
        "station": {"name": "test"},
        "audio": {"source": "url", "url": server.url, "retry_initial_s": 0.3, "retry_max_s": 0.6, "stall_s": 3.0},
        "model": {"path": str(trained_model)},
        "detection": {"threshold": 0.0, "window_hop_s": 1.0},
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port, "ha_discovery": False, "status_interval_s": 0.5},
        "outbox": {"path": str(tmp_path / "outbox.sqlite")},
        "clips": {"enabled": False},
    })
    sub = subscribe(mosquitto, "birdd/test/#")
    daemon = Daemon(config, tmp_path / "daemon.log")
    try:
        sub.wait_for(lambda m: len(m) >= 3, timeout=20, topic="birdd/test/detections")
        server.kill()
        before = len(sub.messages("birdd/test/detections"))
        time.sleep(1.5)
        server.start()
        events = sub.wait_for(lambda m: any(e.json()["kind"] == "stream_resumed" for e in m), timeout=15,
                              topic="birdd/test/status/events")
        resumed = time.time()
        sub.wait_for(lambda m: sum(d.json()["end"] > iso_utc(resumed) for d in m) >= 3, timeout=20,
                     topic="birdd/test/detections")
        time.sleep(1.2)  # a fresh statistics message after the outage
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(15) == 0
    finally:
        daemon.close()
        server.kill()

    kinds = [e.json()["kind"] for e in events]
    assert kinds.index("stream_error") < kinds.index("stream_resumed")
    resumed_event = next(e.json() for e in events if e.json()["kind"] == "stream_resumed")
    gap = float(resumed_event["message"].split("gap of ")[1].split(" s")[0])
    assert 1.0 <= gap <= 6.0  # about the 1.5 s the server was away, plus the reconnect

    detections = [m.json() for m in sub.messages("birdd/test/detections")]
    assert before >= 3 and sum(d["end"] > iso_utc(resumed) for d in detections) >= 3
    assert {d["source"] for d in detections} == {f"rtsp://***@127.0.0.1:{server.port}/birds"}
    stats = sub.messages("birdd/test/status/stats")[-1].json()
    assert stats["audio_gaps"] >= 1 and stats["audio_lost_samples"] == 0 and stats["audio_overruns"] == 0
    assert stats["source_retries"] >= 1
    with sqlite3.connect(tmp_path / "config.detections.sqlite") as db:
        stored = {row[0] for row in db.execute("SELECT detection_id FROM detections")}
    assert stored == {d["detection_id"] for d in detections}  # every detection made was published
    with sqlite3.connect(tmp_path / "outbox.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 0

    log = daemon.log.read_text()
    assert "stream" in log and "retrying in" in log
    everything = log + "".join(m.text for m in sub.messages())
    assert PASSWORD not in everything
