"""The detection store keeps every detection, applies its retention, and opens read-only for ``birdd web``."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from conftest import detection_payload

from daemon.config import StoreConfig
from daemon.errors import StoreError
from daemon.pipeline.detection import Detection
from daemon.store import queries
from daemon.store.schema import SCHEMA_VERSION, open_store
from daemon.store.writer import ClipFiles, DetectionStore, local_date_time

T0 = 1_790_000_000.0  # the window starts of detection_payload(i) are T0 + 5 i


def detection(index: int) -> Detection:
    return Detection(**detection_payload(index))


def test_rows_carry_every_field_and_survive_reopening(tmp_path: Path):
    path = tmp_path / "store.sqlite"
    store = DetectionStore(StoreConfig(path=str(path)), clock=lambda: T0)
    ids = [store.add(detection(i), ClipFiles(f"d/{i}.flac", f"d/{i}.png") if i % 2 else None)[0] for i in range(5)]
    assert ids == [1, 2, 3, 4, 5]
    store.close()
    conn = open_store(path, read_only=True)
    row = queries.by_id(conn, 2)
    d = detection(1)
    assert row["detection_id"] == d.detection_id and row["species_code"] == "grtit1"
    assert row["start_utc"] == d.start and row["end_utc"] == d.end
    assert row["end_epoch"] == pytest.approx(T0 + 10.0)
    assert (row["local_date"], row["local_time"]) == local_date_time(T0 + 10.0)
    assert row["model"] == {"name": "stsg", "version": "test"}
    assert (row["clip"], row["spectrogram"]) == ("d/1.flac", "d/1.png")
    assert queries.by_id(conn, 1)["clip"] is None
    assert [r["id"] for r in queries.recent(conn, 3)] == [5, 4, 3]
    assert [r["id"] for r in queries.after_id(conn, 3, 10)] == [4, 5]
    assert queries.last_id(conn) == 5
    with pytest.raises(sqlite3.OperationalError):
        conn.execute("DELETE FROM detections")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_the_same_detection_twice_keeps_one_row(tmp_path: Path):
    store = DetectionStore(StoreConfig(path=str(tmp_path / "s.sqlite")), clock=lambda: T0)
    assert store.add(detection(7))[0] == store.add(detection(7))[0]
    assert store.rows() == 1


def test_retention_by_row_count_deletes_the_oldest_and_hands_back_their_clips(tmp_path: Path):
    store = DetectionStore(StoreConfig(path=str(tmp_path / "s.sqlite"), max_rows=3), clock=lambda: T0)
    released = []
    for i in range(6):
        released += store.add(detection(i), ClipFiles(f"{i}.flac", f"{i}.png"))[1]
    assert store.rows() == 3
    assert released == ["0.flac", "0.png", "1.flac", "1.png", "2.flac", "2.png"]
    assert [row.row_id for row in store.all_clips()] == [4, 5, 6]


def test_retention_by_age_deletes_rows_older_than_max_age(tmp_path: Path):
    now = [T0]
    store = DetectionStore(StoreConfig(path=str(tmp_path / "s.sqlite"), max_age_days=1.0), clock=lambda: now[0])
    for i in range(4):
        store.add(detection(i))
    now[0] = T0 + 86_400.0 + 12.0  # detections 0 and 1 ended at T0 + 5 and T0 + 10: more than a day ago
    store.add(detection(100))
    conn = open_store(tmp_path / "s.sqlite", read_only=True)
    assert sorted(r["id"] for r in queries.recent(conn, 10)) == [3, 4, 5]


def test_the_counts_of_rows_and_clip_bytes_follow_every_write_and_every_refused_one(tmp_path: Path):
    path = tmp_path / "store.sqlite"
    store = DetectionStore(StoreConfig(path=str(path), max_rows=4), clock=lambda: T0)

    def on_file() -> tuple[int, int]:
        with sqlite3.connect(path) as conn:
            return conn.execute("SELECT COUNT(*), COALESCE(SUM(clip_bytes) FILTER (WHERE clip IS NOT NULL), 0) "
                                "FROM detections").fetchone()

    for i in range(4):
        row_id, _ = store.add(detection(i), ClipFiles(f"d/{i}.flac", f"d/{i}.png"))
        assert store.record_clip(row_id, 100 * (i + 1))
    assert (store.rows(), store.clip_bytes()) == on_file() == (4, 1000)
    assert store.add(detection(4))[1] == ["d/0.flac", "d/0.png"]  # retention: row 1 and its 100 bytes
    store.forget_clips([2, 99])
    assert (store.rows(), store.clip_bytes()) == on_file() == (4, 700)
    assert not store.record_clip(2, 5)  # its clip was forgotten
    with sqlite3.connect(path) as conn:  # from now on the file refuses deletes and clearing a clip name
        conn.execute("CREATE TRIGGER no_delete BEFORE DELETE ON detections BEGIN SELECT RAISE(ABORT, 'refused'); END")
        conn.execute("CREATE TRIGGER no_forget BEFORE UPDATE OF clip ON detections WHEN NEW.clip IS NULL "
                     "BEGIN SELECT RAISE(ABORT, 'refused'); END")
    with pytest.raises(sqlite3.Error, match="refused"):
        store.add(detection(5))  # counted in, then retention refused: the whole insert rolls back
    with pytest.raises(sqlite3.Error, match="refused"):
        store.forget_clips([3, 4])  # their bytes taken off, then the update refused
    assert (store.rows(), store.clip_bytes()) == on_file() == (4, 700)


def test_a_reader_cannot_open_a_store_that_does_not_exist(tmp_path: Path):
    with pytest.raises(StoreError, match="cannot open"):
        open_store(tmp_path / "missing.sqlite", read_only=True)


def test_a_store_of_another_schema_version_is_refused_with_its_name(tmp_path: Path):
    path = tmp_path / "old.sqlite"
    sqlite3.connect(path).execute("PRAGMA user_version=99").connection.close()
    with pytest.raises(StoreError, match=r"old\.sqlite.*schema version 99"):
        open_store(path, read_only=False)
