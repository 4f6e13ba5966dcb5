"""One thread with an explicit lifecycle: start, a stop flag, a bounded join, and the error that ended it."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


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
