"""The writer side of the detection store: one row per detection, row retention, the clip index.

Only the daemon writes (one connection, serialised by a lock: the dispatch thread adds rows, the
clip worker records and forgets clips). Durability: ``synchronous=NORMAL`` in WAL mode, so a commit
appends a few pages to the WAL without an fsync; the WAL is fsynced at each checkpoint (every
``WAL_AUTOCHECKPOINT_PAGES``). A power cut may lose the rows of the last seconds; the outbox, which
fsyncs every detection, still publishes them. That keeps SD-card writes to about one WAL append per
detection (docs/service.md).

Retention: rows whose window ended more than ``max_age_days`` ago and the oldest rows beyond
``max_rows`` are deleted at every insert (an index seek each); the clip files of deleted rows are
handed back to the caller, which deletes them.

The store counts the rows and the bytes of the clips on disk as it changes them, under its lock, so the
clip budget sees one exact total whichever thread recorded, forgot or released a clip last.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from daemon.config import StoreConfig
from daemon.pipeline.detection import Detection
from daemon.store.schema import open_store

log = logging.getLogger(__name__)

WAL_AUTOCHECKPOINT_PAGES = 1000
"""checkpoint (and fsync) when the WAL reaches about 4 MB: SQLite's default, stated"""
SECONDS_PER_DAY = 86_400.0


@dataclass(frozen=True)
class ClipFiles:
    """A detection's clip and spectrogram, as file names relative to the clips directory."""

    clip: str
    spectrogram: str

    @property
    def names(self) -> tuple[str, str]:
        """Both file names."""
        return self.clip, self.spectrogram


@dataclass(frozen=True)
class ClipRow:
    """A stored detection that has a clip."""

    row_id: int
    files: ClipFiles
    nbytes: int
    confidence: float


def epoch_of(iso_utc: str) -> float:
    """Seconds since 1970 of an ISO 8601 UTC time such as ``2026-11-26T20:27:30.125Z``."""
    return datetime.fromisoformat(iso_utc.replace("Z", "+00:00")).timestamp()


def local_date_time(epoch: float) -> tuple[str, str]:
    """``("YYYY-MM-DD", "HH:MM:SS")`` in the station's local time zone."""
    local = datetime.fromtimestamp(epoch, UTC).astimezone()
    return local.strftime("%Y-%m-%d"), local.strftime("%H:%M:%S")


class DetectionStore:
    """The detection table, opened for writing; every method is thread-safe and raises ``sqlite3.Error``."""

    def __init__(self, config: StoreConfig, *, clock: Callable[[], float] = time.time) -> None:
        self._config = config
        self._clock = clock
        self._lock = threading.Lock()
        self.path = Path(config.path)
        self._conn = open_store(self.path, read_only=False)
        self._conn.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
        self._rows, self._clip_bytes = self._count()
        log.info("detection store %s: %d detection(s)", self.path, self._rows)

    def add(self, detection: Detection, files: ClipFiles | None = None, row_id: int | None = None
            ) -> tuple[int, list[str]]:
        """Store one detection (as row ``row_id``, or the next id); return its row id and the clip files of rows
        that retention deleted. A detection already stored (same ``detection_id``) keeps its row.
        """
        start, end = epoch_of(detection.start), epoch_of(detection.end)
        local_date, local_time = local_date_time(end)
        row = (detection.detection_id, detection.station, detection.source, detection.start, detection.end,
               start, end, local_date, local_time, detection.species_code, detection.common_name,
               detection.scientific_name, detection.confidence,
               json.dumps(detection.model, separators=(",", ":"), sort_keys=True),
               files.clip if files else None, files.spectrogram if files else None, detection.source_name or None)
        with self._transaction():
            cursor = self._conn.execute(
                "INSERT INTO detections (id, detection_id, station, source, start_utc, end_utc, start_epoch, "
                "end_epoch, local_date, local_time, species_code, common_name, scientific_name, confidence, "
                "model, clip, spectrogram, source_name) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (detection_id) DO NOTHING", (row_id, *row))
            if cursor.rowcount:
                row_id = cursor.lastrowid
                self._rows += 1
            else:
                row_id = self._conn.execute("SELECT id FROM detections WHERE detection_id = ?",
                                            (detection.detection_id,)).fetchone()[0]
            released = self._enforce_retention()
        return row_id, released

    def record_clip(self, row_id: int, nbytes: int) -> bool:
        """The clip of ``row_id`` is on disk and takes ``nbytes`` (clip and spectrogram together).

        False if the row no longer expects it (deleted by retention, or its clip was given up meanwhile).
        """
        with self._transaction():
            before = self._conn.execute("SELECT clip_bytes FROM detections WHERE id = ? AND clip IS NOT NULL",
                                        (row_id,)).fetchone()
            if before is None:
                return False
            self._conn.execute("UPDATE detections SET clip_bytes = ? WHERE id = ?", (nbytes, row_id))
            self._clip_bytes += nbytes - before[0]
        return True

    def forget_clips(self, row_ids: Iterable[int]) -> None:
        """These rows no longer have a clip (deleted, or never written); the rows stay."""
        ids = list(row_ids)
        if ids:
            with self._transaction():
                self._clip_bytes -= self._conn.execute(
                    "SELECT COALESCE(SUM(clip_bytes), 0) FROM detections WHERE clip IS NOT NULL AND id IN "
                    "(SELECT value FROM json_each(?))", (json.dumps(ids),)).fetchone()[0]
                self._conn.executemany("UPDATE detections SET clip = NULL, spectrogram = NULL, clip_bytes = 0 "
                                       "WHERE id = ?", [(row_id,) for row_id in ids])

    def clip_bytes(self) -> int:
        """Bytes of every clip and spectrogram recorded on disk."""
        with self._lock:
            return self._clip_bytes

    def oldest_clips(self, limit: int, ended_before: float | None = None) -> list[ClipRow]:
        """Up to ``limit`` rows whose clip is on disk, oldest first (only those that ended before ``ended_before``)."""
        cutoff = float("inf") if ended_before is None else ended_before
        return self._clip_rows("clip_bytes > 0 AND end_epoch < ? ORDER BY end_epoch LIMIT ?", (cutoff, limit))

    def day_clips(self, local_date: str, species_code: str) -> list[ClipRow]:
        """Rows of one species and local day that have a clip (on disk or coming), most confident first."""
        return self._clip_rows("local_date = ? AND species_code = ? ORDER BY confidence DESC, id",
                               (local_date, species_code))

    def all_clips(self) -> list[ClipRow]:
        """Every row that has a clip (for the sweep at start)."""
        return self._clip_rows("1 ORDER BY id", ())

    def last_id(self) -> int:
        """The highest id ever handed out (AUTOINCREMENT's counter; 0 for a new store)."""
        with self._lock:
            row = self._conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'detections'").fetchone()
        return row[0] if row else 0

    def rows(self) -> int:
        """Number of stored detections."""
        with self._lock:
            return self._rows

    def close(self) -> None:
        """Close the file (SQLite checkpoints the WAL); safe to call twice."""
        with self._lock:
            self._conn.close()

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """One write transaction under the lock. On failure it is rolled back and the counts are restored, then
        taken again from the file if it can be read (a COMMIT may report an error and still land)."""
        with self._lock:
            if self._conn.in_transaction:  # a ROLLBACK that failed before
                self._conn.execute("ROLLBACK")
            self._conn.execute("BEGIN IMMEDIATE")
            counts = self._rows, self._clip_bytes
            try:
                yield
                self._conn.execute("COMMIT")
            except BaseException:
                self._rows, self._clip_bytes = counts
                with suppress(sqlite3.Error):  # the first error is the one to raise
                    if self._conn.in_transaction:  # SQLite may have rolled back already (disk full, I/O error)
                        self._conn.execute("ROLLBACK")
                    self._rows, self._clip_bytes = self._count()
                raise

    def _count(self) -> tuple[int, int]:
        """Rows, and bytes of the clips on disk, as the file holds them (each query on its own index)."""
        rows = self._conn.execute("SELECT COUNT(*) FROM detections").fetchone()[0]
        clip_bytes = self._conn.execute("SELECT COALESCE(SUM(clip_bytes), 0) FROM detections "
                                        "WHERE clip IS NOT NULL").fetchone()[0]
        return rows, clip_bytes

    def _clip_rows(self, where: str, args: tuple) -> list[ClipRow]:
        with self._lock:
            rows = self._conn.execute(
                f"SELECT id, clip, spectrogram, clip_bytes, confidence FROM detections "
                f"WHERE clip IS NOT NULL AND {where}", args).fetchall()
        return [ClipRow(row_id, ClipFiles(clip, spectrogram), nbytes, confidence)
                for row_id, clip, spectrogram, nbytes, confidence in rows]

    def _enforce_retention(self) -> list[str]:
        """Delete rows beyond max_age_days and max_rows (lock held, inside a transaction); their clip files."""
        cutoff = self._clock() - self._config.max_age_days * SECONDS_PER_DAY
        released = self._delete("end_epoch < ?", (cutoff,))
        excess = self._rows - self._config.max_rows
        if excess > 0:
            last = self._conn.execute("SELECT id FROM detections ORDER BY id LIMIT 1 OFFSET ?",
                                      (excess - 1,)).fetchone()[0]
            released += self._delete("id <= ?", (last,))
        return released

    def _delete(self, where: str, args: tuple) -> list[str]:
        files = self._conn.execute(f"SELECT clip, spectrogram, clip_bytes FROM detections "
                                   f"WHERE clip IS NOT NULL AND {where}", args).fetchall()
        deleted = self._conn.execute(f"DELETE FROM detections WHERE {where}", args).rowcount
        if deleted:
            self._rows -= deleted
            self._clip_bytes -= sum(nbytes for _, _, nbytes in files)
            log.info("detection store: retention deleted %d detection(s) (%s)", deleted, where.split()[0])
        return [name for clip, spectrogram, _ in files for name in (clip, spectrogram) if name]
