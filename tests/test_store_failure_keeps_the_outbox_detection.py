"""A store that cannot be written never costs a detection its MQTT message: the outbox gets it first, with the
id it will have; the row is stored by a retry once the store can be written again."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
from conftest import detection_payload

from daemon.config import OutboxConfig, StoreConfig
from daemon.pipeline.detection import Detection
from daemon.pipeline.scoring import WindowResult
from daemon.sinks.outbox import Outbox, OutboxSink
from daemon.sinks.recording import RecordingSink
from daemon.store.writer import DetectionStore


def window(index: int) -> WindowResult:
    detection = Detection(**detection_payload(index))
    return WindowResult(source="mic", segment_start=0, start_sample=index * 160_000, end_sample=(index + 1) * 160_000,
                        scores=np.zeros(1), species=[], read_at=0.0, detections=(detection,))


def dispatch(result: WindowResult, sinks: list, window_sinks: list) -> None:
    """What the service's sink thread does with one window result."""
    for sink in window_sinks:
        sink.put_window(result)
    for detection in result.detections:
        for sink in sinks:
            sink.put(detection)


def test_a_locked_store_delays_the_row_not_the_outbox(tmp_path: Path):
    outbox = Outbox(OutboxConfig(path=str(tmp_path / "outbox.sqlite")))
    store_path = tmp_path / "store.sqlite"
    recording = RecordingSink(DetectionStore(StoreConfig(path=str(store_path))), clips=None)
    sinks, window_sinks = [OutboxSink(outbox, extra_fields=recording.payload_fields), recording], [recording]
    dispatch(window(0), sinks, window_sinks)
    blocker = sqlite3.connect(store_path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # another writer holds the file: every write fails after the busy timeout
    dispatch(window(1), sinks, window_sinks)
    dispatch(window(2), sinks, window_sinks)
    assert [(p["id"], p["detection_id"]) for _, p in outbox.pending(10)] == [
        (i + 1, detection_payload(i)["detection_id"]) for i in range(3)]
    assert recording.counters.failed_writes == 2 and recording.status()["store_waiting"] == 2
    blocker.execute("ROLLBACK")
    dispatch(window(3), sinks, window_sinks)  # the waiting rows go first, under the ids already published
    recording.close()
    rows = sqlite3.connect(store_path).execute("SELECT id, detection_id FROM detections ORDER BY id").fetchall()
    assert rows == [(i + 1, detection_payload(i)["detection_id"]) for i in range(4)]
    assert recording.counters.given_up == 0
