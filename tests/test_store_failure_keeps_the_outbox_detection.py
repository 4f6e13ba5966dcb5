"""A store that cannot be written never costs a detection its MQTT message: the outbox gets it first, with the
id it will have; the row waits in memory and is stored by a retry, with back-off, once the store can be written
again, before any newer row: so ``birdd web``'s live stream, which polls for ids above the last it sent, misses
none. One log line and one status event on each edge, not one per window."""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path

from conftest import HOST, detection_payload, detection_window, free_port
from web_fixtures import ServerThread, SseClient

from daemon.config import OutboxConfig, StoreConfig, config_from_dict
from daemon.pipeline.scoring import WindowResult
from daemon.sinks.outbox import Outbox, OutboxSink
from daemon.sinks.recording import RecordingSink
from daemon.store.writer import DetectionStore
from daemon.write_faults import RETRY_INITIAL_S


def dispatch(result: WindowResult, sinks: list, window_sinks: list) -> None:
    """What the service's sink thread does with one window result."""
    for sink in window_sinks:
        sink.put_window(result)
    for detection in result.detections:
        for sink in sinks:
            sink.put(detection)


def test_a_locked_store_delays_the_row_not_the_outbox(tmp_path: Path, caplog):
    caplog.set_level(logging.INFO)
    outbox = Outbox(OutboxConfig(path=str(tmp_path / "outbox.sqlite")))
    store_path = tmp_path / "store.sqlite"
    events: list[tuple[str, str]] = []
    recording = RecordingSink(DetectionStore(StoreConfig(path=str(store_path))), clips=None,
                              on_event=lambda kind, message: events.append((kind, message)))
    sinks, window_sinks = [OutboxSink(outbox, extra_fields=recording.payload_fields), recording], [recording]
    dispatch(detection_window(0), sinks, window_sinks)
    blocker = sqlite3.connect(store_path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # another writer holds the file: every write fails after the busy timeout
    for index in range(1, 4):
        dispatch(detection_window(index), sinks, window_sinks)
    assert [(p["id"], p["detection_id"]) for _, p in outbox.pending(10)] == [
        (i + 1, detection_payload(i)["detection_id"]) for i in range(4)]
    assert recording.counters.failed_writes == 1  # the later ones wait for the back-off: no burst of attempts
    assert recording.status()["store_waiting"] == 3 and "locked" in recording.status()["store_error"]
    assert events == [("store_write_failed", "database is locked")]
    blocker.execute("ROLLBACK")
    time.sleep(RETRY_INITIAL_S * 1.1)
    dispatch(detection_window(4), sinks, window_sinks)  # the waiting rows go first, under the ids already published
    rows = sqlite3.connect(store_path).execute("SELECT id, detection_id FROM detections ORDER BY id").fetchall()
    assert rows == [(i + 1, detection_payload(i)["detection_id"]) for i in range(5)]
    assert [kind for kind, _ in events] == ["store_write_failed", "store_writable"]
    assert recording.status()["store_error"] == "" and recording.counters.given_up == 0
    lines = [r.getMessage() for r in caplog.records if r.name == "daemon.write_faults"]
    assert len(lines) == 2 and "cannot write" in lines[0] and "3 waiting detection(s) stored" in lines[1], lines
    recording.close()


def test_rows_a_fault_held_back_land_in_id_order_and_reach_a_live_stream(tmp_path: Path):
    """The rows land in the order of their ids (recorded by a trigger), so a live client gets every one: it was
    connected before the fault and already had a row when the others were held back."""
    store_path = tmp_path / "store.sqlite"
    recording = RecordingSink(DetectionStore(StoreConfig(path=str(store_path))), clips=None)
    observer = sqlite3.connect(store_path, isolation_level=None)
    observer.executescript("CREATE TABLE landed (seq INTEGER PRIMARY KEY, id INTEGER);"
                           "CREATE TRIGGER record_landing AFTER INSERT ON detections "
                           "BEGIN INSERT INTO landed (id) VALUES (NEW.id); END;")
    server = ServerThread(config_from_dict({"store": {"path": str(store_path)}, "clips": {"dir": str(tmp_path)},
                                            "web": {"bind": HOST, "port": free_port(), "sse_poll_s": 0.02}}))
    client = SseClient(server.url)
    try:
        assert client.event()[0] == "connected"
        dispatch(detection_window(0), [recording], [recording])
        assert client.event()[2] == "1"
        observer.execute("BEGIN EXCLUSIVE")  # the store cannot be written: rows 2..4 wait in memory
        for index in range(1, 4):
            dispatch(detection_window(index), [recording], [recording])
        observer.execute("ROLLBACK")
        dispatch(detection_window(4), [recording], [recording])  # writable, but no retry is due: 5 waits behind 2..4
        time.sleep(RETRY_INITIAL_S * 1.1)  # the stream polls meanwhile: a row 5 stored now would be sent now
        dispatch(detection_window(5), [recording], [recording])  # the retry stores 2..5, then row 6
        assert [row_id for row_id, in observer.execute("SELECT id FROM landed ORDER BY seq")] == [1, 2, 3, 4, 5, 6]
        assert [client.event()[2] for _ in range(5)] == ["2", "3", "4", "5", "6"]
    finally:
        client.close()
        server.stop()
        recording.close()
