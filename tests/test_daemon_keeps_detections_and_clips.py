"""``birdd run`` keeps every detection in the store with its clip, announces both on MQTT, and a daemon killed
while writing clips leaves nothing the store does not know after its next start."""

from __future__ import annotations

import re
import signal
import sqlite3
import time
from pathlib import Path

import pytest
import soundfile as sf
from daemon_process import Daemon, write_config

from daemon.constants import SAMPLE_RATE

pytestmark = pytest.mark.integration


def station_config(tmp_path: Path, broker, model: Path, files: list[str], loop: bool = False, name: str = "c"
                   ) -> Path:
    return write_config(tmp_path / f"{name}.toml", {
        "station": {"name": "test"},
        "audio": {"source": "file", "files": files, "realtime": False, "loop": loop},
        "model": {"path": str(model)},
        "detection": {"threshold": 0.3},
        "mqtt": {"host": broker.host, "port": broker.port, "reconnect_min_s": 0.2, "reconnect_max_s": 1.0},
        "outbox": {"path": str(tmp_path / "outbox.sqlite")},
        "store": {"path": str(tmp_path / "store.sqlite")},
        "clips": {"dir": str(tmp_path / "clips"), "keep_per_species_per_day": 0},
    })


def logged_given_up(log: Path) -> int:
    found = re.search(r"birdd-clips: (\d+) item\(s\) left undone at stop", log.read_text())
    return int(found[1]) if found else 0


def stored(tmp_path: Path) -> list[tuple]:
    with sqlite3.connect(tmp_path / "store.sqlite") as db:
        return db.execute("SELECT id, detection_id, clip, spectrogram, clip_bytes FROM detections ORDER BY id"
                          ).fetchall()


def test_every_detection_is_stored_with_its_clip_and_announced(tmp_path, mosquitto, subscribe, trained_model,
                                                                 synthetic_corpus):
    files = sorted(str(p) for p in (synthetic_corpus / "test_soundscapes").glob("*.ogg"))
    sub = subscribe(mosquitto, "birdd/test/detections")
    daemon = Daemon(station_config(tmp_path, mosquitto, trained_model, files), tmp_path / "d.log")
    try:
        assert daemon.wait(90) == 0
    finally:
        daemon.close()
    rows = stored(tmp_path)
    payloads = [m.json() for m in sub.wait_for(lambda m: len(m) >= len(rows), topic="birdd/test/detections")]
    assert len(rows) == len({p["detection_id"] for p in payloads}) > 0
    by_id = {p["id"]: p for p in payloads}
    assert all(p["clip"] for p in payloads)  # no cap, no ranking: every detection was to get a clip
    for row_id, detection_id, clip, spectrogram, nbytes in rows:
        payload = by_id[row_id]
        assert payload["detection_id"] == detection_id
        if clip is None:  # still queued when the input ended and the daemon stopped: given up, and said so
            continue
        assert payload["clip"] == clip and nbytes > 0
        audio, rate = sf.read(tmp_path / "clips" / clip)
        assert rate == SAMPLE_RATE and 5 * SAMPLE_RATE <= audio.size <= 7 * SAMPLE_RATE
        assert (tmp_path / "clips" / spectrogram).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert nbytes == (tmp_path / "clips" / clip).stat().st_size + (tmp_path / "clips" / spectrogram).stat().st_size
    written = sum(1 for row in rows if row[2])
    assert written > len(rows) // 2
    assert written + logged_given_up(tmp_path / "d.log") == len(rows)


def test_a_killed_daemon_leaves_no_clip_the_store_does_not_know(tmp_path, mosquitto, trained_model,
                                                               synthetic_corpus):
    files = sorted(str(p) for p in (synthetic_corpus / "test_soundscapes").glob("*.ogg"))
    daemon = Daemon(station_config(tmp_path, mosquitto, trained_model, files, loop=True), tmp_path / "d.log")
    try:
        deadline = time.monotonic() + 60
        while len(list((tmp_path / "clips").rglob("*.png"))) < 6 and time.monotonic() < deadline:
            time.sleep(0.05)
        daemon.signal(signal.SIGKILL)
        daemon.wait(10)
    finally:
        daemon.close()
    assert list((tmp_path / "clips").rglob("*.png")), "no clip was written before the kill"
    # the next start (on a silent second, which detects nothing) reconciles the store and the directory
    silence = tmp_path / "silence.wav"
    sf.write(silence, [0.0] * SAMPLE_RATE, SAMPLE_RATE)
    again = Daemon(station_config(tmp_path, mosquitto, trained_model, [str(silence)], name="again"),
                   tmp_path / "again.log")
    try:
        assert again.wait(60) == 0
    finally:
        again.close()
    on_disk = {p.relative_to(tmp_path / "clips").as_posix(): p.stat().st_size
               for p in (tmp_path / "clips").rglob("*") if p.is_file()}
    known = {}
    for _, _, clip, spectrogram, nbytes in stored(tmp_path):
        if clip is not None:
            assert nbytes > 0, "a row names a clip that never landed"
            known.update({clip: None, spectrogram: None})
            assert on_disk.get(clip, 0) + on_disk.get(spectrogram, 0) == nbytes
    assert set(on_disk) == set(known)
