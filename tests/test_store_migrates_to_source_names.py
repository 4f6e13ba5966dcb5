"""A detection store of schema version 1 (before source names) is upgraded in place at start; its rows stay."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import replace

import pytest
from conftest import detection_payload

from daemon.config import StoreConfig
from daemon.errors import StoreError
from daemon.pipeline.detection import Detection
from daemon.store import queries
from daemon.store.queries import DetectionFilter
from daemon.store.schema import SCHEMA_VERSION, open_store
from daemon.store.writer import DetectionStore

VERSION_1 = """
CREATE TABLE detections (
    id INTEGER PRIMARY KEY AUTOINCREMENT, detection_id TEXT UNIQUE NOT NULL, station TEXT, source TEXT,
    start_utc TEXT, end_utc TEXT, start_epoch REAL, end_epoch REAL, local_date TEXT, local_time TEXT,
    species_code TEXT, common_name TEXT, scientific_name TEXT, confidence REAL, model TEXT, clip TEXT,
    spectrogram TEXT, clip_bytes INTEGER NOT NULL DEFAULT 0);
CREATE INDEX detections_end ON detections (end_epoch);
CREATE INDEX detections_species_end ON detections (species_code, end_epoch);
CREATE INDEX detections_date_species ON detections (local_date, species_code);
CREATE INDEX detections_with_clip ON detections (end_epoch) WHERE clip IS NOT NULL;
PRAGMA user_version = 1;
"""


def old_store(path) -> None:
    conn = sqlite3.connect(path)
    conn.executescript(VERSION_1)
    conn.execute("PRAGMA journal_mode=WAL")
    for i in range(3):
        d = detection_payload(i)
        conn.execute("INSERT INTO detections (detection_id, station, source, start_utc, end_utc, start_epoch, "
                     "end_epoch, local_date, local_time, species_code, common_name, scientific_name, confidence, "
                     "model) VALUES (?, ?, ?, ?, ?, 0, ?, '2026-01-01', '00:00:00', ?, ?, ?, ?, '{}')",
                     (d["detection_id"], d["station"], d["source"], d["start"], d["end"], time.time() - 100 + i,
                      d["species_code"], d["common_name"], d["scientific_name"], d["confidence"]))
    conn.commit()
    conn.close()


def test_version_1_store_is_upgraded_and_keeps_its_rows(tmp_path):
    path = tmp_path / "detections.sqlite"
    old_store(path)
    upgraded_by = r"\(birdd run, or birdd web with web.read_only = false, upgrades it when it starts\)"
    with pytest.raises(StoreError, match=rf"schema version 1, expected {SCHEMA_VERSION} {upgraded_by}"):
        open_store(path, read_only=True)  # birdd web before the daemon restarted: one clear line
    store = DetectionStore(StoreConfig(path=str(path)))
    assert store.rows() == 3
    row_id, _ = store.add(replace(Detection(**detection_payload(7)), source_name="pond"))
    assert row_id == 4  # ids go on after the old rows
    store.close()
    reader = open_store(path, read_only=True)
    assert reader.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3
    rows = queries.recent(reader, 10)
    assert sorted((r["id"], r["source_name"]) for r in rows) == [(1, None), (2, None), (3, None), (4, "pond")]
    pond, total = queries.search(reader, DetectionFilter(source="pond"), 10, 0)
    assert total == 1 and pond[0]["id"] == 4
    assert reader.execute("SELECT name FROM sqlite_master WHERE name = 'detections_source_end'").fetchone()
    reader.close()
    DetectionStore(StoreConfig(path=str(path))).close()  # a second start finds the current version: nothing to do
