"""What every outbound target offers the delivery thread, and the two ways a send can fail."""

from __future__ import annotations

from typing import Any, Protocol


class RetryLater(Exception):
    """The target could not take the row now (unreachable, timeout, 5xx, 408, 429): try the same row again."""


class Refused(Exception):
    """The target refused the row for good (a 4xx other than 408 and 429): record it and go on with the next."""


class Target(Protocol):
    """Sends one outbox row (a detection payload) at a time; no threads, no state about the outbox."""

    name: str
    """the outbox target name (``birdweather``, ``webhook:<name>``, ``notifications``)"""

    def send(self, payload: dict[str, Any]) -> bool:
        """Deliver ``payload``: True once the target confirmed it, False if the target passes over it (below its
        confidence, ...). Raises :class:`RetryLater` or :class:`Refused`."""
