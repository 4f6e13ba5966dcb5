"""The live detection stream (Server-Sent Events), as BirdNET-Go's ``/api/v2/detections/stream``.

Events: ``connected`` once, ``detection`` per new detection (BirdNET-Go's SSE detection data, with an
``id:`` line so a reconnecting client can resume with ``Last-Event-ID``), ``soundlevel`` per new sound-level
report (the MQTT payload, read from the file the daemon keeps beside the store, :mod:`daemon.store.sound_levels`;
the latest one at once on connecting), ``heartbeat`` every 15 s. New
detections are found by polling the store's largest id, an index lookup, every ``web.sse_poll_s``. That
misses none because rows are committed in the order of their ids: the detector hands ids out in order and
stores a row that a store fault held back before any newer one (:mod:`daemon.sinks.recording`).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable

from daemon.errors import StoreError
from daemon.store import queries
from daemon.store.sound_levels import LatestLevelsReader
from daemon.web.api import detection_json, rfc3339
from daemon.web.pool import StorePool

log = logging.getLogger(__name__)

HEARTBEAT_S = 15.0
MAX_STREAM_S = 30 * 60.0
"""a stream ends after this long (BirdNET-Go's limit); EventSource clients reconnect by themselves"""
BATCH = 100
"""detections read per poll at most (a client far behind catches up over several polls)"""
MAX_RESUME = 1000
"""a ``Last-Event-ID`` further back than this many detections resumes from the newest instead"""


def sse_message(event: str, data: dict, event_id: int | None = None) -> bytes:
    """One event in the SSE wire format."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


class DetectionStream:
    """One client's stream: call :meth:`run` with a writer; it returns when the client goes or ``stop`` is set."""

    def __init__(self, store: StorePool, poll_s: float, authenticated: bool, stop: threading.Event,
                 clients: Callable[[], int], levels: LatestLevelsReader | None = None):
        self.store = store
        self.levels = levels
        self.poll_s = poll_s
        self.authenticated = authenticated
        self.stop = stop
        self.clients = clients
        self.client_id = uuid.uuid4().hex[:12]

    def run(self, write: Callable[[bytes], None], resume_after: int | None = None) -> None:
        """Stream until the client disconnects (``write`` raises OSError), ``stop`` is set or the time is up."""
        last = self._last_id()
        if resume_after is not None and last - MAX_RESUME <= resume_after <= last:
            last = resume_after
        write(sse_message("connected", {"clientId": self.client_id, "message": "Connected to detection stream",
                                        "type": "detections"}))
        started = time.monotonic()
        beat = started + HEARTBEAT_S
        while not self.stop.wait(self.poll_s) and time.monotonic() - started < MAX_STREAM_S:
            for row in self._after(last):
                data = {**detection_json(row, self.authenticated), "timestamp": rfc3339(time.time()),
                        "eventType": "new_detection"}
                write(sse_message("detection", data, row["id"]))
                last = row["id"]
            for report in self.levels.new_reports() if self.levels is not None else ():
                write(sse_message("soundlevel", report))
            if time.monotonic() >= beat:
                write(sse_message("heartbeat", {"timestamp": int(time.time()), "clients": self.clients()}))
                beat = time.monotonic() + HEARTBEAT_S

    def _last_id(self) -> int:
        try:
            with self.store.connection() as conn:
                return queries.last_id(conn)
        except StoreError as exc:
            log.debug("stream %s: %s", self.client_id, exc)
            return 0

    def _after(self, last: int) -> list[dict]:
        try:
            with self.store.connection() as conn:
                if queries.last_id(conn) <= last:
                    return []
                return queries.after_id(conn, last, BATCH)
        except StoreError as exc:  # not created yet, or busy: try again at the next poll
            log.debug("stream %s: %s", self.client_id, exc)
            return []
