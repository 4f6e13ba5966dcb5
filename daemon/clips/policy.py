"""The disk policy of clips: which detections get one, and what is deleted to stay within the budget.

- ``never_species``: no clip, ever (the detection row is kept);
- ``keep_per_species_per_day`` = N: a detection gets a clip only if it beats the least confident of the N
  clips of its species that day; after a write, clips beyond the N best of that day are deleted;
- ``max_age_days``: clips whose window ended longer ago are deleted;
- ``max_total_mb``: before a clip is written, the oldest clips are deleted until the new one fits, so the
  clips on disk never exceed the cap (temporary files included: they are written after the room is made);
- ``min_free_mb``: no clip is written while the file system would be left with less free space.

Deleting a clip deletes its two files and clears the row's ``clip``/``spectrogram``; the detection stays.
Nothing here raises on a full disk: every clip not written is counted by reason.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from daemon.clips.directory import ClipDirectory
from daemon.config import ClipsConfig
from daemon.store.writer import SECONDS_PER_DAY, ClipRow, DetectionStore

log = logging.getLogger(__name__)

MB = 1024 * 1024
EVICT_BATCH = 16
"""clips looked up per eviction query"""

DiskUsage = Callable[[str], shutil._ntuple_diskusage]


@dataclass
class ClipCounters:
    """What happened to clips since start (each written by the clip worker or the dispatch thread)."""

    written: int = 0
    bytes_written: int = 0
    skipped_species: int = 0
    """never_species"""
    skipped_rank: int = 0
    """not among the day's N most confident of its species"""
    skipped_disk: int = 0
    """below the free-space floor"""
    missed_audio: int = 0
    """the window's audio had left the ring (or was never heard)"""
    skipped_unwritable: int = 0
    """the clips directory could not be written (full, read-only): skipped until the back-off allows a try"""
    skipped_store: int = 0
    """the detection's row could not be stored at once: its audio was gone by the time it was"""
    failed: int = 0
    """encoding or file-system errors"""
    skipped_private: int = 0
    """the window's audio is private (a voice, quiet hours with quiet_mode = "audio"): no clip"""
    silenced_private: int = 0
    """clips written with private audio in their margins silenced"""
    not_written_at_stop: int = 0
    """still queued when the daemon stopped"""
    deleted_cap: int = 0
    deleted_age: int = 0
    deleted_rank: int = 0
    deleted_retention: int = 0
    """with their rows, by the store's retention"""


class DiskPolicy:
    """Admission and eviction against the store's clip index; the files live in ``directory``."""

    def __init__(self, config: ClipsConfig, store: DetectionStore, directory: ClipDirectory, counters: ClipCounters,
                 *, clock: Callable[[], float] = time.time, disk_usage: DiskUsage = shutil.disk_usage) -> None:
        self._config = config
        self._store = store
        self._directory = directory
        self._counters = counters
        self._clock = clock
        self._disk_usage = disk_usage
        self._never = frozenset(config.never_species)
        self._cap_bytes = int(config.max_total_mb * MB)

    @property
    def total_bytes(self) -> int:
        """Bytes of the clips on disk, as the store records them (one count however many threads write)."""
        return self._store.clip_bytes()

    def admit(self, species_code: str, local_date: str, confidence: float) -> bool:
        """Should this detection get a clip? (Counted when not.)"""
        if species_code in self._never:
            self._counters.skipped_species += 1
            return False
        keep = self._config.keep_per_species_per_day
        if keep:
            day = self._store.day_clips(local_date, species_code)
            if len(day) >= keep and confidence <= day[keep - 1].confidence:
                self._counters.skipped_rank += 1
                return False
        if not self._has_free_space(0):
            self._counters.skipped_disk += 1
            return False
        return True

    def make_room(self, nbytes: int) -> bool:
        """Delete old clips (by age, then the oldest beyond the cap) so ``nbytes`` more fit; False if they never can
        (larger than the cap, or the free-space floor): the clip is then not written (counted)."""
        cutoff = self._clock() - self._config.max_age_days * SECONDS_PER_DAY
        while too_old := self._store.oldest_clips(EVICT_BATCH, cutoff):
            self._evict(too_old, "deleted_age")
        if nbytes > self._cap_bytes or not self._has_free_space(nbytes):
            self._counters.skipped_disk += 1
            return False
        while self.total_bytes + nbytes > self._cap_bytes:
            oldest = self._store.oldest_clips(1)
            if not oldest:
                break
            self._evict(oldest, "deleted_cap")
        return True

    def added(self, nbytes: int, local_date: str, species_code: str) -> None:
        """A clip of ``nbytes`` was written; keep only the N most confident of its species that day."""
        self._counters.written += 1
        self._counters.bytes_written += nbytes
        keep = self._config.keep_per_species_per_day
        if keep:
            self._evict(self._store.day_clips(local_date, species_code)[keep:], "deleted_rank")

    def released(self, names: list[str]) -> None:
        """The store's retention deleted rows with these clip files."""
        if names:
            self._directory.delete(names)
            self._counters.deleted_retention += len(names) // 2

    def _evict(self, rows: list[ClipRow], counter: str) -> None:
        if not rows:
            return
        self._directory.delete(name for row in rows for name in row.files.names)
        self._store.forget_clips(row.row_id for row in rows)
        setattr(self._counters, counter, getattr(self._counters, counter) + len(rows))
        log.debug("clips: deleted %d clip(s) (%s)", len(rows), counter)

    def _has_free_space(self, nbytes: int) -> bool:
        return leaves_free_space(self._directory.root, nbytes, self._config.min_free_mb, self._disk_usage)


def leaves_free_space(root: str | Path, nbytes: int, min_free_mb: float, disk_usage: DiskUsage) -> bool:
    """Would writing ``nbytes`` under ``root`` leave at least ``min_free_mb`` free? (False if it cannot be read.)"""
    try:
        free = disk_usage(str(root)).free
    except OSError as exc:
        log.warning("cannot read the free space of %s: %s", root, exc)
        return False
    return free - nbytes >= min_free_mb * MB
