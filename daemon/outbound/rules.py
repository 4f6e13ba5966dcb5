"""Which detections make a notification: a plain object over the configuration and the store's history.

In order: below ``min_confidence`` or inside ``quiet_hours`` (the local time now), nothing; a listed species
(``species``) always; else the first detection of its species in the widest configured scope among "ever",
"year" and "today" (the detection store's rows stored before it); and at most ``max_per_hour`` sent in any hour.
"""

from __future__ import annotations

import sqlite3
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from daemon.config import NotificationsConfig
from daemon.filters.quiet import QuietHours
from daemon.store.queries import seen_before
from daemon.store.writer import epoch_of, local_date_time

HOUR_S = 3600.0
_SCOPES = (("ever", "first detection ever"), ("year", "first detection this year"), ("today", "first detection today"))


@dataclass(frozen=True)
class Message:
    """One notification."""

    title: str
    body: str


def minutes_of(clock_time: str) -> int:
    """Minutes after midnight of ``"HH:MM"``."""
    hours, minutes = clock_time.split(":")
    return int(hours) * 60 + int(minutes)


class NotificationRules:
    """Decides per detection payload; ``history`` is a read-only connection to the detection store (or None)."""

    def __init__(self, config: NotificationsConfig, station: str, history: sqlite3.Connection | None, *,
                 clock: Callable[[], float] = time.time) -> None:
        self._config = config
        self._station = station
        self._history = history
        self._clock = clock
        self._listed = {name.casefold() for name in config.species}
        self._quiet_hours = QuietHours(config.quiet_hours)  # the system's local time, as [filters] by default
        self._sent: deque[float] = deque()  # times of the detection notifications of the last hour
        self.quiet = 0
        """notifications not sent inside quiet hours"""
        self.rate_limited = 0
        """notifications not sent beyond max_per_hour"""

    def message(self, payload: dict[str, Any]) -> Message | None:
        """The notification ``payload`` makes now, or None."""
        if payload["confidence"] < self._config.min_confidence:
            return None
        reason = self._reason(payload)
        if reason is None:
            return None
        now = self._clock()
        if self._quiet_hours.at(now):
            self.quiet += 1
            return None
        while self._sent and now - self._sent[0] >= HOUR_S:
            self._sent.popleft()
        if self._config.max_per_hour and len(self._sent) >= self._config.max_per_hour:
            self.rate_limited += 1
            return None
        _, heard = local_date_time(epoch_of(payload["end"]))
        return Message(f"birdd {self._station}: {payload['common_name']}",
                       f"{reason}: {payload['common_name']} ({payload['scientific_name']}), "
                       f"{payload['confidence']:.0%} at {heard}")

    def sent(self) -> None:
        """A message from :meth:`message` went out (it counts against ``max_per_hour``)."""
        self._sent.append(self._clock())

    def _reason(self, payload: dict[str, Any]) -> str | None:
        names = {str(payload.get(key, "")).casefold() for key in ("species_code", "scientific_name", "common_name")}
        if names & self._listed:
            return "listed species"
        row_id = payload.get("id")
        if self._history is None or row_id is None:
            return None
        date, _ = local_date_time(epoch_of(payload["end"]))
        since = {"ever": None, "year": date[:4] + "-01-01", "today": date}
        for scope, reason in _SCOPES:
            if scope in self._config.new_species and not seen_before(self._history, payload["species_code"], row_id,
                                                                       since[scope]):
                return reason
        return None
