"""The one component lifecycle of the service: start, stop within a time budget, the error that ended it.

Every part of the daemon that owns a thread or a server (sources, the pipeline and sink workers, the
MQTT publisher, the metrics endpoint) is a :class:`Component`; the service starts them from a list
and stops them in reverse order. :class:`ManagedThread` is the usual way to be one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger(__name__)


class Component(Protocol):
    """What the service starts, watches and stops."""

    name: str
    error: BaseException | None
    """the exception that ended the component, if one did (the service then exits 1)"""

    def start(self) -> None:
        """Begin work; raise a :class:`~daemon.errors.BirddError` if the component cannot start."""

    def stop(self, timeout: float) -> None:
        """End work within ``timeout`` seconds (log what could not end in time)."""

    def is_alive(self) -> bool:
        """True while the component works."""


class ManagedThread:
    """Runs ``target`` on a daemon thread named ``name``.

    ``stop_event`` is the thread's stop flag (loops use ``while not stop_event.wait(t)``); an
    exception that escapes ``target`` is logged and kept in :attr:`error` so the service can exit
    loudly instead of running on without the thread.
    """

    def __init__(self, name: str, target: Callable[[], None]) -> None:
        self.name = name
        self.stop_event = threading.Event()
        self.error: BaseException | None = None
        self._target = target
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)

    def start(self) -> None:
        """Launch the thread."""
        self._thread.start()

    def request_stop(self) -> None:
        """Set the stop flag (the thread ends at its next check)."""
        self.stop_event.set()

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds; True if the thread has ended (or never started)."""
        if self._thread.ident is None:
            return True
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("%s still running after %.1f s", self.name, timeout)
            return False
        return True

    def is_alive(self) -> bool:
        """True while the thread runs."""
        return self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        """Set the stop flag and wait up to ``timeout`` seconds for the thread to end."""
        self.request_stop()
        self.join(timeout)

    def _main(self) -> None:
        try:
            self._target()
        except BaseException as exc:
            log.exception("%s failed", self.name)
            self.error = exc
