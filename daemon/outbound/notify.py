"""Notifications through Apprise: detections chosen by :class:`~daemon.outbound.rules.NotificationRules`, and the
station's alerts (gone silent, no audio, disk filling up) and daily summary from :class:`NotificationWatch`.

Detections come through the outbox like every target's (at least once, in order); the alerts and the summary are
made from the live state, not stored: one that cannot be sent is tried again at the next check.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from daemon.config import NotificationsConfig
from daemon.errors import ConfigError
from daemon.outbound.base import RetryLater
from daemon.outbound.rules import Message, NotificationRules, minutes_of
from daemon.store.queries import species_day
from daemon.store.writer import local_date_time

log = logging.getLogger(__name__)

CHECK_S = 30.0
"""period of the watch's checks (seconds)"""
SUMMARY_SPECIES = 15
"""species named in a daily summary, most detected first"""
_MB = 1024 * 1024


class Notifier:
    """The Apprise object for ``notifications.urls``: ``send(message)`` is True once every service took it."""

    def __init__(self, config: NotificationsConfig) -> None:
        try:
            import apprise
        except ImportError:
            raise ConfigError("notifications.enabled: needs the apprise package (pip install 'birdd[notify]')") \
                from None
        logging.getLogger("apprise").setLevel(logging.WARNING)
        self._apprise = apprise.Apprise()
        for i, url in enumerate(config.urls):
            if not self._apprise.add(url):
                raise ConfigError(f"notifications.urls[{i}]: not a URL Apprise knows (https://github.com/caronc/"
                                  "apprise/wiki)")

    def send(self, message: Message) -> bool:
        """Notify every configured service."""
        return bool(self._apprise.notify(title=message.title, body=message.body))


class NotificationTarget:
    """The outbox target ``notifications``: a detection notifies when the rules say so."""

    name = "notifications"

    def __init__(self, rules: NotificationRules, notifier: Notifier) -> None:
        self.rules = rules
        self._notifier = notifier

    def send(self, payload: dict[str, Any]) -> bool:
        """Notify about ``payload`` if the rules choose it (False otherwise)."""
        message = self.rules.message(payload)
        if message is None:
            return False
        if not self._notifier.send(message):
            raise RetryLater("apprise: a notification service did not take the message")
        self.rules.sent()
        return True


class NotificationWatch:
    """A background task: every :data:`CHECK_S`, the alerts and the daily summary (``check`` does one round)."""

    name = "birdd-notify-watch"

    def __init__(self, config: NotificationsConfig, station: str, notifier: Notifier,
                 stats: Callable[[], dict[str, Any]], store: sqlite3.Connection | None, disk_path: Path, *,
                 clock: Callable[[], float] = time.time) -> None:
        self._config = config
        self._station = station
        self._notifier = notifier
        self._stats = stats
        self._store = store
        self._disk_path = disk_path
        self._clock = clock
        self._wake = threading.Event()
        now = clock()
        self._next_check = now + CHECK_S
        self._seen: dict[str, tuple[float, float]] = {}  # stat -> (value, time it last changed)
        self._alerting: set[str] = set()
        self._unsent: list[Message] = []
        today, clock_time = local_date_time(now)
        past_summary = bool(config.summary_time) and minutes_of(clock_time[:5]) >= minutes_of(config.summary_time)
        self._summary_done = today if past_summary else ""  # a start after the summary time waits for tomorrow
        self.sent = 0

    def work(self, timeout: float) -> None:
        """Check when due; otherwise wait up to ``timeout``."""
        if self._clock() >= self._next_check:
            self._next_check = self._clock() + CHECK_S
            self.check()
        else:
            self._wake.wait(timeout)

    def drain(self, deadline: float) -> int:
        """Nothing is queued: alerts are made from the live state."""
        return 0

    def pending(self) -> int:
        """Nothing is queued."""
        return 0

    def check(self) -> None:
        """One round: silence, audio, disk, the summary; then send what is due (and what could not go before)."""
        now = self._clock()
        try:
            stats = self._stats()
        except Exception:
            log.exception("notifications: the status statistics failed")
            stats = {}
        hours = self._config.silent_hours
        self._stalled("detections", stats.get("detections"), now, hours * 3600.0,
                      f"no detection for {hours:g} h", "detections again")
        minutes = self._config.no_audio_minutes
        self._stalled("audio_seconds", stats.get("audio_seconds"), now, minutes * 60.0,
                      f"no audio for {minutes:g} min (source {stats.get('source_state', '?')})", "audio again")
        self._disk()
        self._summary(now)
        self._flush()

    def _stalled(self, stat: str, value: float | None, now: float, limit_s: float, alert: str, back: str) -> None:
        """Alert once when ``value`` has not changed for ``limit_s`` (0: off), and once when it moves again."""
        if not limit_s or value is None:
            return
        last, since = self._seen.get(stat, (value, now))
        if value != last:
            since = now
            if stat in self._alerting:
                self._alerting.discard(stat)
                self._queue(f"{back}")
        elif now - since >= limit_s and stat not in self._alerting:
            self._alerting.add(stat)
            self._queue(alert)
        self._seen[stat] = (value, since)

    def _disk(self) -> None:
        limit = self._config.disk_min_free_mb
        if not limit:
            return
        try:
            free_mb = shutil.disk_usage(self._disk_path).free / _MB
        except OSError as exc:
            log.warning("notifications: cannot read the free space of %s: %s", self._disk_path, exc)
            return
        if free_mb < limit and "disk" not in self._alerting:
            self._alerting.add("disk")
            self._queue(f"disk filling up: {free_mb:.0f} MB free on {self._disk_path} (alert below {limit:g} MB)")
        elif free_mb >= 1.1 * limit and "disk" in self._alerting:  # 10 % hysteresis: no flapping at the line
            self._alerting.discard("disk")
            self._queue(f"disk space back: {free_mb:.0f} MB free on {self._disk_path}")

    def _summary(self, now: float) -> None:
        if not self._config.summary_time or self._store is None:
            return
        today, clock_time = local_date_time(now)
        if self._summary_done == today or minutes_of(clock_time[:5]) < minutes_of(self._config.summary_time):
            return
        self._summary_done = today
        try:
            species = species_day(self._store, today, self._config.min_confidence)
        except sqlite3.Error as exc:
            log.warning("notifications: cannot read the detection store for the summary: %s", exc)
            return
        total = sum(day.count for day in species)
        lines = [f"{day.common_name}: {day.count}" for day in species[:SUMMARY_SPECIES]]
        more = len(species) - SUMMARY_SPECIES
        if more > 0:
            lines.append(f"and {more} more species")
        body = f"{today}: {len(species)} species, {total} detections" + ("\n" + "\n".join(lines) if lines else "")
        self._unsent.append(Message(f"birdd {self._station}: daily summary", body))

    def _queue(self, text: str) -> None:
        log.warning("notifications: %s", text)
        self._unsent.append(Message(f"birdd {self._station}: {text}", f"station {self._station}: {text}"))

    def _flush(self) -> None:
        while self._unsent:
            if not self._notifier.send(self._unsent[0]):
                log.warning("notifications: could not send %r; trying again in %.0f s", self._unsent[0].title,
                            CHECK_S)
                return
            self._unsent.pop(0)
            self.sent += 1
