"""The durable outbox: detections wait in SQLite until the broker acknowledges them.

Durability choice (WAL journal): ``put`` commits with ``synchronous=FULL``, so a detection is on
the card (the WAL is fsynced) before ``put`` returns and before it can be published; a power cut
loses nothing that was accepted. ``ack`` commits with ``synchronous=NORMAL`` (no fsync): a power
cut may undo the last few acks, which only re-publishes those detections, and subscribers drop
the duplicates by ``detection_id``. Reads never write. Detections are rare (a few a minute), so
one fsync per detection and the WAL auto-checkpoint keep SD-card wear low.

Bounds: beyond ``max_rows`` the oldest rows are dropped, and rows older than ``max_age_days``
are dropped; both are counted in a persisted ``dropped`` counter and logged.

Detection ids: the highest ``id`` field (the detection store's row id) of any payload ever committed is kept
in the ``highest_id`` counter, in the same transaction as the payload, so it is durable before the payload
can be published and outlives the row's acknowledgement and the bounds. The recording sink
(:mod:`daemon.sinks.recording`) issues ids above it, so an id once published is never given to another
detection, even when the store never kept the first one (docs/service.md). A file moved aside as damaged
hands its counter on as far as it can still be read (:func:`salvage_highest_id`: the higher of the counter
and the highest id among its rows); if neither can be read, the new file starts at 0 and the store's
highest id is all that is known (logged). The exception: a detection published from memory while
the file takes no write (below) reaches the counter only with the write that catches up (acknowledged or
not); if the daemon stops before that write, its id may be issued again once the file is writable.

Faults: a file that is not a database, or fails ``PRAGMA quick_check``, is moved aside at start
(``outbox.sqlite.corrupt-<UTC time>``, never deleted) and a new one is started. A write that fails
while running (disk full, file system turned read-only, I/O error) keeps the detection in memory, in
order, under the ``seq`` it will have in the file, up to :data:`HELD_MAX` (beyond it the oldest held are
dropped and counted). ``pending`` hands held detections out after the file's rows, so the publisher goes on
publishing while the file takes no write; an acknowledged held detection is forgotten (it never reaches the
file), and an acknowledgement of a file row that cannot be written is kept. Both are retried with back-off
(:mod:`daemon.write_faults`) at the next ``put`` or ``retry_held`` (the outbox sink calls it at every scored
window): the unacknowledged held detections are written, oldest first, under their ``seq``. What is still held
when the outbox closes (not acknowledged by the broker) is lost, and the count logged.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any

from daemon.config import OutboxConfig
from daemon.errors import StorageError
from daemon.pipeline.detection import Detection
from daemon.pipeline.scoring import WindowResult
from daemon.write_faults import EventCallback, FaultEvents, WriteFault, worth_logging

log = logging.getLogger(__name__)

_SCHEMA_VERSION = 1
_WAL_AUTOCHECKPOINT_PAGES = 1000  # SQLite's default, stated: checkpoint when the WAL reaches ~4 MB
_WAL_SIZE_LIMIT_BYTES = 4 * 1024 * 1024  # truncate the WAL back to this after a checkpoint
_SECONDS_PER_DAY = 86_400.0
HELD_MAX = 10_000
"""detections kept in memory while the outbox cannot be written (about 5 MB); the oldest go beyond it"""
_CORRUPT = ("file is not a database", "malformed", "quick_check")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- AUTOINCREMENT: seqs never go back, even when empty
    created REAL NOT NULL,                  -- wall-clock epoch seconds of put()
    payload TEXT NOT NULL                   -- JSON object
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO counters (name, value) VALUES ('dropped', 0);
-- a file from before this counter: the ids still waiting are all it knows of (scanned only then)
INSERT OR IGNORE INTO counters (name, value)
    SELECT 'highest_id', COALESCE(MAX(json_extract(payload, '$.id')), 0) FROM outbox
    WHERE NOT EXISTS (SELECT 1 FROM counters WHERE name = 'highest_id');
"""
_SALVAGE = ("SELECT MAX(value) FROM counters NOT INDEXED WHERE name = 'highest_id'",
            "SELECT MAX(json_extract(payload, '$.id')) FROM outbox WHERE json_valid(payload) "
            "AND json_type(payload, '$.id') = 'integer'")
"""where a damaged outbox may still show its highest detection id (aggregates: one row, NULL when nothing)"""
_PLAUSIBLE_ID = 2**53
"""a salvaged id at or above this is damage, not an id (JavaScript clients could not even hold it)"""
_ID_FIELD = "id"
"""the payload field whose highest value is kept (the detection store's row id; None without a store)"""


def salvage_highest_id(path: Path) -> int | None:
    """The highest detection id a damaged outbox file still shows (the higher of its counter and its rows' ids),
    read without writing next to it; None if neither can be read."""
    wal = path.with_name(path.name + "-wal")
    options = "mode=ro" if wal.exists() else "mode=ro&immutable=1"  # immutable: no -wal or -shm is created
    found = []
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?{options}", uri=True, timeout=1.0)
    except sqlite3.Error:
        return None
    try:
        for query in _SALVAGE:
            try:
                value = conn.execute(query).fetchone()[0]
            except sqlite3.Error:
                continue
            if isinstance(value, int) and 0 < value < _PLAUSIBLE_ID:
                found.append(value)
    finally:
        conn.close()
    return max(found, default=None)


class Outbox:
    """A thread-safe FIFO of JSON payloads persisted in SQLite, keyed by an increasing ``seq``."""

    def __init__(self, config: OutboxConfig, *, clock: Callable[[], float] = time.time) -> None:
        self._config = config
        self._clock = clock
        self._lock = threading.Lock()
        self._path = Path(config.path)
        self._held: dict[int, str] = {}  # seq -> payload JSON, in seq order; not in the file yet
        self._put_id = 0  # the highest id field of any payload put, held ones (even acknowledged) included
        self._held_acks: set[int] = set()
        self._held_dropped = 0
        self._fault = WriteFault(f"outbox {self._path}", f"holding detections in memory (at most {HELD_MAX})")
        try:
            self._open()
        except sqlite3.DatabaseError as exc:
            if not any(sign in str(exc) for sign in _CORRUPT):
                raise StorageError(f"outbox.path: cannot use {self._path}: {exc}") from None
            salvaged = salvage_highest_id(self._move_aside(exc))
            self._open(carried=salvaged or 0)
            if salvaged is None:
                log.warning("outbox %s: the damaged file's highest detection id cannot be read: ids it published "
                            "may be issued again (above the detection store's highest id)", self._path)
            else:
                log.warning("outbox %s: highest detection id %d carried over from the damaged file", self._path,
                            salvaged)
        log.info("outbox %s: %d detection(s) waiting, %d dropped so far, highest detection id %d", self._path,
                 self._backlog, self._dropped, self._highest_id)

    def _open(self, carried: int = 0) -> None:
        """Open (or make) the file; its id mark starts at least at ``carried`` (from a damaged file)."""
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False, timeout=10.0)
        except (OSError, sqlite3.Error) as exc:
            raise StorageError(f"outbox.path: cannot open {self._path}: {exc}") from None
        try:
            check = self._conn.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise sqlite3.DatabaseError(f"quick_check: {check}")
            self._configure()
            self._backlog = self._conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
            self._dropped = self._counter("dropped")
            self._highest_id = self._counter("highest_id")
            row = self._conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
            self._last_seq = row[0] if row else 0
            with self._lock:
                self._transaction(lambda: self._start(carried), durable=True)
        except sqlite3.DatabaseError:
            self._conn.close()
            raise
        except sqlite3.Error as exc:
            self._conn.close()
            raise StorageError(f"outbox.path: cannot use {self._path}: {exc}") from None

    def _counter(self, name: str) -> int:
        return self._conn.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()[0]

    def _move_aside(self, exc: Exception) -> Path:
        """Keep a damaged outbox (and its WAL) under a new name for inspection; a new one starts empty."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        aside = self._path.with_name(f"{self._path.name}.corrupt-{stamp}")
        for suffix in ("", "-wal", "-shm"):
            part = self._path.with_name(self._path.name + suffix)
            if part.exists():
                part.rename(aside.with_name(aside.name + suffix))
        log.error("outbox %s is damaged (%s): moved aside to %s, starting a new one", self._path, exc, aside)
        return aside

    def _start(self, carried: int) -> None:
        # Inside the first transaction: the id mark carried over, then the bounds.
        if carried > self._highest_id:
            self._conn.execute("UPDATE counters SET value = ? WHERE name = 'highest_id'", (carried,))
            self._highest_id = carried
        self._enforce_bounds()

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

    def put(self, payload: dict[str, Any]) -> int | None:
        """Store one payload durably (fsynced before returning) and return its ``seq``; None if the file
        cannot be written now: the payload is then held in memory (and published from there) under the next
        ``seq``, and written by a later retry unless the broker acknowledges it first."""
        with self._lock:
            self._last_seq += 1
            seq = self._last_seq
            self._held[seq] = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
            self._put_id = max(self._put_id, payload.get(_ID_FIELD) or 0)
            self._bound_held()
            self._flush_held(force=False)  # while writes fail, only when the back-off says so
            return None if seq in self._held else seq

    def retry_held(self) -> None:
        """Write held detections and acknowledgements if the back-off says it is time (cheap otherwise)."""
        with self._lock:
            self._flush_held(force=False)

    @property
    def write_error(self) -> str:
        """Why the last write failed ("" once writes succeed again)."""
        with self._lock:
            return self._fault.error

    def held(self) -> tuple[int, int]:
        """(detections held in memory now, held detections dropped at :data:`HELD_MAX` since start)."""
        with self._lock:
            return len(self._held), self._held_dropped

    def pending(self, limit: int, after: int = 0) -> list[tuple[int, dict[str, Any]]]:
        """Up to ``limit`` unacknowledged ``(seq, payload)`` with ``seq > after``, in seq order: the file's rows,
        then the held detections (whose seqs all come after the file's)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT seq, payload FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit)
            ).fetchall()
            if len(rows) < limit:  # held ones at or before ``after`` are the few in flight: the skip is short
                rows += islice(((seq, text) for seq, text in self._held.items() if seq > after), limit - len(rows))
        return [(seq, json.loads(text)) for seq, text in rows]

    def ack(self, seq: int) -> bool:
        """Remove the row (or held detection) ``seq`` once the broker has it; False if it was already gone, or if
        removing the row cannot be written now (then it is removed by a later retry)."""

        def delete() -> bool:
            removed = self._conn.execute("DELETE FROM outbox WHERE seq = ?", (seq,)).rowcount
            self._backlog -= removed
            return removed > 0

        with self._lock:
            if self._held.pop(seq, None) is not None:  # delivered before the file took it: never written
                return True
            if self._fault.error:  # writes fail now: keep it for the next retry
                self._held_acks.add(seq)
                return False
            try:
                return self._transaction(delete, durable=False)
            except sqlite3.Error as exc:
                self._held_acks.add(seq)
                self._fault.failed(exc)
                return False

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
        """The highest ``seq`` ever handed out, held detections included (0 for a new file); cheap, no SQL."""
        with self._lock:
            return self._last_seq

    @property
    def highest_id(self) -> int:
        """The highest ``id`` field of any payload ever committed (0 if none); it outlives acks and the bounds."""
        with self._lock:
            return self._highest_id

    def close(self) -> None:
        """Write what is held (one last try), close the file (SQLite checkpoints the WAL); safe to call twice."""
        with self._lock:
            if self._held or self._held_acks or self._fault.error:
                self._flush_held(force=True)
            if self._held:
                log.error("outbox %s: %d held detection(s) could not be written before exit, not acknowledged by "
                          "the broker (%s)", self._path, len(self._held), self._fault.error)
            self._conn.close()

    def _flush_held(self, *, force: bool) -> None:
        """Write held acks, then held detections oldest first under their seqs, in one durable transaction (the
        lock is held). While writes fail, also with nothing held (all acknowledged): that write tells when the
        file takes writes again."""
        if not (self._held or self._held_acks or self._fault.error) or (not force and not self._fault.due()):
            return

        def write() -> None:
            for seq in sorted(self._held_acks):
                self._backlog -= self._conn.execute("DELETE FROM outbox WHERE seq = ?", (seq,)).rowcount
            for seq, text in self._held.items():
                self._conn.execute("INSERT INTO outbox (seq, created, payload) VALUES (?, ?, ?)",
                                   (seq, self._clock(), text))
                self._backlog += 1
            if next(reversed(self._held), None) != self._last_seq:  # the newest were acknowledged while held
                self._keep_last_seq()
            if self._put_id > self._highest_id:
                self._conn.execute("UPDATE counters SET value = ? WHERE name = 'highest_id'", (self._put_id,))
                self._highest_id = self._put_id
            self._enforce_bounds()

        try:
            self._transaction(write, durable=True)
        except sqlite3.Error as exc:
            self._fault.failed(exc)
            return
        self._fault.succeeded(f"{len(self._held)} held detection(s) and {len(self._held_acks)} acknowledgement(s) "
                              "written")
        self._held.clear()
        self._held_acks.clear()

    def _keep_last_seq(self) -> None:
        """Record ``_last_seq`` as AUTOINCREMENT's high mark, so that seqs never go back after a restart."""
        mark = (self._last_seq,)
        if not self._conn.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = 'outbox'", mark).rowcount:
            self._conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('outbox', ?)", mark)

    def _bound_held(self) -> None:
        while len(self._held) > HELD_MAX:
            del self._held[next(iter(self._held))]
            self._held_dropped += 1
            if worth_logging(self._held_dropped):
                log.warning("outbox %s: %d held detection(s) dropped so far (memory bound %d)", self._path,
                            self._held_dropped, HELD_MAX)

    def _transaction(self, body: Callable[[], Any], *, durable: bool) -> Any:
        # The caller holds self._lock. synchronous is per connection and cannot change inside a transaction.
        self._conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        backlog, dropped, highest_id = self._backlog, self._dropped, self._highest_id
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            result = body()
            self._conn.execute("COMMIT")
        except BaseException:
            if self._conn.in_transaction:  # SQLite may have rolled back already (disk full, I/O error)
                self._conn.execute("ROLLBACK")
            self._backlog, self._dropped, self._highest_id = backlog, dropped, highest_id
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
    """Commits each detection's payload to the :class:`Outbox` (the MQTT publisher takes it from there).

    Also a window sink: every scored window is the moment to retry detections held in memory while the
    outbox could not be written. ``on_event(kind, message)`` reports ``outbox_write_failed`` and
    ``outbox_writable`` (the status topic's events). ``extra_fields(detection)`` adds fields to the payload:
    the detection store's ``id`` and ``clip``.
    """

    def __init__(self, outbox: Outbox, on_event: EventCallback | None = None,
                 extra_fields: Callable[[Detection], dict[str, Any]] | None = None) -> None:
        self.outbox = outbox
        self._events = FaultEvents("outbox", on_event)
        self._extra_fields = extra_fields

    def put(self, detection: Detection) -> None:
        """Store one detection durably (fsynced before returning), or hold it in memory until the file takes it."""
        payload = detection.to_payload()
        if self._extra_fields is not None:
            payload.update(self._extra_fields(detection))
        self.outbox.put(payload)
        self._report()

    def put_window(self, result: WindowResult) -> None:
        """Retry held writes when due."""
        self.outbox.retry_held()
        self._report()

    def _report(self) -> None:
        self._events.report(self.outbox.write_error, "held detections written")

    def close(self) -> None:
        """Close the outbox file."""
        self.outbox.close()
