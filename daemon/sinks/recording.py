"""The station's memory as a sink: every detection into the detection store, with its clip planned and queued.

On the sink thread, for each window result: :meth:`RecordingSink.put_window` (window sinks go first)
gives each of its detections a row id and, if the disk policy admits one, clip file names (it only
reads the store); the outbox sink then puts both into the MQTT payload (:meth:`payload_fields`) and
commits the detection durably; :meth:`RecordingSink.put` finally stores the row under that id and
hands the clip job to the clip worker. The outbox comes first, so the store can never hold a
detection back from MQTT.

Ids are never issued twice: they start above both the store's highest id and the highest id the outbox
ever committed (``published_id``, :attr:`daemon.sinks.outbox.Outbox.highest_id`), so a detection whose
payload went out but whose row never landed (still waiting at stop, given up, or lost from the store's WAL
in a power cut) leaves a gap in the ids instead of lending its id to the next detection after a restart.

A store write that fails (disk full, file system turned read-only, I/O error) keeps the row waiting in
memory, in order; beyond ``RETRY_KEPT`` waiting rows the oldest is given up (counted). One log line and a
``store_write_failed`` event on the status topic say so; the waiting rows are retried with back-off
(:mod:`daemon.write_faults`) at each window and detection, and once more at close; once the store takes
one again they all land in order, under the ids the MQTT payloads already carry, before any newer row (so
rows are committed in id order, which ``birdd web``'s live stream relies on), and one line and a
``store_writable`` event say so. A waiting row loses its clip (counted as ``clips.skipped_store``): by
the time it lands, the ring no longer holds its audio.
"""

from __future__ import annotations

import logging
import sqlite3
from collections import deque
from dataclasses import asdict, dataclass, replace
from typing import Any

from daemon.clips.schedule import ClipSchedule
from daemon.pipeline.detection import Detection
from daemon.pipeline.scoring import WindowResult
from daemon.store.writer import ClipFiles, DetectionStore, epoch_of, local_date_time
from daemon.write_faults import EventCallback, FaultEvents, WriteFault, worth_logging

log = logging.getLogger(__name__)

RETRY_KEPT = 10_000
"""detections kept in memory while the store cannot be written (about a week at a detection a minute)"""


@dataclass(frozen=True)
class Planned:
    """What a detection will be stored as: its row id, its clip files (if any), its window in the stream."""

    row_id: int
    files: ClipFiles | None
    local_date: str
    local_time: str
    start_sample: int
    end_sample: int


@dataclass
class StoreCounters:
    """The store side's troubles since start."""

    stored: int = 0
    failed_writes: int = 0
    """store writes that raised (their rows wait for a retry)"""
    given_up: int = 0
    """detections never stored: more than ``RETRY_KEPT`` were waiting"""


class RecordingSink:
    """A window sink and a detection sink over one :class:`DetectionStore` and (optionally) the clips."""

    def __init__(self, store: DetectionStore, clips: ClipSchedule | None,
                 on_event: EventCallback | None = None, *, published_id: int = 0) -> None:
        """``published_id``: the highest row id the outbox ever committed (published, or to be: its ``highest_id``)."""
        self.store = store
        self.clips = clips
        self.counters = StoreCounters()
        stored_id = store.last_id()
        if published_id > stored_id:
            log.info("detection store %s: ids go on after %d, the highest published (%d stored)", store.path,
                     published_id, stored_id)
        self._next_id = max(stored_id, published_id) + 1
        self._planned: dict[str, Planned] = {}
        self._waiting: deque[tuple[Detection, Planned]] = deque()
        self._fault = WriteFault(f"detection store {store.path}",
                                 f"keeping detections in memory (at most {RETRY_KEPT})")
        self._events = FaultEvents("store", on_event)

    def put_window(self, result: WindowResult) -> None:
        """Retry the waiting rows when due; give each detection of the window its row id and clip names."""
        self._store_waiting(force=False)
        self._report()
        if self.clips is not None:
            self.clips.advance(result.start_sample, result.source_name)
        for detection in result.detections:
            local_date, local_time = local_date_time(epoch_of(detection.end))
            files = None
            if self.clips is not None:
                try:
                    files = self.clips.recorder.plan(detection, local_date, local_time,
                                                     (result.start_sample, result.end_sample))
                except sqlite3.Error as exc:
                    log.warning("clips: cannot consult the store for %s: %s", detection.detection_id, exc)
            self._planned[detection.detection_id] = Planned(self._next_id, files, local_date, local_time,
                                                            result.start_sample, result.end_sample)
            self._next_id += 1

    def payload_fields(self, detection: Detection) -> dict[str, Any]:
        """``id`` and ``clip`` for the MQTT payload (None when the detection has no row or no clip)."""
        planned = self._planned.get(detection.detection_id)
        if planned is None:
            return {"id": None, "clip": None}
        return {"id": planned.row_id, "clip": planned.files.clip if planned.files else None}

    def put(self, detection: Detection) -> None:
        """Store the detection under its planned id and queue its clip; on failure keep it for a retry."""
        planned = self._planned.pop(detection.detection_id, None)
        if planned is None:  # not announced by put_window (cannot happen on the sink thread): a row, no clip
            local_date, local_time = local_date_time(epoch_of(detection.end))
            planned = Planned(self._next_id, None, local_date, local_time, 0, 0)
            self._next_id += 1
        self._store_waiting(force=False)
        if self._waiting or not self._store(detection, planned):  # never ahead of a waiting row: ids land in order
            self._keep_waiting(detection, planned)
        self._report()

    def status(self) -> dict[str, Any]:
        """Statistics for ``<prefix>/status/stats``: the store's rows and troubles, and what happened to clips."""
        report: dict[str, Any] = {"store_rows": self.store.rows(), "store_failed_writes": self.counters.failed_writes,
                                  "store_waiting": len(self._waiting), "store_given_up": self.counters.given_up,
                                  "store_error": self._fault.error}
        if self.clips is not None:
            recorder = self.clips.recorder
            report["clips"] = {**asdict(recorder.counters), "pending": self.clips.pending(),
                               "total_bytes": recorder.policy.total_bytes, "error": recorder.error}
        return report

    def close(self) -> None:
        """Try the waiting rows once more, then close the store."""
        self._store_waiting(force=True)
        if self._waiting:
            log.error("detection store %s: %d detection(s) could not be stored before exit (%s)", self.store.path,
                      len(self._waiting), self._fault.error)
        self.store.close()

    def _store(self, detection: Detection, planned: Planned) -> bool:
        try:
            _, released = self.store.add(detection, planned.files, planned.row_id)
        except (sqlite3.Error, OSError) as exc:
            self.counters.failed_writes += 1
            self._fault.failed(exc)
            return False
        self.counters.stored += 1
        if self.clips is not None:
            self.clips.recorder.released(released)
            if planned.files is not None:
                self.clips.submit(self.clips.recorder.job(planned.row_id, planned.files, detection,
                                                          planned.local_date, planned.start_sample,
                                                          planned.end_sample))
        return True

    def _store_waiting(self, *, force: bool) -> None:
        """Store the waiting rows, oldest first, if the back-off allows (or ``force``)."""
        if not self._waiting or not (force or self._fault.due()):
            return
        stored = 0
        while self._waiting and self._store(*self._waiting[0]):
            self._waiting.popleft()
            stored += 1
        if not self._waiting:
            self._fault.succeeded(f"{stored} waiting detection(s) stored")

    def _keep_waiting(self, detection: Detection, planned: Planned) -> None:
        if planned.files is not None and self.clips is not None:  # its audio will be gone when the row lands
            self.clips.recorder.counters.skipped_store += 1
            planned = replace(planned, files=None)
        self._waiting.append((detection, planned))
        if len(self._waiting) > RETRY_KEPT:
            lost, _ = self._waiting.popleft()
            self.counters.given_up += 1
            if worth_logging(self.counters.given_up):
                log.error("detection store %s: gave up storing %s (%d given up so far; at most %d wait)",
                          self.store.path, lost.detection_id, self.counters.given_up, RETRY_KEPT)

    def _report(self) -> None:
        self._events.report(self._fault.error, "waiting detections stored")
