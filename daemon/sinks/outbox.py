"""The durable outbox: detections wait in SQLite until the broker acknowledges them.

Durability choice (WAL journal): ``put`` commits with ``synchronous=FULL``, so a detection is on
the card (the WAL is fsynced) before ``put`` returns and before it can be published; a power cut
loses nothing that was accepted. ``ack`` commits with ``synchronous=NORMAL`` (no fsync): a power
cut may undo the last few acks, which only re-publishes those detections, and subscribers drop
the duplicates by ``detection_id``. Reads never write. Detections are rare (a few a minute), so
one fsync per detection and the WAL auto-checkpoint keep SD-card wear low.

Bounds: beyond ``max_rows`` the oldest rows are dropped, and rows older than ``max_age_days``
are dropped; both are counted in a persisted ``dropped`` counter and logged.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from daemon.config import OutboxConfig
from daemon.errors import StorageError
from daemon.pipeline.detection import Detection

log = logging.getLogger(__name__)

_SCHEMA_VERSION = 1
_WAL_AUTOCHECKPOINT_PAGES = 1000  # SQLite's default, stated: checkpoint when the WAL reaches ~4 MB
_WAL_SIZE_LIMIT_BYTES = 4 * 1024 * 1024  # truncate the WAL back to this after a checkpoint
_SECONDS_PER_DAY = 86_400.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- AUTOINCREMENT: seqs never go back, even when empty
    created REAL NOT NULL,                  -- wall-clock epoch seconds of put()
    payload TEXT NOT NULL                   -- JSON object
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO counters (name, value) VALUES ('dropped', 0);
"""


class Outbox:
    """A thread-safe FIFO of JSON payloads persisted in SQLite, keyed by an increasing ``seq``."""

    def __init__(self, config: OutboxConfig, *, clock: Callable[[], float] = time.time) -> None:
        self._config = config
        self._clock = clock
        self._lock = threading.Lock()
        self._path = Path(config.path)
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False, timeout=10.0)
        except (OSError, sqlite3.Error) as exc:
            raise StorageError(f"outbox.path: cannot open {self._path}: {exc}") from None
        try:
            self._configure()
            self._backlog = self._conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
            self._dropped = self._conn.execute("SELECT value FROM counters WHERE name = 'dropped'").fetchone()[0]
            row = self._conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
            self._last_seq = row[0] if row else 0
            with self._lock:
                self._transaction(self._enforce_bounds, durable=True)
        except sqlite3.Error as exc:
            self._conn.close()
            raise StorageError(f"outbox.path: cannot use {self._path}: {exc}") from None
        log.info("outbox %s: %d detection(s) waiting, %d dropped so far", self._path, self._backlog, self._dropped)

    def _configure(self) -> None:
        mode = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise sqlite3.OperationalError(f"journal_mode WAL refused (got {mode})")
        self._conn.execute(f"PRAGMA wal_autocheckpoint={_WAL_AUTOCHECKPOINT_PAGES}")
        self._conn.execute(f"PRAGMA journal_size_limit={_WAL_SIZE_LIMIT_BYTES}")
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, _SCHEMA_VERSION):
            raise sqlite3.DatabaseError(f"schema version {version}, expected {_SCHEMA_VERSION}")
        self._conn.executescript(_SCHEMA)
        self._conn.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")

    def put(self, payload: dict[str, Any]) -> int:
        """Store one payload durably (fsynced before returning) and return its ``seq``."""
        text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)

        def insert() -> int:
            cursor = self._conn.execute("INSERT INTO outbox (created, payload) VALUES (?, ?)", (self._clock(), text))
            self._backlog += 1
            self._last_seq = cursor.lastrowid
            self._enforce_bounds()
            return cursor.lastrowid

        with self._lock:
            return self._transaction(insert, durable=True)

    def pending(self, limit: int, after: int = 0) -> list[tuple[int, dict[str, Any]]]:
        """Up to ``limit`` unacknowledged ``(seq, payload)`` with ``seq > after``, in seq order."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT seq, payload FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit)
            ).fetchall()
        return [(seq, json.loads(text)) for seq, text in rows]

    def ack(self, seq: int) -> bool:
        """Remove the row ``seq`` once the broker has it; False if it was already gone."""

        def delete() -> bool:
            removed = self._conn.execute("DELETE FROM outbox WHERE seq = ?", (seq,)).rowcount
            self._backlog -= removed
            return removed > 0

        with self._lock:
            return self._transaction(delete, durable=False)

    def backlog(self) -> int:
        """Number of unacknowledged rows."""
        with self._lock:
            return self._backlog

    def dropped(self) -> int:
        """Rows dropped at the bounds since the file was created (persisted)."""
        with self._lock:
            return self._dropped

    @property
    def last_seq(self) -> int:
        """The highest ``seq`` ever handed out (0 for a new file); cheap, no SQL."""
        with self._lock:
            return self._last_seq

    def close(self) -> None:
        """Close the file (SQLite checkpoints the WAL); safe to call twice."""
        with self._lock:
            self._conn.close()

    def _transaction(self, body: Callable[[], Any], *, durable: bool) -> Any:
        # The caller holds self._lock. synchronous is per connection and cannot change inside a transaction.
        self._conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        backlog, last_seq, dropped = self._backlog, self._last_seq, self._dropped
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            result = body()
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            self._backlog, self._last_seq, self._dropped = backlog, last_seq, dropped
            raise
        return result

    def _enforce_bounds(self) -> None:
        """Drop rows older than max_age_days, then the oldest beyond max_rows; count and log both."""
        cutoff = self._clock() - self._config.max_age_days * _SECONDS_PER_DAY
        # Rows are in time order by seq: drop the prefix up to the first young row (one index seek).
        first_young = self._conn.execute(
            "SELECT seq FROM outbox WHERE created >= ? ORDER BY seq LIMIT 1", (cutoff,)
        ).fetchone()
        limit_seq = first_young[0] if first_young else self._last_seq + 1
        too_old = self._conn.execute("DELETE FROM outbox WHERE seq < ?", (limit_seq,)).rowcount
        self._count_dropped(too_old)
        if too_old:
            log.warning("outbox %s: dropped %d detection(s) older than max_age_days=%g (%d dropped in total)",
                           self._path, too_old, self._config.max_age_days, self._dropped)
        excess = self._backlog - self._config.max_rows
        if excess > 0:
            removed = self._conn.execute(
                "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox ORDER BY seq LIMIT ?)", (excess,)
            ).rowcount
            self._count_dropped(removed)
            log.warning("outbox %s: full, dropped the %d oldest detection(s) beyond max_rows=%d "
                           "(%d dropped in total)", self._path, removed, self._config.max_rows, self._dropped)

    def _count_dropped(self, count: int) -> None:
        if count:
            self._conn.execute("UPDATE counters SET value = value + ? WHERE name = 'dropped'", (count,))
            self._backlog -= count
            self._dropped += count


class OutboxSink:
    """Commits each detection's payload to the :class:`Outbox` (the MQTT publisher takes it from there)."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox

    def put(self, detection: Detection) -> None:
        """Store one detection durably (fsynced before returning)."""
        self.outbox.put(detection.to_payload())

    def close(self) -> None:
        """Close the outbox file."""
        self.outbox.close()
