"""Reviews in the store: an older store is upgraded in place (its detections kept), the review writer writes only
the review tables while the daemon writes, and a review keeps its audio and the detection's fields when the disk
policy deletes the clip and retention the row."""

from __future__ import annotations

import sqlite3
import threading
import time

import numpy as np
import pytest
from web_fixtures import fill_store

from daemon.config import StoreConfig
from daemon.errors import StoreError
from daemon.store import queries
from daemon.store.review_writer import ReviewChange, ReviewRefused, ReviewWriter
from daemon.store.schema import _SCHEMA, SCHEMA_VERSION, open_store, review_audio_dir
from daemon.store.writer import DetectionStore

VERSION_1_ROW = ("INSERT INTO detections (detection_id, station, source, start_utc, end_utc, start_epoch, end_epoch, "
                 "local_date, local_time, species_code, common_name, scientific_name, confidence, model) VALUES "
                 "('d1', 'test', 'mic', '2026-11-26T20:27:25.000Z', '2026-11-26T20:27:30.000Z', 1, 6, '2026-11-26', "
                 "'20:27:30', 'amerob', 'American Robin', 'Turdus migratorius', 0.8, '{}')")


def version_1_store(path):
    """A store as the previous release wrote it: the detections table only, user_version 1, one row."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript(_SCHEMA)
    conn.execute(VERSION_1_ROW)
    conn.execute("PRAGMA user_version=1")
    conn.commit()
    conn.close()


@pytest.mark.parametrize("upgrader", ["daemon", "web"])
def test_an_older_store_is_upgraded_by_either_writer_and_keeps_its_detections(tmp_path, upgrader):
    path = tmp_path / "detections.sqlite"
    version_1_store(path)
    with pytest.raises(StoreError, match=rf"schema version 1, expected {SCHEMA_VERSION} \(birdd run, or birdd web"):
        open_store(path, read_only=True)
    if upgrader == "daemon":
        DetectionStore(StoreConfig(path=str(path))).close()
    else:
        writer = ReviewWriter(path, tmp_path / "clips")
        writer.review(1, ReviewChange(verified="correct"))
        writer.close()
    conn = open_store(path, read_only=True)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    row = queries.by_id(conn, 1)
    assert row["species_code"] == "amerob"
    assert row["verified"] == ("correct" if upgrader == "web" else None)
    conn.close()


def test_the_review_writer_never_creates_a_store(tmp_path):
    with pytest.raises(StoreError, match="cannot open the detection store"):
        ReviewWriter(tmp_path / "absent.sqlite", tmp_path).open()
    assert not (tmp_path / "absent.sqlite").exists()


def test_a_review_keeps_its_clip_and_fields_after_the_clip_and_the_row_are_deleted(tmp_path):
    station = fill_store(tmp_path / "station", np.random.default_rng(3), count=6)
    writer = ReviewWriter(station.path, station.clips)
    row = station.ids[0]  # has a clip (every third has none)
    clip_name = station.writer.all_clips()[0].files.clip
    clip_bytes = (station.clips / clip_name).read_bytes()
    writer.review(row, ReviewChange(verified="false_positive", comment="a squeaky gate"))
    writer.review(station.ids[2], ReviewChange(verified="correct"))  # no clip kept: reviewed all the same

    # the disk policy deletes the clip (files, then the row's clip fields), as daemon.clips.policy does
    (station.clips / clip_name).unlink()
    station.writer.forget_clips([row])
    # retention deletes the row itself
    station.writer._conn.execute("DELETE FROM detections WHERE id = ?", (row,))

    conn = open_store(station.path, read_only=True)
    assert queries.by_id(conn, row) is None
    reviews = {r["detection"]: r for r in queries.verified_reviews(conn)}
    conn.close()
    kept = reviews[row]
    assert kept["verified"] == "false_positive" and kept["snapshot"]["species_code"] == "amerob"
    assert kept["snapshot"]["clip"] == clip_name and kept["snapshot"]["confidence"] > 0
    assert (review_audio_dir(station.path) / kept["audio"]).read_bytes() == clip_bytes
    assert reviews[station.ids[2]]["audio"] is None
    writer.close()


def test_locked_reviews_refuse_changes_and_unknown_detections_are_404(tmp_path):
    station = fill_store(tmp_path / "station", np.random.default_rng(4), count=3)
    writer = ReviewWriter(station.path, station.clips)
    writer.review(station.ids[0], ReviewChange(verified="correct", lock=True))
    with pytest.raises(ReviewRefused) as refused:
        writer.review(station.ids[0], ReviewChange(verified="false_positive"))
    assert refused.value.status == 409
    with pytest.raises(ReviewRefused) as refused:
        writer.review(10**9, ReviewChange(verified="correct"))
    assert refused.value.status == 404
    assert writer.review_many([station.ids[0], station.ids[1], station.ids[1], 10**9], "false_positive") == (1, 2)
    writer.close()


def test_a_review_waits_for_the_daemons_write_transaction(tmp_path):
    """The daemon holds a write transaction: the review waits for it (busy timeout) instead of failing."""
    station = fill_store(tmp_path / "station", np.random.default_rng(5), count=3)
    writer = ReviewWriter(station.path, station.clips)
    writer.open()
    daemon = station.writer._conn
    daemon.execute("BEGIN IMMEDIATE")
    daemon.execute("UPDATE detections SET confidence = confidence WHERE id = ?", (station.ids[1],))
    release = threading.Timer(0.5, lambda: daemon.execute("COMMIT"))
    release.start()
    started = time.monotonic()
    writer.review(station.ids[1], ReviewChange(verified="correct"))
    waited = time.monotonic() - started
    release.join()
    assert waited >= 0.4
    conn = open_store(station.path, read_only=True)
    assert queries.by_id(conn, station.ids[1])["verified"] == "correct"
    conn.close()
    writer.close()
