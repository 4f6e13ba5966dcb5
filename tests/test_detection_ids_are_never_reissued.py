"""A detection id, once committed to the outbox (and so published), is never given to another detection: the
outbox keeps the highest id it committed in the same transaction as the payload, that mark outlives the rows'
acknowledgement and the outbox's bounds, and the recording sink starts its ids above it and the store's.

The daemon-level version (a real daemon SIGKILLed while the store could not be written, restarted, with a real
broker's subscriber) is ``test_ids_stay_unique_across_a_restart.py``.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest
from conftest import detection_payload, detection_window

from daemon.config import OutboxConfig, StoreConfig
from daemon.sinks.outbox import Outbox, OutboxSink
from daemon.sinks.recording import RecordingSink
from daemon.store.writer import DetectionStore


def publish(outbox: Outbox, store_path: Path, indices: range) -> list[int]:
    """What the sink thread does with one detection a window, the outbox before the store; the ids published."""
    recording = RecordingSink(DetectionStore(StoreConfig(path=str(store_path))), clips=None,
                              published_id=outbox.highest_id)
    outbox_sink = OutboxSink(outbox, extra_fields=recording.payload_fields)
    ids = []
    for index in indices:
        result = detection_window(index)
        recording.put_window(result)
        ids.append(recording.payload_fields(result.detections[0])["id"])
        outbox_sink.put(result.detections[0])
        recording.put(result.detections[0])
    recording.close()
    return ids


def test_the_highest_id_outlives_acknowledgement_and_the_bounds(tmp_path: Path):
    config = OutboxConfig(path=str(tmp_path / "outbox.sqlite"), max_rows=3)
    outbox = Outbox(config)
    seqs = [outbox.put({**detection_payload(i), "id": row_id}) for i, row_id in enumerate((7, 9, 8, 4, 5))]
    assert outbox.highest_id == 9 and outbox.backlog() == 3 and outbox.dropped() == 2  # 7 and 9 dropped at max_rows
    for seq in seqs:
        outbox.ack(seq)
    outbox.put({**detection_payload(5), "id": None})  # no store: no id, the mark stays
    assert outbox.backlog() == 1 and outbox.highest_id == 9
    outbox.close()
    reopened = Outbox(config)
    assert reopened.highest_id == 9
    reopened.close()


def test_ids_go_on_above_published_rows_the_store_lost(tmp_path: Path):
    """The store file is replaced (as a power cut losing its WAL, or rows given up, leave it: without the rows the
    payloads carried); the next ids start above every published one, not at the store's highest."""
    outbox_path, store_path = tmp_path / "outbox.sqlite", tmp_path / "store.sqlite"
    outbox = Outbox(OutboxConfig(path=str(outbox_path)))
    first = publish(outbox, store_path, range(0, 5))
    for seq, _ in outbox.pending(10):
        outbox.ack(seq)  # the broker has them all: the outbox rows are gone
    outbox.close()
    assert first == [1, 2, 3, 4, 5]
    conn = sqlite3.connect(store_path)
    conn.execute("DELETE FROM detections WHERE id > 2")  # rows 3..5 never landed
    conn.execute("UPDATE sqlite_sequence SET seq = 2 WHERE name = 'detections'")
    conn.commit()
    conn.close()
    outbox = Outbox(OutboxConfig(path=str(outbox_path)))
    assert outbox.backlog() == 0 and outbox.highest_id == 5
    second = publish(outbox, store_path, range(5, 8))
    outbox.close()
    assert second == [6, 7, 8]
    rows = sqlite3.connect(store_path).execute("SELECT id, detection_id FROM detections ORDER BY id").fetchall()
    assert rows == [(row_id, detection_payload(index)["detection_id"])
                    for row_id, index in ((1, 0), (2, 1), (6, 5), (7, 6), (8, 7))]


def test_an_outbox_from_before_the_mark_takes_it_from_its_waiting_rows(tmp_path: Path):
    path = tmp_path / "outbox.sqlite"
    outbox = Outbox(OutboxConfig(path=str(path)))
    for i, row_id in enumerate((3, 11, 10)):
        outbox.put({**detection_payload(i), "id": row_id})
    outbox.close()
    conn = sqlite3.connect(path)
    conn.execute("DELETE FROM counters WHERE name = 'highest_id'")  # as the previous version left its file
    conn.commit()
    conn.close()
    reopened = Outbox(OutboxConfig(path=str(path)))
    assert reopened.highest_id == 11
    reopened.close()


PAGE = 4096


def damage_page(path: Path, page: int) -> bytes:
    """Overwrite 1-based ``page`` of a closed SQLite file with 0xff; the damaged file's bytes."""
    data = bytearray(path.read_bytes())
    assert len(data) % PAGE == 0 and page * PAGE <= len(data)
    data[(page - 1) * PAGE: page * PAGE] = b"\xff" * PAGE
    path.write_bytes(bytes(data))
    return bytes(data)


def reopen_damaged(tmp_path: Path, caplog) -> Outbox:
    with caplog.at_level(logging.WARNING):
        return Outbox(OutboxConfig(path=str(tmp_path / "outbox.sqlite")))


def test_a_damaged_outbox_hands_on_its_mark_when_it_can_still_be_read(tmp_path: Path, caplog):
    """A damaged page among the rows fails the quick check, but the counter can still be read: the new file starts
    at it, so a new store (the old one lost too) cannot lend a published id to another detection."""
    path = tmp_path / "outbox.sqlite"
    outbox = Outbox(OutboxConfig(path=str(path)))
    assert publish(outbox, tmp_path / "store.sqlite", range(12)) == list(range(1, 13))
    outbox.close()
    data = damage_page(path, len(path.read_bytes()) // PAGE)  # the last page: rows, written last
    outbox = reopen_damaged(tmp_path, caplog)
    assert outbox.highest_id == 12
    assert "highest detection id 12 carried over from the damaged file" in caplog.text
    assert publish(outbox, tmp_path / "new-store.sqlite", range(20, 22)) == [13, 14]
    outbox.close()
    (aside,) = tmp_path.glob("outbox.sqlite.corrupt-*")  # read in place: no -wal or -shm made beside it
    assert aside.read_bytes() == data


@pytest.mark.parametrize("damaged, mark", [("sqlite_autoindex_counters_1", 7), ("outbox", 0)])
def test_an_old_outbox_without_the_counter_hands_on_what_its_rows_show(tmp_path: Path, caplog, damaged, mark):
    """A file from before the counter: damaged in the counters' index, its rows still give the mark; damaged in
    the rows' table, nothing does, and the new file starts at 0 with a warning (never a crash)."""
    path = tmp_path / "outbox.sqlite"
    outbox = Outbox(OutboxConfig(path=str(path)))
    publish(outbox, tmp_path / "store.sqlite", range(7))
    outbox.close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("DELETE FROM counters WHERE name = 'highest_id'")
    page = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (damaged,)).fetchone()[0]
    conn.close()  # the last connection: the WAL goes into the file
    damage_page(path, page)
    outbox = reopen_damaged(tmp_path, caplog)
    assert outbox.highest_id == mark
    assert ("highest detection id 7 carried over" if mark else "highest detection id cannot be read") in caplog.text
    outbox.close()


def test_a_damaged_outbox_that_cannot_be_read_starts_a_new_mark(tmp_path: Path, caplog):
    """Documented limit: the store's highest id is then all that is known (and a warning says so)."""
    path = tmp_path / "outbox.sqlite"
    path.write_bytes(b"not a database, " * 512)
    outbox = reopen_damaged(tmp_path, caplog)
    assert outbox.highest_id == 0
    assert "the damaged file's highest detection id cannot be read" in caplog.text
    assert publish(outbox, tmp_path / "store.sqlite", range(2)) == [1, 2]
    outbox.close()
    assert list(tmp_path.glob("outbox.sqlite.corrupt-*"))
