"""The detection store's SQLite file: schema, version and how to open it.

The table ``detections``, one row per detection, is written by the daemon (:mod:`daemon.store.writer`)
and read by ``birdd web`` (:mod:`daemon.store.queries`) through read-only connections. The tables
``reviews`` and ``review_comments`` are written only by ``birdd web``'s review handlers
(:mod:`daemon.store.review_writer`). The file is in WAL mode, so a reader never blocks a writer and sees
only committed rows; the two writers wait for each other's short transactions (busy timeouts).

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

``reviews``, one row per reviewed detection (BirdNET-Go's ``verified`` and ``locked``); no foreign key, so a
review outlives the retention of its detection's clip and row:

=================  ============================================================================
``detection``      the detection's ``id``
``verified``       ``correct``, ``false_positive``, or NULL (locked or commented, not verified)
``locked``         1: the review and the detection refuse changes until unlocked
``reviewed_utc``   when the review last changed
``snapshot``       the detection's row as JSON when it was first reviewed (what an export needs)
``audio``          the review's own link to the clip, relative to :func:`review_audio_dir` (NULL: none)
=================  ============================================================================

``review_comments``: ``comment_id``, ``detection``, ``entry``, ``created_utc``.

Schema versions: 1 is the detections table without ``source_name``; each entry of :data:`MIGRATIONS`
upgrades one version (2 adds the reviews, 3 ``source_name``), in one transaction, whichever writer opens an
older store first.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from daemon.errors import StoreError

REVIEWS_MIGRATION = (
    "CREATE TABLE IF NOT EXISTS reviews (detection INTEGER PRIMARY KEY, verified TEXT CHECK (verified IN "
    "('correct', 'false_positive')), locked INTEGER NOT NULL DEFAULT 0, reviewed_utc TEXT NOT NULL, "
    "snapshot TEXT NOT NULL, audio TEXT)",
    "CREATE TABLE IF NOT EXISTS review_comments (comment_id INTEGER PRIMARY KEY AUTOINCREMENT, "
    "detection INTEGER NOT NULL, entry TEXT NOT NULL, created_utc TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS review_comments_detection ON review_comments (detection)",
)
"""version 1 -> 2: the reviews written by ``birdd web``"""

SOURCE_NAMES_MIGRATION = (
    "ALTER TABLE detections ADD COLUMN source_name TEXT",
    "CREATE INDEX IF NOT EXISTS detections_source_end ON detections (source_name, end_epoch)",
)
"""version 2 -> 3: the configured source that heard each detection (``[[audio.sources]]``; old rows keep NULL)"""

MIGRATIONS: tuple[tuple[str, ...], ...] = (REVIEWS_MIGRATION, SOURCE_NAMES_MIGRATION)
"""``MIGRATIONS[i]`` upgrades schema version ``i + 1`` to ``i + 2`` (append new steps; never edit old ones)"""
SCHEMA_VERSION = 1 + len(MIGRATIONS)
"""``PRAGMA user_version`` of the current schema"""
REVIEW_AUDIO_DIR = "reviews"
"""folder beside the store file holding the reviews' links to their clips"""

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
    clip_bytes INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS detections_end ON detections (end_epoch);
CREATE INDEX IF NOT EXISTS detections_species_end ON detections (species_code, end_epoch);
CREATE INDEX IF NOT EXISTS detections_date_species ON detections (local_date, species_code);
CREATE INDEX IF NOT EXISTS detections_with_clip ON detections (end_epoch) WHERE clip IS NOT NULL;
"""

READER_BUSY_TIMEOUT_S = 5.0
"""how long a reader waits for a lock (only a checkpoint that truncates the WAL takes one)"""
WRITER_BUSY_TIMEOUT_S = 1.0
"""how long the writer waits for a lock: nothing else writes, so a lock is a fault; a write that fails is retried
later instead of holding the sink thread"""


REVIEW_BUSY_TIMEOUT_S = 5.0
"""how long a review waits for the daemon's write transaction (a few milliseconds each)"""


def review_audio_dir(store_path: str | Path) -> Path:
    """The folder of the reviews' clip links: :data:`REVIEW_AUDIO_DIR` beside the store file."""
    return Path(store_path).parent / REVIEW_AUDIO_DIR


def open_store(path: str | Path, read_only: bool, *, create: bool = True) -> sqlite3.Connection:
    """Open the store: the daemon's writer creates it (WAL, schema); a reader opens it with ``mode=ro``;
    ``create=False`` opens an existing store for writing (``mode=rw``: the review writer) and upgrades it.

    Raises :class:`StoreError` naming the file when it cannot be opened or has another schema version.
    Connections are autocommit (``isolation_level=None``) and usable from any thread (callers serialise).
    """
    path = Path(path)
    try:
        if read_only:
            conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None,
                                   check_same_thread=False, timeout=READER_BUSY_TIMEOUT_S)
        elif not create:
            conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True, isolation_level=None,
                                   check_same_thread=False, timeout=REVIEW_BUSY_TIMEOUT_S)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                                   timeout=WRITER_BUSY_TIMEOUT_S)
    except (OSError, sqlite3.Error) as exc:
        raise StoreError(f"{path}: cannot open the detection store: {exc}") from None
    try:
        problem = _check_version(conn) if read_only else _create(conn) if create else _upgrade(conn)
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
    if version < SCHEMA_VERSION:
        return (f"schema version {version}, expected {SCHEMA_VERSION} (birdd run, or birdd web with "
                "web.read_only = false, upgrades it when it starts)")
    return "" if version == SCHEMA_VERSION else f"schema version {version}, expected {SCHEMA_VERSION}"


def _create(conn: sqlite3.Connection) -> str:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        return f"schema version {version}, expected {SCHEMA_VERSION}"
    mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if mode.lower() != "wal":
        return f"journal_mode WAL refused (got {mode})"
    conn.execute("PRAGMA synchronous=NORMAL")
    if version == 0:
        conn.executescript(_SCHEMA)
        conn.execute("PRAGMA user_version=1")
    return _upgrade(conn)


def _upgrade(conn: sqlite3.Connection) -> str:
    """Apply the :data:`MIGRATIONS` a version-1-or-later store lacks, each in one transaction (the version is
    read again inside it: two writers starting together upgrade it once)."""
    while True:
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if not 1 <= version <= SCHEMA_VERSION:
                conn.execute("ROLLBACK")
                return (f"schema version {version}, expected {SCHEMA_VERSION}" if version else
                        "not created yet (birdd run creates it when store.enabled is true)")
            if version == SCHEMA_VERSION:
                conn.execute("COMMIT")
                return ""
            for statement in MIGRATIONS[version - 1]:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version={version + 1}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
