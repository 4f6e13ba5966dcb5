"""The station's memory as a sink: every detection into the detection store, with its clip planned and queued.

On the sink thread, for each window result: :meth:`RecordingSink.put_window` (window sinks go first)
gives each of its detections a row id and, if the disk policy admits one, clip file names (it only
reads the store); the outbox sink then puts both into the MQTT payload (:meth:`payload_fields`) and
commits the detection durably; :meth:`RecordingSink.put` finally stores the row under that id and
hands the clip job to the clip worker. The outbox comes first, so the store can never hold a
detection back from MQTT: a failed store write is counted, logged and retried (before each later
detection and at close), and only beyond ``RETRY_KEPT`` waiting rows is the oldest given up (counted).
"""

from __future__ import annotations

import logging
import sqlite3
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

from daemon.clips.schedule import ClipSchedule
from daemon.pipeline.detection import Detection
from daemon.pipeline.scoring import WindowResult
from daemon.store.writer import ClipFiles, DetectionStore, epoch_of, local_date_time

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
    """store writes that raised (each retried)"""
    given_up: int = 0
    """detections never stored: more than ``RETRY_KEPT`` were waiting"""


class RecordingSink:
    """A window sink and a detection sink over one :class:`DetectionStore` and (optionally) the clips."""

    def __init__(self, store: DetectionStore, clips: ClipSchedule | None) -> None:
        self.store = store
        self.clips = clips
        self.counters = StoreCounters()
        self._next_id = store.last_id() + 1
        self._planned: dict[str, Planned] = {}
        self._retry: deque[tuple[Detection, Planned]] = deque()

    def put_window(self, result: WindowResult) -> None:
        """Give each detection of the window its row id and clip names (reads only)."""
        if self.clips is not None:
            self.clips.advance(result.start_sample)
        for detection in result.detections:
            local_date, local_time = local_date_time(epoch_of(detection.end))
            files = None
            if self.clips is not None:
                try:
                    files = self.clips.recorder.plan(detection, local_date, local_time)
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
        self._retry_waiting()
        if self._retry or not self._store(detection, planned):
            self._keep_for_retry(detection, planned)

    def status(self) -> dict[str, Any]:
        """Statistics for ``<prefix>/status/stats``: the store's rows and troubles, and what happened to clips."""
        report: dict[str, Any] = {"store_rows": self.store.rows(), "store_failed_writes": self.counters.failed_writes,
                                  "store_waiting": len(self._retry), "store_given_up": self.counters.given_up}
        if self.clips is not None:
            report["clips"] = {**asdict(self.clips.recorder.counters), "pending": self.clips.pending(),
                               "total_bytes": self.clips.recorder.policy.total_bytes}
        return report

    def close(self) -> None:
        """Try the waiting rows once more, then close the store."""
        self._retry_waiting()
        if self._retry:
            log.error("detection store: %d detection(s) could not be stored before exit", len(self._retry))
        self.store.close()

    def _store(self, detection: Detection, planned: Planned) -> bool:
        try:
            _, released = self.store.add(detection, planned.files, planned.row_id)
        except (sqlite3.Error, OSError) as exc:
            self.counters.failed_writes += 1
            log.warning("detection store: cannot store %s (%d failure(s) so far; kept for a retry): %s",
                        detection.detection_id, self.counters.failed_writes, exc)
            return False
        self.counters.stored += 1
        if self.clips is not None:
            self.clips.recorder.released(released)
            if planned.files is not None:
                self.clips.submit(self.clips.recorder.job(planned.row_id, planned.files, detection,
                                                          planned.local_date, planned.start_sample,
                                                          planned.end_sample))
        return True

    def _retry_waiting(self) -> None:
        while self._retry and self._store(*self._retry[0]):
            self._retry.popleft()

    def _keep_for_retry(self, detection: Detection, planned: Planned) -> None:
        self._retry.append((detection, planned))
        if len(self._retry) > RETRY_KEPT:
            lost, _ = self._retry.popleft()
            self.counters.given_up += 1
            log.error("detection store: gave up storing %s (%d waiting)", lost.detection_id, len(self._retry))
