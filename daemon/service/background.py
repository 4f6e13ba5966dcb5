"""Threads for the work sinks hand off the sink thread (:class:`~daemon.sinks.base.BackgroundTask`), e.g. clips."""

from __future__ import annotations

import logging
import time

from daemon.lifecycle import ManagedThread
from daemon.sinks.base import BackgroundTask

log = logging.getLogger(__name__)

WORK_S = 0.1
"""longest wait for work before the stop flag is checked again (seconds): well inside the shortest stop budget of a
background task (0.3 s), so an idle worker ends in time"""
DRAIN_SHARE = 0.8
"""part of the stop budget spent finishing queued work (the rest: joining the thread)"""


class BackgroundWorker(ManagedThread):
    """Runs one task until stopped, then lets it finish what is queued within the stop budget."""

    def __init__(self, task: BackgroundTask) -> None:
        super().__init__(task.name, self._run)
        self._task = task
        self._drain_until = 0.0

    def stop(self, timeout: float = 5.0) -> None:
        """Stop taking new work; finish queued work for most of ``timeout`` seconds."""
        self._drain_until = time.monotonic() + DRAIN_SHARE * timeout
        super().stop(timeout)

    def _run(self) -> None:
        while not self.stop_event.is_set():
            self._task.work(WORK_S)
        left = self._task.drain(self._drain_until)
        if left:
            log.warning("%s: %d item(s) left undone at stop", self.name, left)
