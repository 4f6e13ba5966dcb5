"""The detection store's SQLite file: schema, version and how to open it.

One table, ``detections``, one row per detection, written by the daemon (:mod:`daemon.store.writer`)
and read by ``birdd web`` (:mod:`daemon.store.queries`) through a read-only connection. The file is in
WAL mode, so the reader never blocks the writer and sees only committed rows.

Columns (times are the window's; ``*_utc`` ISO 8601 with milliseconds and ``Z``, ``*_epoch`` seconds
since 1970, ``local_date``/``local_time`` in the station's local time zone):

=================  ============================================================================
``id``             integer id (AUTOINCREMENT: never reused, even after retention deletes rows)
``detection_id``   the stable id of the MQTT payload (unique)
``clip``           clip file name relative to ``clips.dir`` (NULL: none kept); set when the
                   detection is stored, the file lands about ``clips.margin_s`` later
``spectrogram``    PNG file name relative to ``clips.dir`` (NULL: none)
``clip_bytes``     bytes on disk of the clip and its spectrogram together (0 without a clip)
``source``         the input the window came from (file path, ``mic:<device>``)
``source_name``    the configured source that heard it (``[[audio.sources]]`` name, "default"; NULL
                   in rows stored before schema version 2)
=================  ============================================================================

Versions: 1 had no ``source_name``; the writer upgrades a version-1 file in place at start (one
transaction: the column and its index are added, old rows keep NULL), so an old store keeps its rows.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from daemon.errors import StoreError

SCHEMA_VERSION = 2
"""``PRAGMA user_version`` of the current schema"""
MIGRATIONS = {1: ("ALTER TABLE detections ADD COLUMN source_name TEXT",)}
"""version -> the statements that bring a store of that version to the next"""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS detections (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    detection_id TEXT UNIQUE NOT NULL,
    station TEXT,
    source TEXT,
    start_utc TEXT,
    end_utc TEXT,
    start_epoch REAL,
    end_epoch REAL,
    local_date TEXT,
    local_time TEXT,
    species_code TEXT,
    common_name TEXT,
    scientific_name TEXT,
    confidence REAL,
    model TEXT,
    clip TEXT,
    spectrogram TEXT,
    clip_bytes INTEGER NOT NULL DEFAULT 0,
    source_name TEXT
);
CREATE INDEX IF NOT EXISTS detections_end ON detections (end_epoch);
CREATE INDEX IF NOT EXISTS detections_species_end ON detections (species_code, end_epoch);
CREATE INDEX IF NOT EXISTS detections_date_species ON detections (local_date, species_code);
CREATE INDEX IF NOT EXISTS detections_with_clip ON detections (end_epoch) WHERE clip IS NOT NULL;
CREATE INDEX IF NOT EXISTS detections_source_end ON detections (source_name, end_epoch);
"""

READER_BUSY_TIMEOUT_S = 5.0
"""how long a reader waits for a lock (only a checkpoint that truncates the WAL takes one)"""
WRITER_BUSY_TIMEOUT_S = 1.0
"""how long the writer waits for a lock: nothing else writes, so a lock is a fault; a write that fails is retried
later instead of holding the sink thread"""


def open_store(path: str | Path, read_only: bool) -> sqlite3.Connection:
    """Open the store: the writer creates it (WAL, schema); a reader opens it with ``mode=ro``.

    Raises :class:`StoreError` naming the file when it cannot be opened or has another schema version.
    Connections are autocommit (``isolation_level=None``) and usable from any thread (callers serialise).
    """
    path = Path(path)
    try:
        if read_only:
            conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None,
                                   check_same_thread=False, timeout=READER_BUSY_TIMEOUT_S)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                                   timeout=WRITER_BUSY_TIMEOUT_S)
    except (OSError, sqlite3.Error) as exc:
        raise StoreError(f"{path}: cannot open the detection store: {exc}") from None
    try:
        problem = _check_version(conn) if read_only else _create(conn)
    except sqlite3.Error as exc:
        problem = str(exc)
    if problem:
        conn.close()
        raise StoreError(f"{path}: cannot use the detection store: {problem}")
    return conn


def _check_version(conn: sqlite3.Connection) -> str:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version == 0:
        return "not created yet (birdd run creates it when store.enabled is true)"
    if version in MIGRATIONS:
        return f"schema version {version}, expected {SCHEMA_VERSION} (birdd run upgrades it when it starts)"
    return "" if version == SCHEMA_VERSION else f"schema version {version}, expected {SCHEMA_VERSION}"


def _create(conn: sqlite3.Connection) -> str:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version not in (0, SCHEMA_VERSION, *MIGRATIONS):
        return f"schema version {version}, expected {SCHEMA_VERSION}"
    mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if mode.lower() != "wal":
        return f"journal_mode WAL refused (got {mode})"
    conn.execute("PRAGMA synchronous=NORMAL")
    if version in MIGRATIONS:
        _migrate(conn, version)
    conn.executescript(_SCHEMA)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    return ""


def _migrate(conn: sqlite3.Connection, version: int) -> None:
    """Bring a store from ``version`` to :data:`SCHEMA_VERSION` in one transaction (all or nothing)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        while version in MIGRATIONS:
            for statement in MIGRATIONS[version]:
                conn.execute(statement)
            version += 1
        conn.execute(f"PRAGMA user_version={version}")
        conn.execute("COMMIT")
    except sqlite3.Error:
        conn.execute("ROLLBACK")
        raise
