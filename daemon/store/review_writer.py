"""The one writer of reviews: ``birdd web``'s authenticated review handlers call it, nothing else writes.

It opens the existing store for writing (``mode=rw``: it never creates one), upgrades an older schema
(:data:`daemon.store.schema.MIGRATIONS`) and writes only the ``reviews`` and ``review_comments`` tables;
every other request of ``birdd web`` reads through read-only connections. The daemon writes the same
file concurrently: each review is one short ``BEGIN IMMEDIATE`` transaction that waits up to
:data:`daemon.store.schema.REVIEW_BUSY_TIMEOUT_S` for the daemon's.

A detection's first review keeps what an export needs beyond the detection's retention: a JSON snapshot
of its row, and a hard link to its clip in :func:`daemon.store.schema.review_audio_dir` (a copy when the
clips are on another file system). The disk policy may then delete the clip, and retention the row;
the review, its snapshot and its audio stay.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from daemon.errors import StoreError
from daemon.store.queries import by_id
from daemon.store.schema import open_store, review_audio_dir

log = logging.getLogger(__name__)

VERDICTS = ("correct", "false_positive")
"""BirdNET-Go's ``verified`` values a review sets"""
MAX_COMMENT_CHARS = 2000


class ReviewRefused(Exception):
    """A review that cannot be applied: ``status`` is the HTTP status (404 no detection, 409 locked)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ReviewChange:
    """What one review request asks for; None leaves that part as it is."""

    verified: str | None = None
    """one of :data:`VERDICTS`"""
    lock: bool | None = None
    comment: str | None = None


def utc_now() -> str:
    """Now as ISO 8601 UTC with milliseconds and ``Z``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ReviewWriter:
    """Writes reviews into the store at ``store_path``; thread-safe (one connection under a lock).

    Opened lazily at the first write, so ``birdd web`` may start before the daemon has created the store;
    an open or write failure is a :class:`StoreError` (the server answers 503)."""

    def __init__(self, store_path: str | Path, clips_dir: str | Path):
        self.store_path = Path(store_path)
        self.clips_dir = Path(clips_dir)
        self.audio_dir = review_audio_dir(store_path)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def open(self) -> None:
        """Open (and upgrade) the store now; raises :class:`StoreError` if it cannot be."""
        with self._lock:
            self._connection()

    def review(self, row_id: int, change: ReviewChange) -> None:
        """Apply one review to detection ``row_id``: :class:`ReviewRefused` if it does not exist (and was never
        reviewed) or is locked."""
        with self._transaction("review") as conn:
            self._apply(conn, row_id, change)

    def review_many(self, row_ids: list[int], verified: str) -> tuple[int, int]:
        """BirdNET-Go's batch review: set ``verified`` on each detection; locked or unknown ones are skipped.
        Returns ``(processed, skipped)``; one transaction for all."""
        processed = skipped = 0
        with self._transaction("batch review") as conn:
            for row_id in dict.fromkeys(row_ids):
                try:
                    self._apply(conn, row_id, ReviewChange(verified=verified))
                    processed += 1
                except ReviewRefused:
                    skipped += 1
        return processed, skipped

    def set_lock(self, row_id: int, locked: bool) -> None:
        """Lock or unlock a detection (unlocking is the only change a locked detection accepts)."""
        with self._transaction("lock") as conn:
            self._ensure_review(conn, row_id)
            conn.execute("UPDATE reviews SET locked = ?, reviewed_utc = ? WHERE detection = ?",
                         (int(locked), utc_now(), row_id))

    def close(self) -> None:
        """Close the connection (safe to call twice)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    @contextmanager
    def _transaction(self, what: str) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction under the lock, rolled back on any failure; an SQLite error is a
        :class:`StoreError` naming ``what`` was not written."""
        with self._lock:
            try:
                conn = self._connection()
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:  # SQLite may have rolled back already (disk full, I/O error)
                        conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise StoreError(f"{self.store_path}: {what} not written: {exc}") from None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = open_store(self.store_path, read_only=False, create=False)
        return self._conn

    def _apply(self, conn: sqlite3.Connection, row_id: int, change: ReviewChange) -> None:
        """One review inside the caller's transaction."""
        locked = self._ensure_review(conn, row_id)
        if locked:
            raise ReviewRefused(409, f"detection {row_id} is locked and its review cannot be changed")
        now = utc_now()
        if change.verified is not None:
            conn.execute("UPDATE reviews SET verified = ?, reviewed_utc = ? WHERE detection = ?",
                         (change.verified, now, row_id))
        if change.lock:
            conn.execute("UPDATE reviews SET locked = 1, reviewed_utc = ? WHERE detection = ?", (now, row_id))
        if change.comment:
            conn.execute("INSERT INTO review_comments (detection, entry, created_utc) VALUES (?, ?, ?)",
                         (row_id, change.comment, now))

    def _ensure_review(self, conn: sqlite3.Connection, row_id: int) -> bool:
        """The review row of ``row_id`` exists after this (made from the detection's row, with its audio
        linked); whether it is locked. :class:`ReviewRefused` (404) when neither exists."""
        found = conn.execute("SELECT locked FROM reviews WHERE detection = ?", (row_id,)).fetchone()
        if found is not None:
            return bool(found[0])
        row = by_id(conn, row_id)
        if row is None:
            raise ReviewRefused(404, f"detection {row_id} not found")
        snapshot = {k: v for k, v in row.items() if k not in ("verified", "locked")}
        audio = self._link_audio(row_id, row.get("clip"))
        conn.execute("INSERT INTO reviews (detection, verified, locked, reviewed_utc, snapshot, audio) "
                     "VALUES (?, NULL, 0, ?, ?, ?)",
                     (row_id, utc_now(), json.dumps(snapshot, separators=(",", ":"), sort_keys=True), audio))
        return False

    def _link_audio(self, row_id: int, clip: str | None) -> str | None:
        """A link (or copy) of the detection's clip as ``<id><suffix>`` in the review audio folder; None when
        the detection has no clip on disk (already deleted, or never written)."""
        if not clip:
            return None
        source = self.clips_dir / clip
        if not _inside(source, self.clips_dir) or not source.is_file() or source.is_symlink():
            return None
        name = f"{row_id}{source.suffix.lower()}"
        target = self.audio_dir / name
        try:
            self.audio_dir.mkdir(parents=True, exist_ok=True)
            target.unlink(missing_ok=True)
            try:
                os.link(source, target)
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                    raise
                shutil.copyfile(source, target)
        except FileNotFoundError:  # the disk policy deleted the clip just now
            return None
        except OSError as exc:
            log.warning("review of detection %d: its clip is not kept (%s)", row_id, exc)
            return None
        return name


def _inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` lies within ``folder`` once both are resolved (a stored name is never trusted)."""
    try:
        path.resolve().relative_to(folder.resolve())
    except (OSError, ValueError):
        return False
    return True
