"""Writes that fail for a while (disk full, file system turned read-only, I/O error): one state, one log line.

Shared by the outbox, the detection store and the clips. The first failure of a run of failures logs one
error line, the first success after it one line; in between, retries wait for a jittered, capped back-off
on the monotonic clock (a wall-clock jump neither hastens nor delays them), so a fault costs neither a
burst of retries nor a log line per window. :class:`FaultEvents` turns the same edges into the status
topic's events (``<name>_write_failed``, ``<name>_writable``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from daemon.backoff import Backoff

log = logging.getLogger(__name__)

RETRY_INITIAL_S, RETRY_MAX_S = 1.0, 60.0
"""back-off of the retries of failed writes (seconds: 1, doubling, at most 60)"""

EventCallback = Callable[[str, str], None]
"""``(kind, message)``: the MQTT publisher's ``publish_event``"""


class WriteFault:
    """Whether writes to ``what`` (e.g. ``"outbox /var/lib/birdd/outbox.sqlite"``) fail now, and when to try again.

    Not locked: the caller serialises (the outbox under its lock, the others on one thread each).
    """

    def __init__(self, what: str, meanwhile: str) -> None:
        self._what = what
        self._meanwhile = meanwhile
        self._backoff = Backoff(RETRY_INITIAL_S, RETRY_MAX_S)
        self._retry_at = 0.0
        self.error = ""
        """why the last write failed ("" while writes succeed)"""

    def due(self) -> bool:
        """May a write be tried now? (Always while writes succeed.)"""
        return time.monotonic() >= self._retry_at

    def failed(self, exc: Exception) -> None:
        """A write failed: wait for the back-off before the next try; the first failure of a run logs one line."""
        self._retry_at = time.monotonic() + self._backoff.next_delay()
        if not self.error:
            log.error("%s: cannot write (%s): %s, retrying with back-off", self._what, exc, self._meanwhile)
        self.error = str(exc) or type(exc).__name__

    def succeeded(self, caught_up: str) -> None:
        """A write succeeded; after failures, log one line saying what was caught up and start the back-off afresh."""
        if self.error:
            log.warning("%s: writable again; %s", self._what, caught_up)
            self.error = ""
            self._backoff.reset()
            self._retry_at = 0.0


class FaultEvents:
    """Publishes ``<name>_write_failed`` (with the error) and ``<name>_writable`` when a :class:`WriteFault` turns."""

    def __init__(self, name: str, on_event: EventCallback | None) -> None:
        self._name = name
        self._on_event = on_event
        self._reported = ""

    def report(self, error: str, recovered: str) -> None:
        """Publish an event when writes start failing (with ``error``) or work again (with ``recovered``): one each
        way per run of failures, however often the error's text changes (it names a file for clips)."""
        if bool(error) != bool(self._reported) and self._on_event is not None:
            if error:
                self._on_event(f"{self._name}_write_failed", error)
            else:
                self._on_event(f"{self._name}_writable", recovered)
        self._reported = error


def worth_logging(count: int) -> bool:
    """For a count that grows by one per detection (dropped, given up): log the 1st, 10th, 100th, then every 1,000th."""
    return count in (1, 10, 100) or count % 1000 == 0
