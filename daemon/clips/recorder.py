"""Clips of detections: planned when a detection is stored, cut from the ring buffer, written within the budget.

:meth:`ClipRecorder.plan` runs on the dispatch path, before the detection is stored: it applies the
admission rules of :class:`~daemon.clips.policy.DiskPolicy` and names the files, so that the row and
the MQTT payload carry the clip's name. :meth:`ClipRecorder.write` runs later, on the clip worker
(``daemon.service``), once the ring holds the window and its margin after: it copies the audio
still held by the ring, encodes it, renders the spectrogram, makes room and writes both files. A
failure at any step is counted and clears the row's clip; the detection itself is never affected.
A directory that cannot be written (disk full, file system turned read-only) logs one line and publishes
``clips_write_failed`` (``clips_writable`` once a clip is written again); clips are then skipped (counted)
until the back-off of :mod:`daemon.write_faults` allows the next try.

At start, :meth:`ClipRecorder.reconcile` makes the directory and the store agree after a crash:
rows whose clip never landed (or landed truncated) lose it, and files no row names are deleted.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from daemon.audio.ring import RingBuffer
from daemon.clips.directory import ClipDirectory
from daemon.clips.encode import encode_clip
from daemon.clips.policy import ClipCounters, DiskPolicy, DiskUsage
from daemon.clips.spectrogram import render_spectrogram
from daemon.config import ClipsConfig
from daemon.constants import SAMPLE_RATE
from daemon.filters.mask import PrivacyMask
from daemon.model.features import FrontEndParams
from daemon.pipeline.detection import Detection
from daemon.store.writer import ClipFiles, DetectionStore
from daemon.write_faults import EventCallback, FaultEvents, WriteFault

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClipJob:
    """One clip to cut: stream samples ``[first_sample, last_sample)`` around the window (``window_start..end``)."""

    row_id: int
    files: ClipFiles
    species_code: str
    local_date: str
    first_sample: int
    window_start: int
    window_end: int
    last_sample: int
    source_name: str = ""
    """the source whose ring holds the audio (its stream's sample indices)"""


RingsByName = Mapping[str, RingBuffer]
"""each source's ring buffer, by source name"""


def rings_by_name(rings: RingBuffer | RingsByName) -> RingsByName:
    """A mapping of the rings; one ring alone serves the detections of no named source ("")."""
    return {"": rings} if isinstance(rings, RingBuffer) else rings


class ClipRecorder:
    """Plans and writes the clips of one daemon; ``rings`` are the sources' ring buffers (or one ring)."""

    def __init__(self, config: ClipsConfig, store: DetectionStore, rings: RingBuffer | RingsByName, *,
                 on_event: EventCallback | None = None, front_end: FrontEndParams | None = None,
                 clock: Callable[[], float] = time.time, disk_usage: DiskUsage = shutil.disk_usage,
                 masks: Mapping[str, PrivacyMask] | None = None) -> None:
        self._config = config
        self.masks = masks or {}
        """each source's audio no clip keeps (a voice, quiet hours: docs/filters.md), by source name"""
        self._store = store
        self.rings = rings_by_name(rings)
        self._front_end = front_end or FrontEndParams()
        self.margin_samples = round(config.margin_s * SAMPLE_RATE)
        self.counters = ClipCounters()
        self.directory = ClipDirectory(config.dir)
        self.directory.root.mkdir(parents=True, exist_ok=True)
        self.policy = DiskPolicy(config, store, self.directory, self.counters, clock=clock, disk_usage=disk_usage)
        self._fault = WriteFault(f"clips {self.directory.root}", "skipping clips (the detections are kept)")
        """written by the clip worker, read by :meth:`plan` on the sink thread (a float compare: no lock needed)"""
        self._events = FaultEvents("clips", on_event)
        self._unforgotten: list[int] = []
        """rows whose clip name could not be cleared yet (the store could not be written): cleared at the next try"""

    @property
    def error(self) -> str:
        """Why the last clip could not be written to the directory ("" while clips are written)."""
        return self._fault.error

    def reconcile(self) -> int:
        """After a crash: forget clips that never landed whole, delete files no row names; the count deleted."""
        kept, lost = set(), []
        for row in self._store.all_clips():
            if row.nbytes and self.directory.size(row.files.names) == row.nbytes:
                kept.update(row.files.names)
            else:
                lost.append(row.row_id)
        self._store.forget_clips(lost)
        swept = self.directory.sweep(kept)
        log.info("clips %s: %d clip(s), %.1f MB; %d unfinished clip(s) forgotten, %d orphan file(s) deleted",
                 self.directory.root, len(kept) // 2, self.policy.total_bytes / 2**20, len(lost), swept)
        return swept

    def plan(self, detection: Detection, local_date: str, local_time: str,
             window: tuple[int, int] | None = None) -> ClipFiles | None:
        """The clip's file names if this detection (of the window ``[start, end)``) gets a clip (None: counted by
        reason)."""
        mask = self.masks.get(detection.source_name)
        if window is not None and mask is not None and mask.covers(*window):
            self.counters.skipped_private += 1
            return None
        if not self._fault.due():
            self.counters.skipped_unwritable += 1
            return None
        if not self.policy.admit(detection.species_code, local_date, detection.confidence):
            return None
        return self.directory.names_for(detection, local_date, local_time, self._config.format)

    def job(self, row_id: int, files: ClipFiles, detection: Detection, local_date: str, window_start: int,
            window_end: int) -> ClipJob:
        """The job that writes a planned clip of the window ``[window_start, window_end)`` (stream samples)."""
        return ClipJob(row_id, files, detection.species_code, local_date, max(0, window_start - self.margin_samples),
                       window_start, window_end, window_end + self.margin_samples, detection.source_name)

    def released(self, names: list[str]) -> None:
        """The store's retention deleted rows with these clip files: delete them."""
        self.policy.released(names)

    def give_up(self, jobs: list[ClipJob]) -> None:
        """These planned clips will not be written (the daemon stops): their rows lose the clip name."""
        self.counters.not_written_at_stop += len(jobs)
        self._forget([job.row_id for job in jobs])
        if self._unforgotten:  # the next start clears them
            log.warning("clips: %d clip name(s) of unwritten clips left in the store at stop", len(self._unforgotten))

    def write(self, job: ClipJob) -> bool:
        """Cut, encode, render and write one clip (clip worker); False if it was not written (counted)."""
        try:
            written = self._write(job)
        except OSError as exc:  # the directory: full, read-only, I/O error
            self._fault.failed(exc)
            self.counters.failed += 1
            written = False
        except (sqlite3.Error, ValueError, RuntimeError) as exc:  # soundfile raises RuntimeError
            log.warning("clips: cannot write %s: %s", job.files.clip, exc)
            self.counters.failed += 1
            written = False
        if not written:
            self.directory.delete(job.files.names)
        self._forget([] if written else [job.row_id])
        self._events.report(self._fault.error, "clips written again")
        return written

    def _forget(self, row_ids: list[int]) -> None:
        """Clear the clip names of these rows and of those not cleared before; keep them if the store refuses."""
        first = not self._unforgotten
        self._unforgotten.extend(row_ids)
        if not self._unforgotten:
            return
        try:
            self._store.forget_clips(self._unforgotten)
        except sqlite3.Error as exc:
            if first:
                log.warning("clips: cannot clear the clip name of %d row(s) now (tried again with the next clip): %s",
                            len(self._unforgotten), exc)
            return
        self._unforgotten.clear()

    def _write(self, job: ClipJob) -> bool:
        audio, window_held = self._cut(job)
        if not window_held:
            self.counters.missed_audio += 1
            log.warning("clips: the audio of %s is no longer in the ring buffer: no clip", job.files.clip)
            return False
        mask = self.masks.get(job.source_name)
        if mask is not None and mask.silence(job.first_sample, audio):
            self.counters.silenced_private += 1
        clip = encode_clip(audio, SAMPLE_RATE, self._config.format)
        window = tuple((sample - job.first_sample) / SAMPLE_RATE for sample in (job.window_start, job.window_end))
        png = render_spectrogram(audio, self._front_end, window)
        nbytes = len(clip) + len(png)
        if not self.policy.make_room(nbytes):
            return False
        self.directory.write(job.files.clip, clip)
        self.directory.write(job.files.spectrogram, png)
        self._fault.succeeded("clips written again")
        if not self._store.record_clip(job.row_id, nbytes):  # retention or the day's ranking took it meanwhile
            return False
        self.policy.added(nbytes, job.local_date, job.species_code)
        return True

    def _cut(self, job: ClipJob) -> tuple[np.ndarray, bool]:
        """The clip's samples (silence where the ring holds none) and whether the whole window was held."""
        audio = np.zeros(job.last_sample - job.first_sample, dtype=np.float32)
        window_held = 0
        for index, samples in self.rings[job.source_name].copy_past(job.first_sample, job.last_sample):
            audio[index - job.first_sample: index - job.first_sample + samples.size] = samples
            window_held += max(0, min(index + samples.size, job.window_end) - max(index, job.window_start))
        return audio, window_held == job.window_end - job.window_start
