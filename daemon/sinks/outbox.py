"""The durable outbox: detections wait in SQLite until every outbound target has confirmed them.

Targets (MQTT, BirdWeather, webhooks, notifications; docs/integrations.md): each registered target has its own
cursor (every ``seq`` at or below it is done for that target) and the set of rows above it it confirmed out of
order (MQTT has several in flight). A row is done for a target when the target acknowledged it (``ack``), skipped
it (``ack(skipped=True)``: below its confidence, say) or refused it for good (``refuse``: kept in the ``refused``
table for inspection). A row is deleted once it is done for every registered target; a target taken out of the
configuration holds nothing back (put back, it goes on from the rows still kept), and a new target starts with
the next detection. Each target's delivered, skipped, refused and dropped counts are persisted beside its cursor.
A version 1 file (one target, the broker) migrates in place: its rows wait for the ``mqtt`` target.

Durability choice (WAL journal): ``put`` commits with ``synchronous=FULL``, so a detection is on
the card (the WAL is fsynced) before ``put`` returns and before it can be published; a power cut
loses nothing that was accepted. ``ack`` commits with ``synchronous=NORMAL`` (no fsync): a power
cut may undo the last few acks, which only re-publishes those detections, and subscribers drop
the duplicates by ``detection_id``. Reads never write. Detections are rare (a few a minute), so
one fsync per detection and the WAL auto-checkpoint keep SD-card wear low.

Bounds: beyond ``max_rows`` the oldest rows are dropped, and rows older than ``max_age_days``
are dropped; both are counted in a persisted ``dropped`` counter and logged, and counted again for each
target that had not had the row yet.

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
publishing while the file takes no write; a held detection done for every target is forgotten (it never reaches
the file), and an acknowledgement of a file row that cannot be written is kept in memory (the target's cursor).
Both are retried with back-off
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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
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

_SCHEMA_VERSION = 2
_V1 = 1  # one target (the broker): its rows migrate as waiting for DEFAULT_TARGET
DEFAULT_TARGET = "mqtt"
"""the target of ``ack``/``pending`` without ``target``, and the one a version 1 file's rows were waiting for"""
REFUSED_KEPT = 1000
"""refused rows kept per target for inspection (the oldest go beyond it)"""
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
CREATE TABLE IF NOT EXISTS targets (
    name TEXT PRIMARY KEY,
    cursor INTEGER NOT NULL,                -- every seq <= cursor is done for this target
    delivered INTEGER NOT NULL DEFAULT 0,
    skipped INTEGER NOT NULL DEFAULT 0,
    refused INTEGER NOT NULL DEFAULT 0,
    dropped INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS target_acks (   -- rows above the cursor done out of order
    target TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (target, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS refused (       -- rows a target refused for good, for inspection
    target TEXT NOT NULL, seq INTEGER NOT NULL, time REAL NOT NULL, reason TEXT NOT NULL, payload TEXT NOT NULL,
    PRIMARY KEY (target, seq)) WITHOUT ROWID;
"""
_NOT_DONE = "seq > ? AND seq NOT IN (SELECT value FROM json_each(?))"
"""rows not done for a target: above its cursor and not among its out-of-order acks (a JSON array)"""
_SALVAGE = ("SELECT MAX(value) FROM counters NOT INDEXED WHERE name = 'highest_id'",
            "SELECT MAX(json_extract(payload, '$.id')) FROM outbox WHERE json_valid(payload) "
            "AND json_type(payload, '$.id') = 'integer'")
"""where a damaged outbox may still show its highest detection id (aggregates: one row, NULL when nothing)"""
_PLAUSIBLE_ID = 2**53
"""a salvaged id at or above this is damage, not an id (JavaScript clients could not even hold it)"""
_ID_FIELD = "id"
"""the payload field whose highest value is kept (the detection store's row id; None without a store)"""


@dataclass(frozen=True)
class TargetCounters:
    """One target's counts: what waits for it now, and what became of its rows since the file was made."""

    backlog: int
    """rows not done for the target yet (held ones included)"""
    delivered: int
    skipped: int
    """rows the target passed over (below its confidence, ...)"""
    refused: int
    """rows the target refused for good (kept in the ``refused`` table)"""
    dropped: int
    """rows dropped at the outbox bounds before the target had them"""


@dataclass
class _TargetState:
    cursor: int
    acked: set[int] = field(default_factory=set)
    delivered: int = 0
    skipped: int = 0
    refused: int = 0
    dropped: int = 0

    def done(self, seq: int) -> bool:
        return seq <= self.cursor or seq in self.acked

    def acked_json(self) -> str:
        return json.dumps(sorted(self.acked))


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
    """A thread-safe FIFO of JSON payloads persisted in SQLite, keyed by an increasing ``seq``, with a cursor for
    each of ``targets`` (none: rows are only kept, up to the bounds)."""

    def __init__(self, config: OutboxConfig, *, clock: Callable[[], float] = time.time,
                 targets: Sequence[str] = (DEFAULT_TARGET,)) -> None:
        self._config = config
        self._target_names = tuple(dict.fromkeys(targets))
        self._targets: dict[str, _TargetState] = {}
        self._dirty: set[str] = set()  # targets whose state is not written yet
        self._deletes: set[int] = set()  # file rows done for every target, not deleted yet
        self._refusals: list[tuple[str, int, float, str, str]] = []  # not written yet
        self._clock = clock
        self._lock = threading.Lock()
        self._path = Path(config.path)
        self._held: dict[int, str] = {}  # seq -> payload JSON, in seq order; not in the file yet
        self._put_id = 0  # the highest id field of any payload put, held ones (even acknowledged) included
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
            self._load_targets()
            with self._lock:
                self._transaction(lambda: self._start(carried), durable=True)
                self._written()
        except sqlite3.DatabaseError:
            self._conn.close()
            raise
        except sqlite3.Error as exc:
            self._conn.close()
            raise StorageError(f"outbox.path: cannot use {self._path}: {exc}") from None

    def _load_targets(self) -> None:
        """Register the configured targets (a new one starts after the last seq) and read their state."""
        for name in self._target_names:
            self._conn.execute("INSERT OR IGNORE INTO targets (name, cursor) VALUES (?, ?)", (name, self._last_seq))
            cursor, *counts = self._conn.execute(
                "SELECT cursor, delivered, skipped, refused, dropped FROM targets WHERE name = ?", (name,)).fetchone()
            acked = {seq for (seq,) in self._conn.execute("SELECT seq FROM target_acks WHERE target = ?", (name,))}
            self._targets[name] = _TargetState(cursor, acked, *counts)

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
        # Inside the first transaction: the id mark carried over, rows done for every target, then the bounds.
        if carried > self._highest_id:
            self._conn.execute("UPDATE counters SET value = ? WHERE name = 'highest_id'", (carried,))
            self._highest_id = carried
        if self._targets:
            low = min(state.cursor for state in self._targets.values())
            self._backlog -= self._conn.execute("DELETE FROM outbox WHERE seq <= ?", (low,)).rowcount
            self._deletes |= set.intersection(*(state.acked for state in self._targets.values()))
        self._enforce_bounds()
        self._write_state()

    def _configure(self) -> None:
        mode = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise sqlite3.OperationalError(f"journal_mode WAL refused (got {mode})")
        self._conn.execute(f"PRAGMA wal_autocheckpoint={_WAL_AUTOCHECKPOINT_PAGES}")
        self._conn.execute(f"PRAGMA journal_size_limit={_WAL_SIZE_LIMIT_BYTES}")
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, _V1, _SCHEMA_VERSION):
            raise sqlite3.DatabaseError(f"schema version {version}, expected {_SCHEMA_VERSION}")
        self._conn.executescript(_SCHEMA)
        if version == _V1:  # every row still in the file waits for the broker
            self._conn.execute("INSERT OR IGNORE INTO targets (name, cursor) VALUES (?, 0)", (DEFAULT_TARGET,))
            log.info("outbox %s: migrated to schema version %d (a cursor per target)", self._path, _SCHEMA_VERSION)
        self._conn.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")

    def put(self, payload: dict[str, Any]) -> int | None:
        """Store one payload durably (fsynced before returning) and return its ``seq``; None if the file
        cannot be written now: the payload is then held in memory (and published from there) under the next
        ``seq``, and written by a later retry unless the broker acknowledges it first."""
        with self._lock:
            seq = self._hold(payload)
            self._flush_held(force=False)  # while writes fail, only when the back-off says so
            return None if seq in self._held else seq

    def hold(self, payload: dict[str, Any]) -> None:
        """Take one payload under the next ``seq`` without writing it yet: :meth:`commit` writes what is held in
        one durable transaction (a group commit: one fsync for the detections made together)."""
        with self._lock:
            self._hold(payload)

    def commit(self) -> None:
        """Write what :meth:`hold` took, fsynced (while writes fail, only when the back-off says so)."""
        with self._lock:
            self._flush_held(force=False)

    def _hold(self, payload: dict[str, Any]) -> int:
        """Hold ``payload`` in memory under the next ``seq`` (the lock is held); the caller writes it."""
        self._last_seq += 1
        self._held[self._last_seq] = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
        self._put_id = max(self._put_id, payload.get(_ID_FIELD) or 0)
        self._bound_held()
        return self._last_seq

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

    def pending(self, limit: int, after: int = 0, *, target: str = DEFAULT_TARGET) -> list[tuple[int, dict[str, Any]]]:
        """Up to ``limit`` ``(seq, payload)`` not done for ``target``, with ``seq > after``, in seq order: the file's
        rows, then, while the file takes no write, the held detections (whose seqs all come after the file's). A
        detection held for a group commit is not handed out before the commit: an id published before it is
        durable could be issued again after a power cut."""
        with self._lock:
            state = self._state(target)
            start = max(after, state.cursor)
            rows = self._conn.execute(f"SELECT seq, payload FROM outbox WHERE {_NOT_DONE} ORDER BY seq LIMIT ?",
                                      (start, state.acked_json(), limit)).fetchall()
            if self._fault.error and len(rows) < limit:  # held ones at or before ``after`` are the few in flight
                waiting = ((seq, text) for seq, text in self._held.items() if seq > start and seq not in state.acked)
                rows += islice(waiting, limit - len(rows))
        return [(seq, json.loads(text)) for seq, text in rows]

    def ack(self, seq: int, *, target: str = DEFAULT_TARGET, skipped: bool = False) -> bool:
        """``target`` has the row (or held detection) ``seq`` (or passed over it: ``skipped``); once every target
        has it, it is removed. False if it was already done for ``target`` or gone, or if the change cannot be
        written now (it is kept and written by a later retry)."""
        return self._done(seq, target, "skipped" if skipped else "delivered", "")

    def refuse(self, seq: int, reason: str, *, target: str = DEFAULT_TARGET) -> bool:
        """``target`` refused the row ``seq`` for good (``reason``): it is done for that target, and a copy is kept
        in the ``refused`` table (the last :data:`REFUSED_KEPT` per target). False as for :meth:`ack`."""
        return self._done(seq, target, "refused", reason)

    def _done(self, seq: int, target: str, outcome: str, reason: str) -> bool:
        with self._lock:
            state = self._state(target)
            held = self._held.get(seq)
            if state.done(seq) or (held is None and not self._has_row(seq)):
                return False
            state.acked.add(seq)
            setattr(state, outcome, getattr(state, outcome) + 1)
            if outcome == "refused":
                text = held if held is not None else self._row_text(seq)
                self._refusals.append((target, seq, self._clock(), reason, text))
            self._advance(state)
            self._dirty.add(target)
            if all(other.done(seq) for other in self._targets.values()):
                if held is not None:  # delivered before the file took it: never written
                    del self._held[seq]
                else:
                    self._deletes.add(seq)
            if held is not None:
                return True
            if self._fault.error:  # writes fail now: kept for the next retry
                return False
            try:
                self._transaction(self._write_state, durable=False)
            except sqlite3.Error as exc:
                self._fault.failed(exc)
                return False
            self._written()
            return True

    def _state(self, target: str) -> _TargetState:
        try:
            return self._targets[target]
        except KeyError:
            raise ValueError(f"outbox: no target {target!r} (targets: {', '.join(self._targets) or 'none'})") from None

    def _has_row(self, seq: int) -> bool:
        return self._conn.execute("SELECT 1 FROM outbox WHERE seq = ?", (seq,)).fetchone() is not None

    def _row_text(self, seq: int) -> str:
        return self._conn.execute("SELECT payload FROM outbox WHERE seq = ?", (seq,)).fetchone()[0]

    def _advance(self, state: _TargetState) -> None:
        """Move the cursor up to just before the first row (in the file or held) not done for the target."""
        row = self._conn.execute(f"SELECT MIN(seq) FROM outbox WHERE {_NOT_DONE}",
                                 (state.cursor, state.acked_json())).fetchone()
        held = (seq for seq in self._held if seq > state.cursor and seq not in state.acked)
        first = min((seq for seq in (row[0], next(held, None)) if seq is not None), default=None)
        state.cursor = self._last_seq if first is None else first - 1
        state.acked = {seq for seq in state.acked if seq > state.cursor}

    def _write_state(self) -> None:
        """Write the targets' changed cursors and counts, refusals, and delete rows done for every target (inside a
        transaction; the caller clears what was written with :meth:`_written` once it commits)."""
        for name in sorted(self._dirty):
            state = self._targets[name]
            self._conn.execute("UPDATE targets SET cursor = ?, delivered = ?, skipped = ?, refused = ?, dropped = ? "
                               "WHERE name = ?", (state.cursor, state.delivered, state.skipped, state.refused,
                                                  state.dropped, name))
            self._conn.execute("DELETE FROM target_acks WHERE target = ?", (name,))
            self._conn.executemany("INSERT INTO target_acks (target, seq) VALUES (?, ?)",
                                   [(name, seq) for seq in sorted(state.acked)])
        for refusal in self._refusals:
            self._conn.execute("INSERT OR REPLACE INTO refused (target, seq, time, reason, payload) "
                               "VALUES (?, ?, ?, ?, ?)", refusal)
            self._conn.execute("DELETE FROM refused WHERE target = ?1 AND seq NOT IN "
                               "(SELECT seq FROM refused WHERE target = ?1 ORDER BY seq DESC LIMIT ?2)",
                               (refusal[0], REFUSED_KEPT))
        for seq in sorted(self._deletes):
            self._backlog -= self._conn.execute("DELETE FROM outbox WHERE seq = ?", (seq,)).rowcount

    def _written(self) -> None:
        self._dirty.clear()
        self._deletes.clear()
        self._refusals.clear()

    def targets(self) -> tuple[str, ...]:
        """The registered targets, in the order given."""
        return tuple(self._targets)

    def target_counters(self, target: str) -> TargetCounters:
        """``target``'s backlog and counts (one COUNT query)."""
        with self._lock:
            state = self._state(target)
            in_file = self._conn.execute(f"SELECT COUNT(*) FROM outbox WHERE {_NOT_DONE}",
                                         (state.cursor, state.acked_json())).fetchone()[0]
            held = sum(1 for seq in self._held if not state.done(seq))
            return TargetCounters(in_file + held, state.delivered, state.skipped, state.refused, state.dropped)

    def refused_rows(self, target: str) -> list[tuple[int, str, dict[str, Any]]]:
        """The refused rows kept for ``target``: ``(seq, reason, payload)``, oldest first."""
        with self._lock:
            rows = self._conn.execute("SELECT seq, reason, payload FROM refused WHERE target = ? ORDER BY seq",
                                      (target,)).fetchall()
        return [(seq, reason, json.loads(text)) for seq, reason, text in rows]

    def backlog(self) -> int:
        """Number of rows in the file (not done for every target yet)."""
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
            if self._held or self._dirty or self._fault.error:
                self._flush_held(force=True)
            if self._held:
                log.error("outbox %s: %d held detection(s) could not be written before exit, not acknowledged by "
                          "the broker (%s)", self._path, len(self._held), self._fault.error)
            self._conn.close()

    def _flush_held(self, *, force: bool) -> None:
        """Write held acks, then held detections oldest first under their seqs, in one durable transaction (the
        lock is held). While writes fail, also with nothing held (all acknowledged): that write tells when the
        file takes writes again."""
        if not (self._held or self._dirty or self._fault.error) or (not force and not self._fault.due()):
            return

        def write() -> None:
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
            self._write_state()

        try:
            self._transaction(write, durable=True)
        except sqlite3.Error as exc:
            self._fault.failed(exc)
            return
        self._fault.succeeded(f"{len(self._held)} held detection(s) and the acknowledgements of "
                              f"{len(self._dirty)} target(s) written")
        self._held.clear()
        self._written()

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
        """Drop rows older than max_age_days, then the oldest beyond max_rows; count (also per target) and log both."""
        cutoff = self._clock() - self._config.max_age_days * _SECONDS_PER_DAY
        # Rows are in time order by seq: drop the prefix up to the first young row (one index seek).
        first_young = self._conn.execute(
            "SELECT seq FROM outbox WHERE created >= ? ORDER BY seq LIMIT 1", (cutoff,)
        ).fetchone()
        too_old = self._drop_before(first_young[0] if first_young else self._last_seq + 1)
        if too_old:
            log.warning("outbox %s: dropped %d detection(s) older than max_age_days=%g (%d dropped in total)",
                           self._path, too_old, self._config.max_age_days, self._dropped)
        excess = self._backlog - self._config.max_rows
        if excess > 0:
            (last,) = self._conn.execute("SELECT seq FROM outbox ORDER BY seq LIMIT 1 OFFSET ?",
                                         (excess - 1,)).fetchone()
            removed = self._drop_before(last + 1)
            log.warning("outbox %s: full, dropped the %d oldest detection(s) beyond max_rows=%d "
                           "(%d dropped in total)", self._path, removed, self._config.max_rows, self._dropped)

    def _drop_before(self, limit_seq: int) -> int:
        """Delete the rows below ``limit_seq``; count them, and for each target those it had not had."""
        for name, state in self._targets.items():
            missed = self._conn.execute(f"SELECT COUNT(*) FROM outbox WHERE seq < ? AND {_NOT_DONE}",
                                        (limit_seq, state.cursor, state.acked_json())).fetchone()[0]
            if missed:
                state.dropped += missed
                self._dirty.add(name)
        removed = self._conn.execute("DELETE FROM outbox WHERE seq < ?", (limit_seq,)).rowcount
        self._count_dropped(removed)
        return removed

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
    the detection store's ``id`` and ``clip``. ``on_put()`` is called after each commit (the MQTT publisher's
    ``wake``, so that it publishes the rows at once). The sink thread holds the detections queued together and
    commits them at once (:class:`~daemon.sinks.base.GroupCommitSink`).
    """

    def __init__(self, outbox: Outbox, on_event: EventCallback | None = None,
                 extra_fields: Callable[[Detection], dict[str, Any]] | None = None,
                 on_put: Callable[[], None] | None = None) -> None:
        self.outbox = outbox
        self._on_put = on_put
        self._events = FaultEvents("outbox", on_event)
        self._extra_fields = extra_fields

    def put(self, detection: Detection) -> None:
        """Store one detection durably (fsynced before returning), or hold it in memory until the file takes it."""
        self.hold(detection)
        self.commit()

    def hold(self, detection: Detection) -> None:
        """Take the detection as :meth:`put` does (its payload is made now), but leave its write to :meth:`commit`."""
        self.outbox.hold(self._payload(detection))

    def commit(self) -> None:
        """Write what :meth:`hold` took in one durable commit, then wake the publisher."""
        self.outbox.commit()
        if self._on_put is not None:
            self._on_put()
        self._report()

    def _payload(self, detection: Detection) -> dict[str, Any]:
        payload = detection.to_payload()
        if self._extra_fields is not None:
            payload.update(self._extra_fields(detection))
        return payload

    def put_window(self, result: WindowResult) -> None:
        """Retry held writes when due."""
        self.outbox.retry_held()
        self._report()

    def _report(self) -> None:
        self._events.report(self.outbox.write_error, "held detections written")

    def close(self) -> None:
        """Close the outbox file."""
        self.outbox.close()
