"""Notifications through Apprise: detections chosen by :class:`~daemon.outbound.rules.NotificationRules`, and the
station's alerts (gone silent, no audio, disk filling up) and daily summary from :class:`NotificationWatch`.

Each URL of ``notifications.urls`` is a target of its own (:func:`target_name`), with its own cursor, back-off and
counters, so a service that fails is retried alone and the others never get a message twice. Detections come
through the outbox like every target's (at least once, in order); the alerts and the summary go through a second
outbox beside it (:func:`alerts_path`), with the same cursors, and the watch keeps what it has announced in a
state file (:func:`watch_state_path`): an alert or summary survives a restart, and a restart repeats none.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from daemon.atomic import AtomicWriter
from daemon.config import NotificationsConfig, OutboxConfig
from daemon.errors import ConfigError
from daemon.outbound.base import RetryLater
from daemon.outbound.rules import Message, NotificationRules, minutes_of
from daemon.sinks.outbox import Outbox
from daemon.store.queries import species_day
from daemon.store.writer import local_date_time

log = logging.getLogger(__name__)

CHECK_S = 30.0
"""period of the watch's checks (seconds)"""
SUMMARY_SPECIES = 15
"""species named in a daily summary, most detected first"""
_MB = 1024 * 1024
_URL_DIGITS = 8  # hex digits of the URL's SHA-256 in its target name


def target_name(url: str) -> str:
    """The outbox target of one Apprise URL: ``notifications:<scheme>-<8 hex of its SHA-256>``; the same whatever
    the URL's place in the list, a new one when the URL changes, and no secret of the URL in it (it is in the
    status, the metrics and the outbox file)."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else "url"
    return f"notifications:{scheme}-{hashlib.sha256(url.encode()).hexdigest()[:_URL_DIGITS]}"


def alerts_path(outbox: OutboxConfig) -> Path:
    """The outbox of the alerts and summaries, beside the detections': ``outbox.sqlite`` -> ``outbox.alerts.sqlite``."""
    path = Path(outbox.path)
    return path.with_name(f"{path.stem}.alerts{path.suffix or '.sqlite'}")


def watch_state_path(outbox: OutboxConfig) -> Path:
    """What the watch has announced (``outbox.alerts.json``): the alerts on, the day of the last summary."""
    return alerts_path(outbox).with_suffix(".json")


class Notifier:
    """The Apprise object of one URL (``notifications.urls[index]``): ``send(message)`` is True once it took it."""

    def __init__(self, url: str, index: int) -> None:
        try:
            import apprise
        except ImportError:
            raise ConfigError("notifications.enabled: needs the apprise package (pip install 'birdd[notify]')") \
                from None
        logging.getLogger("apprise").setLevel(logging.WARNING)
        self._apprise = apprise.Apprise()
        if not self._apprise.add(url):
            raise ConfigError(f"notifications.urls[{index}]: not a URL Apprise knows (https://github.com/caronc/"
                              "apprise/wiki)")

    def send(self, message: Message) -> bool:
        """Notify the service."""
        return bool(self._apprise.notify(title=message.title, body=message.body))


class NotificationTarget:
    """One URL's target for detections: a detection notifies when the rules say so (each URL has its own rules
    object, so its hourly limit counts what that service was sent)."""

    def __init__(self, name: str, rules: NotificationRules, notifier: Notifier) -> None:
        self.name = name
        self.rules = rules
        self._notifier = notifier

    def send(self, payload: dict[str, Any]) -> bool:
        """Notify about ``payload`` if the rules choose it (False otherwise)."""
        message = self.rules.message(payload)
        if message is None:
            return False
        if not self._notifier.send(message):
            raise RetryLater("apprise: the notification service did not take the message")
        self.rules.sent()
        return True


class AlertTarget:
    """One URL's target in the alerts outbox: each row (``title``, ``body``) is sent as it is."""

    def __init__(self, name: str, notifier: Notifier) -> None:
        self.name = name
        self._notifier = notifier

    def send(self, payload: dict[str, Any]) -> bool:
        """Send the alert or summary."""
        if not self._notifier.send(Message(payload["title"], payload["body"])):
            raise RetryLater("apprise: the notification service did not take the alert")
        return True


class NotificationWatch:
    """A background task: every :data:`CHECK_S`, the alerts and the daily summary (``check`` does one round), put
    into the ``alerts`` outbox (whose delivery threads send them); it closes that outbox at stop.

    What it has announced (the alerts that are on, the day of the last summary) is kept in ``state_path``, written
    after the messages are in the outbox: after a restart an alert still on is not sent again, one that ended is
    announced as ended, and a summary not made yet today (the daemon was down at ``summary_time``) is made then.
    A power cut between the two writes sends that round's messages twice at most. Without a state file (the first
    start), a start after ``summary_time`` leaves the day's summary to tomorrow."""

    name = "birdd-notify-watch"

    def __init__(self, config: NotificationsConfig, station: str, alerts: Outbox,
                 stats: Callable[[], dict[str, Any]], store: sqlite3.Connection | None, disk_path: Path,
                 state_path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self._config = config
        self._station = station
        self._alerts = alerts
        self._stats = stats
        self._store = store
        self._disk_path = disk_path
        self._state_path = state_path
        self._clock = clock
        self._wake = threading.Event()
        now = clock()
        self._next_check = now + CHECK_S
        self._seen: dict[str, tuple[float, float]] = {}  # stat -> (value, time it last changed)
        state = self._load_state()
        self._alerting: set[str] = set(state.get("alerting", []))
        if "summary_done" in state:
            self._summary_done: str = state["summary_done"]
        else:  # the first start: one after the summary time waits for tomorrow
            today, clock_time = local_date_time(now)
            past = bool(config.summary_time) and minutes_of(clock_time[:5]) >= minutes_of(config.summary_time)
            self._summary_done = today if past else ""
        self._saved: dict[str, Any] | None = self._state() if state else None  # None: write at the first check
        self.sent = 0
        """alerts and summaries put into the alerts outbox (since start)"""

    def work(self, timeout: float) -> None:
        """Check when due; otherwise wait up to ``timeout``."""
        if self._clock() >= self._next_check:
            self._next_check = self._clock() + CHECK_S
            self.check()
        else:
            self._wake.wait(timeout)

    def drain(self, deadline: float) -> int:
        """Nothing is queued here (the alerts wait in their outbox): close the alerts outbox, whose delivery
        threads stopped before this task (they come after it in the start order)."""
        self._alerts.close()
        return 0

    def pending(self) -> int:
        """Nothing is queued here."""
        return 0

    def check(self) -> None:
        """One round: silence, audio, disk, the summary; each message into the alerts outbox, then the state."""
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
        self._save_state()
        self._alerts.retry_held()  # alerts held in memory while the file took no write

    def _state(self) -> dict[str, Any]:
        return {"alerting": sorted(self._alerting), "summary_done": self._summary_done}

    def _load_state(self) -> dict[str, Any]:
        try:
            state = json.loads(self._state_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("notifications: cannot read %s (%s): starting with no alert on", self._state_path, exc)
            return {}
        if not isinstance(state, dict) or not isinstance(state.get("alerting", []), list) or \
                not isinstance(state.get("summary_done", ""), str):
            log.warning("notifications: %s is not a watch state: starting with no alert on", self._state_path)
            return {}
        return state

    def _save_state(self) -> None:
        state = self._state()
        if state == self._saved:
            return
        try:
            with AtomicWriter(self._state_path) as out:
                out.write(json.dumps(state))
        except OSError as exc:  # the next round tries again; a restart meanwhile may repeat an alert
            log.warning("notifications: cannot write %s: %s", self._state_path, exc)
            return
        self._saved = state

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
        self._put(Message(f"birdd {self._station}: daily summary", body))

    def _queue(self, text: str) -> None:
        log.warning("notifications: %s", text)
        self._put(Message(f"birdd {self._station}: {text}", f"station {self._station}: {text}"))

    def _put(self, message: Message) -> None:
        self._alerts.put({"title": message.title, "body": message.body, "time": round(self._clock(), 3)})
        self.sent += 1
