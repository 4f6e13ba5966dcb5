"""The daemon's archive of raw audio: fed every block by the pipeline thread, written on a thread of its own.

:meth:`ArchiveFeed.put_audio` runs on a pipeline thread for each block it reads (one feed per source, all into
one archive: one queue, one directory, one cap): it only cuts the kept minutes out
(:class:`~daemon.archive.sampler.ArchiveSampler`, no copy) and queues each finished piece (never waits: a piece
that finds the queue full is dropped and counted), so the archive adds no latency to scoring.
:meth:`AudioArchive.work` runs on the ``birdd-archive`` thread, which the service makes: it encodes and writes
the pieces (:class:`~daemon.archive.directory.ArchiveDirectory`). Memory: the minute under way
and at most :data:`QUEUED_PIECES` finished ones (7.7 MB each). When the archive's directory stops taking
writes, and when it takes them again, ``on_event`` publishes ``archive_write_failed`` (with the error) and
``archive_writable``, as the outbox and the store do (:mod:`daemon.write_faults`).
"""

from __future__ import annotations

import logging
import queue
import shutil
import threading
import time
from dataclasses import asdict
from typing import Any

from daemon.archive.directory import ArchiveCounters, ArchiveDirectory
from daemon.archive.sampler import ArchivePiece, ArchiveSampler
from daemon.clips.policy import DiskUsage
from daemon.config import ArchiveConfig
from daemon.constants import SAMPLE_RATE, WINDOW_SECONDS
from daemon.pipeline.detection import StreamClock
from daemon.pipeline.scoring import AudioBlock
from daemon.write_faults import EventCallback, FaultEvents

log = logging.getLogger(__name__)

QUEUED_PIECES = 3
"""finished pieces waiting for the archive thread, per source (minutes of audio: the disk may stall that long)"""
MIN_PIECE_SAMPLES = WINDOW_SECONDS * SAMPLE_RATE
"""a shorter piece is not kept: it holds no whole window for a distillation"""


class ArchiveFeed:
    """One source's stream into the archive: an audio sink (``put_audio``, ``end_audio``) on its pipeline thread."""

    def __init__(self, archive: AudioArchive, sampler: ArchiveSampler) -> None:
        self._archive = archive
        self._sampler = sampler

    def put_audio(self, block: AudioBlock) -> None:
        """Take one block of the stream (pipeline thread; never waits)."""
        for piece in self._sampler.push(block):
            self._archive.submit(piece)

    def end_audio(self) -> None:
        """The stream ended: queue the piece under way."""
        for piece in self._sampler.flush():
            self._archive.submit(piece)


class AudioArchive:
    """The archive's queue and writer: a background task (``work``, ``drain``) that :class:`ArchiveFeed` s feed."""

    name = "birdd-archive"

    def __init__(self, config: ArchiveConfig, clock: StreamClock, on_event: EventCallback | None = None,
                 disk_usage: DiskUsage = shutil.disk_usage) -> None:
        self.counters = ArchiveCounters()
        self.directory = ArchiveDirectory(config, self.counters, disk_usage)
        self.directory.open()
        self._events = FaultEvents("archive", on_event)
        self._report()
        self._minutes_per_hour = config.minutes_per_hour
        self._clock = clock
        self._queue: queue.Queue[ArchivePiece] = queue.Queue()  # bounded by submit: QUEUED_PIECES per feed
        self._feeds = 0
        self._unwritten = 0  # pieces queued or being written
        self._lock = threading.Lock()

    def feed(self, source_name: str = "") -> ArchiveFeed:
        """A new feed for one source's stream; its files go under a folder ``source_name`` ("": the archive's own
        directory, as for a daemon of one source)."""
        with self._lock:
            self._feeds += 1
        return ArchiveFeed(self, ArchiveSampler(self._minutes_per_hour, self._clock, source_name))

    def work(self, timeout: float) -> None:
        """Write the next queued piece; wait up to ``timeout`` seconds for one (archive thread)."""
        try:
            piece = self._queue.get(timeout=timeout)
        except queue.Empty:
            return
        self._write(piece)

    def drain(self, deadline: float) -> int:
        """At stop: write what is queued until ``deadline`` (monotonic); the count left unwritten (counted)."""
        while time.monotonic() < deadline:
            try:
                self._write(self._queue.get_nowait())
            except queue.Empty:
                return 0
        left = 0
        while not self._queue.empty():
            self._queue.get_nowait()
            self._written_or_given_up()
            left += 1
        self.counters.not_written_at_stop += left
        return left

    def pending(self) -> int:
        """Pieces queued or being written."""
        with self._lock:
            return self._unwritten

    def status(self) -> dict[str, Any]:
        """Statistics for ``<prefix>/status/stats``."""
        return {"archive": {**asdict(self.counters), "files": self.directory.files,
                            "total_bytes": self.directory.total_bytes, "queued": self._queue.qsize(),
                            "error": self.directory.error}}

    def submit(self, piece: ArchivePiece) -> None:
        """Queue a finished piece for the archive thread (any pipeline thread; never waits: dropped and counted
        when the queue is full, or when shorter than a window)."""
        if piece.samples.size < MIN_PIECE_SAMPLES:
            self.counters.too_short += 1
            return
        with self._lock:
            if self._queue.qsize() >= QUEUED_PIECES * self._feeds:  # pieces come from feeds only
                self.counters.dropped_busy += 1
                log.log(logging.WARNING if self.counters.dropped_busy == 1 else logging.DEBUG,
                        "archive: still writing earlier audio, %.0f s from %s not kept (%d so far; counted in "
                        "archive.dropped_busy)", piece.seconds, piece.source, self.counters.dropped_busy)
                return
            self._queue.put_nowait(piece)
            self._unwritten += 1

    def _write(self, piece: ArchivePiece) -> None:
        try:
            self.directory.write(piece)
        finally:
            self._written_or_given_up()
        self._report()

    def _report(self) -> None:
        self._events.report(self.directory.error, "archived audio written again")

    def _written_or_given_up(self) -> None:
        with self._lock:
            self._unwritten -= 1
