"""The outbox on a full disk and on a file system turned read-only, and a damaged outbox file at start.

Full disk: a real small file system, a tmpfs mounted by the test (root only, as in CI; skipped with the reason
otherwise) and filled up with a file. Read-only, in-process: ``mount -o remount,ro`` refuses while the outbox
holds its file open for writing (EBUSY), so the outbox's own connection is switched to ``PRAGMA query_only``,
which fails every write with SQLite's SQLITE_READONLY. The kernel's forced remount after a card error, under a
running daemon, is in test_store_and_clips_survive_full_and_read_only_disk.py. While writes fail, detections
are held in memory in order (bounded, counted), acknowledgements too, an event says so, nothing crashes, and the
held detections are published from memory meanwhile; once writes succeed again the held ones the broker has not
acknowledged are written, oldest first, and an event says so.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from daemon_process import replaying_daemon
from disk_fixtures import fill

from daemon.config import OutboxConfig
from daemon.pipeline.detection import Detection
from daemon.sinks.outbox import Outbox, OutboxSink
from daemon.write_faults import RETRY_INITIAL_S

pytestmark = pytest.mark.integration


def _detection(i: int) -> Detection:
    return Detection(detection_id=f"d{i:04d}", station="t", source="mic", start="s", end=f"{i:06d}",
                     species_code="x", common_name="X", scientific_name="", confidence=0.5, model={})


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def __call__(self, kind: str, message: str) -> None:
        self.seen.append((kind, message))


def _ids(outbox: Outbox) -> list[str]:
    return [payload["detection_id"] for _, payload in outbox.pending(10_000)]


def _sink_with(directory: Path, count: int) -> tuple[Outbox, Events, OutboxSink]:
    """An outbox in ``directory`` behind its sink, holding detections 0..count-1; the sink's events."""
    outbox, events = Outbox(OutboxConfig(path=str(directory / "outbox.sqlite"))), Events()
    sink = OutboxSink(outbox, events)
    for i in range(count):
        sink.put(_detection(i))
    return outbox, events, sink


def test_full_disk_holds_detections_in_memory_then_writes_them_in_order(small_fs):
    outbox, events, sink = _sink_with(small_fs, 5)
    filler = fill(small_fs)
    for i in range(5, 40):
        sink.put(_detection(i))  # never raises
    held, dropped = outbox.held()
    assert held > 0 and dropped == 0 and "full" in outbox.write_error
    assert [kind for kind, _ in events.seen] == ["outbox_write_failed"]
    filler.unlink()
    time.sleep(RETRY_INITIAL_S * 1.1)  # the retry waits for its back-off (monotonic clock)
    sink.put_window(None)
    assert outbox.held() == (0, 0) and outbox.write_error == ""
    assert [kind for kind, _ in events.seen] == ["outbox_write_failed", "outbox_writable"]
    assert _ids(outbox) == [f"d{i:04d}" for i in range(40)]
    outbox.close()


def _read_only(outbox: Outbox, on: bool) -> None:
    outbox._conn.execute(f"PRAGMA query_only={int(on)}")  # fault injection: SQLITE_READONLY on every write


def test_read_only_outbox_holds_writes_and_acks_then_catches_up(tmp_path):
    outbox, events, sink = _sink_with(tmp_path, 3)
    _read_only(outbox, True)
    try:
        for i in range(3, 8):
            sink.put(_detection(i))
        assert outbox.ack(1) is False  # held, not lost: written once the file system is writable
        assert outbox.held()[0] == 5 and "readonly" in outbox.write_error
        # reads still work; the acknowledged d0000 is done for its target (its removal is written later)
        assert _ids(outbox)[:3] == ["d0001", "d0002", "d0003"]
    finally:
        _read_only(outbox, False)
    time.sleep(RETRY_INITIAL_S * 1.1)
    outbox.retry_held()
    assert outbox.held() == (0, 0)
    assert _ids(outbox) == [f"d{i:04d}" for i in range(1, 8)]
    assert [kind for kind, _ in events.seen][:1] == ["outbox_write_failed"]
    outbox.close()


@pytest.mark.parametrize("content", [b"this is not a database" * 100, b"SQLite format 3\0" + os.urandom(4000)])
def test_damaged_outbox_is_moved_aside_and_a_new_one_started(tmp_path, content, caplog):
    path = tmp_path / "outbox.sqlite"
    path.write_bytes(content)
    outbox = Outbox(OutboxConfig(path=str(path)))
    assert outbox.put({"detection_id": "new"}) == 1 and outbox.backlog() == 1
    outbox.close()
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("outbox.sqlite.corrupt-")]
    assert len(aside) == 1 and aside[0].read_bytes() == content  # kept as it was, never deleted
    assert any("moved aside" in r.getMessage() and str(aside[0]) in r.getMessage() for r in caplog.records)


def test_daemon_rides_out_a_full_disk(small_fs, tmp_path, mosquitto, subscribe, trained_model,
                                                   synthetic_corpus):
    """The daemon keeps running and detecting, says so on the status topic, goes on publishing from memory while
    the disk is full, and loses no detection and publishes none twice."""
    sub = subscribe(mosquitto, "birdd/fault/#")
    daemon = replaying_daemon(tmp_path, mosquitto, trained_model, synthetic_corpus, small_fs / "outbox.sqlite")
    events, detections = "birdd/fault/status/events", "birdd/fault/detections"
    try:
        sub.wait_for(lambda ms: len(ms) >= 6, topic=detections, timeout=60)
        filler = fill(small_fs)
        sub.wait_for(lambda ms: any(m.json()["kind"] == "outbox_write_failed" for m in ms), topic=events, timeout=30)
        published = len(sub.messages(detections))
        sub.wait_for(lambda ms: len(ms) >= published + 10, topic=detections, timeout=30)  # held, yet published
        assert sub.messages(events)[-1].json()["kind"] == "outbox_write_failed"  # the disk is still full
        assert daemon.process.poll() is None
        filler.unlink()
        sub.wait_for(lambda ms: any(m.json()["kind"] == "outbox_writable" for m in ms), topic=events, timeout=30)
        time.sleep(2.0)
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(10) == 0
    finally:
        daemon.close()
    logged = daemon.log.read_text().count("INFO daemon.sinks.log: detection ")
    outbox = Outbox(OutboxConfig(path=str(small_fs / "outbox.sqlite")))
    waiting = {payload["detection_id"] for _, payload in outbox.pending(100_000)}
    outbox.close()
    arrived = [json.loads(m.payload) for m in sub.messages(detections)]
    received = [payload["detection_id"] for payload in arrived]
    assert len(received) == len(set(received))  # none twice (nothing was in flight at a restart: there was none)
    assert logged > 20 and len(set(received) | waiting) == logged  # every detection made is delivered or waiting
    starts = [payload["start"] for payload in arrived]  # one source: its windows' starts, in stream order
    assert starts == sorted(starts)
