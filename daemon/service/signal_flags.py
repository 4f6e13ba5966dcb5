"""Signals as flags: the handlers only assign an attribute, the main loop polls.

A Python signal handler runs in the main thread between two bytecodes, wherever that thread is; one that
takes a lock (``threading.Event.set`` takes its condition's lock) deadlocks if the main thread was
interrupted while holding that lock, e.g. inside ``Event.wait`` on the same event (the ``signal`` module's
documentation warns against locks in handlers). Plain attribute assignment takes none.
"""

from __future__ import annotations

import signal


class SignalFlags:
    """``stop`` is set by SIGTERM and SIGINT, ``reload`` by SIGHUP (when asked for); both may also be set
    from any thread."""

    def __init__(self) -> None:
        self.stop = False
        self.reload = False

    def install(self, *, reload: bool) -> None:
        """Route SIGTERM and SIGINT (and SIGHUP if ``reload``) to the flags; call from the main thread."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_stop)
        if reload:
            signal.signal(signal.SIGHUP, self._on_reload)

    def _on_stop(self, *_: object) -> None:
        self.stop = True

    def _on_reload(self, *_: object) -> None:
        self.reload = True
