"""A real daemon whose detection store cannot be written for its last detections (another writer holds the file:
every write fails, as on a full or read-only disk), stopped with the rows still waiting in memory, restarted
with a writable store: the detections it makes then carry ids above every id the first run published, so a
subscriber never sees one id for two detections. The waiting rows are lost from the store (their MQTT
payloads went out), which leaves a gap in the ids, not a reused id. Stopped by SIGKILL and by SIGTERM (the
last retry at close fails too)."""

from __future__ import annotations

import signal
import sqlite3
from pathlib import Path

import pytest
from conftest import Subscriber
from daemon_process import Daemon, write_config

pytestmark = pytest.mark.integration

PREFIX = "birdd/ids"
DETECTIONS, EVENTS = f"{PREFIX}/detections", f"{PREFIX}/status/events"
STORED_FIRST = 3
"""detections published before the store is locked"""
PUBLISHED_WAITING = 6
"""detections published after the first failed store write, while their rows wait in memory"""
MADE_AFTER = 4
"""detections of the restarted daemon to wait for"""


def start(tmp_path: Path, run: str, broker, model: Path, corpus: Path) -> Daemon:
    """Station ``ids`` replaying a soundscape at real time (several detections a second) under a file named after
    ``run`` (so each payload's ``source`` says which run made it); one outbox and one store for all runs."""
    soundscape = sorted((corpus / "test_soundscapes").iterdir())[0]
    audio = tmp_path / f"{run}{soundscape.suffix}"
    audio.symlink_to(soundscape)
    config = write_config(tmp_path / f"{run}.toml", {
        "station": {"name": "ids"},
        "audio": {"source": "file", "files": [str(audio)], "realtime": True, "loop": True},
        "model": {"path": str(model)},
        "detection": {"threshold": 0.0, "window_hop_s": 1.0},
        "mqtt": {"host": broker.host, "port": broker.port, "ha_discovery": False},
        "outbox": {"path": str(tmp_path / "outbox.sqlite")},
        "store": {"path": str(tmp_path / "detections.sqlite")},
        "clips": {"enabled": False},
    })
    return Daemon(config, tmp_path / f"{run}.log")


def made_by(sub: Subscriber, run: str) -> dict[str, int]:
    """detection_id -> id of the payloads received so far that ``run`` made."""
    return {m.json()["detection_id"]: m.json()["id"] for m in sub.messages(DETECTIONS) if run in m.json()["source"]}


@pytest.mark.parametrize("stop_signal", [signal.SIGKILL, signal.SIGTERM], ids=["sigkill", "sigterm"])
def test_ids_published_with_rows_the_store_never_kept_are_not_reissued(
        stop_signal, tmp_path, mosquitto, subscribe, trained_model, synthetic_corpus):
    sub = subscribe(mosquitto, f"{PREFIX}/#")
    first = start(tmp_path, "first", mosquitto, trained_model, synthetic_corpus)
    blocker = sqlite3.connect(tmp_path / "detections.sqlite", isolation_level=None)
    try:
        sub.wait_for(lambda ms: len(ms) >= STORED_FIRST, topic=DETECTIONS, timeout=60)
        blocker.execute("BEGIN EXCLUSIVE")  # every store write fails from now on (after the 1 s busy timeout)
        sub.wait_for(lambda ms: any(m.json()["kind"] == "store_write_failed" for m in ms), topic=EVENTS, timeout=30)
        published = len(sub.messages(DETECTIONS))
        sub.wait_for(lambda ms: len(ms) >= published + PUBLISHED_WAITING, topic=DETECTIONS, timeout=30)
        first.signal(stop_signal)
        first.wait(15)
    finally:
        first.close()
        blocker.close()  # rolls back: the store is writable again
    second = start(tmp_path, "second", mosquitto, trained_model, synthetic_corpus)
    try:
        sub.wait_for(lambda ms: len(made_by(sub, "second")) >= MADE_AFTER, topic=DETECTIONS, timeout=60)
        second.signal(signal.SIGTERM)
        assert second.wait(10) == 0, second.log.read_text()
    finally:
        second.close()

    before, after = made_by(sub, "first"), made_by(sub, "second")
    stored = dict(sqlite3.connect(tmp_path / "detections.sqlite").execute("SELECT id, detection_id FROM detections"))
    unstored = set(before.values()) - set(stored)
    assert len(unstored) >= PUBLISHED_WAITING - 1, (before, stored)  # published, never stored: the ids at risk
    assert min(after.values()) > max(before.values()), (before, after)
    ids_seen: dict[int, set[str]] = {}
    for message in sub.messages(DETECTIONS):
        ids_seen.setdefault(message.json()["id"], set()).add(message.json()["detection_id"])
    assert all(len(detections) == 1 for detections in ids_seen.values()), ids_seen
    assert all(ids_seen[row_id] == {detection_id} for row_id, detection_id in stored.items() if row_id in ids_seen)
    assert "ids go on after" in second.log.read_text()
