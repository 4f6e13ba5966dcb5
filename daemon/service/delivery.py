"""Delivery threads: one per outbound target, moving its outbox rows to it in order (docs/integrations.md).

Each :class:`DeliveryWorker` takes the oldest row not done for its target, hands it to the target (a plain object
from :mod:`daemon.outbound`), and then acknowledges it (sent, or passed over), records a refusal (a 4xx: the row
is kept in the outbox's ``refused`` table, an event is published, the next row follows), or backs off (jittered,
capped) and tries the same row again. So every target sees every row at least once, in order, and a target that
is down or refuses everything holds back none of the others. MQTT keeps its own thread (several in flight).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from daemon.backoff import Backoff, UniformSource
from daemon.config import Config
from daemon.lifecycle import ManagedThread
from daemon.outbound import notify
from daemon.outbound.base import Refused, RetryLater, Target
from daemon.outbound.birdweather import BirdWeatherTarget
from daemon.outbound.rules import NotificationRules
from daemon.outbound.webhook import WebhookTarget
from daemon.service.background import BackgroundWorker
from daemon.service.metrics import Metrics
from daemon.sinks.outbox import DEFAULT_TARGET, Outbox
from daemon.store.schema import open_store
from daemon.write_faults import EventCallback, worth_logging

log = logging.getLogger(__name__)

RETRY_MIN_S = 1.0
"""first retry delay of every target (seconds); it doubles per failure up to the target's retry_max_s"""
IDLE_S = 0.2
"""how often an idle worker looks for new rows (seconds): the delivery latency of a new detection"""
COUNTERS = ("backlog", "delivered", "skipped", "refused", "dropped")


class DeliveryWorker(ManagedThread):
    """Moves one target's rows from the outbox to the target, oldest first, one at a time."""

    def __init__(self, target: Target, outbox: Outbox, retry_max_s: float, on_event: EventCallback | None = None,
                 *, rng: UniformSource | None = None, thread_name: str = "") -> None:
        super().__init__(thread_name or f"birdd-{target.name.replace(':', '-')}", self._run)
        self.target = target
        self._outbox = outbox
        self._on_event = on_event
        self._backoff = Backoff(min(RETRY_MIN_S, retry_max_s), retry_max_s, rng)
        self.retried = 0
        """sends that failed and were tried again (since start)"""
        self.last_error = ""
        """why the last send failed ("" once one succeeds)"""

    def _run(self) -> None:
        delay = 0.0
        while not self.stop_event.wait(delay):
            delay = self.step()

    def step(self) -> float:
        """Try the oldest row not done for the target; the delay before the next step (seconds)."""
        name = self.target.name
        rows = self._outbox.pending(1, target=name)
        if not rows:
            return IDLE_S
        seq, payload = rows[0]
        try:
            sent = self.target.send(payload)
        except Refused as exc:
            self._refused(seq, payload, str(exc))
            return 0.0
        except RetryLater as exc:
            return self._failed(str(exc))
        except Exception as exc:  # a fault of ours with this row: log it, keep the row, hold back no other target
            log.exception("%s: sending detection %s failed", name, payload.get("detection_id"))
            return self._failed(f"{type(exc).__name__}: {exc}")
        if self.stop_event.is_set():  # the outbox may be closing: the row is sent again after the restart
            return 0.0
        self._outbox.ack(seq, target=name, skipped=not sent)
        if self.last_error:
            log.info("%s: delivering again (after %s)", name, self.last_error)
            self._event("outbound_recovered", f"{name}: delivering again")
            self.last_error = ""
        self._backoff.reset()
        return 0.0

    def _failed(self, reason: str) -> float:
        self.retried += 1
        delay = self._backoff.next_delay()
        if reason != self.last_error:
            log.warning("%s: %s; retrying in %.1f s (and with back-off while it lasts)", self.target.name, reason,
                        delay)
            if not self.last_error:
                self._event("outbound_failing", f"{self.target.name}: {reason}")
        self.last_error = reason
        return delay

    def _refused(self, seq: int, payload: dict[str, Any], reason: str) -> None:
        self._outbox.refuse(seq, reason, target=self.target.name)
        refused = self._outbox.target_counters(self.target.name).refused
        if worth_logging(refused):
            message = (f"{self.target.name} refused detection {payload.get('detection_id')} for good ({reason}); "
                       f"kept in the outbox's refused table, {refused} refused so far")
            log.error("%s", message)
            self._event("outbound_refused", message)

    def _event(self, kind: str, message: str) -> None:
        if self._on_event is not None:
            self._on_event(kind, message)


def target_names(config: Config) -> list[str]:
    """The outbox targets of a configuration, in a fixed order (MQTT first)."""
    return ([DEFAULT_TARGET] if config.mqtt.enabled else []) + \
        (["birdweather"] if config.birdweather.enabled else []) + \
        [f"webhook:{hook.name}" for hook in config.webhooks] + \
        notification_names(config)


def notification_names(config: Config) -> list[str]:
    """One target per Apprise URL (in the detections' outbox and in the alerts')."""
    return [notify.target_name(url) for url in config.notifications.urls] if config.notifications.enabled else []


@dataclass
class Outbound:
    """The delivery threads of a configuration, and what they report."""

    outbox: Outbox
    workers: list[DeliveryWorker] = field(default_factory=list)
    background: list[BackgroundWorker] = field(default_factory=list)
    alerts: Outbox | None = None
    """the alerts' and summaries' outbox (notifications on), closed by the watch at stop"""
    alert_workers: list[DeliveryWorker] = field(default_factory=list)

    @property
    def components(self) -> list[ManagedThread]:
        """What the service starts and stops."""
        return [*self.background, *self.workers, *self.alert_workers]

    def status(self) -> dict[str, Any]:
        """``outbound``: per target its backlog and counts, ``retried`` and ``last_error`` (delivery threads); for a
        notification target the same of its alerts under ``alerts``."""
        report = _report(self.outbox, self.workers)
        if self.alerts is not None:
            for name, alerts in _report(self.alerts, self.alert_workers).items():
                report[name]["alerts"] = alerts
        return {"outbound": report}

    def register(self, metrics: Metrics) -> None:
        """Prometheus gauges labelled by target."""
        targets = self.outbox.targets()
        for key in COUNTERS:
            metrics.observe_labelled(f"birdd_outbound_{key}", f"Outbox rows {key} per outbound target", "target", {
                name: (lambda name=name, key=key: getattr(self.outbox.target_counters(name), key)) for name in targets})
        metrics.observe_labelled("birdd_outbound_retried", "Sends tried again per outbound target (since start)",
                                 "target", {w.target.name: (lambda w=w: w.retried) for w in self.workers})
        if self.alerts is not None:
            alerts = self.alerts
            metrics.observe_labelled("birdd_outbound_alerts_backlog", "Alerts and summaries not sent yet per Apprise "
                                     "URL", "target", {name: (lambda name=name: alerts.target_counters(name).backlog)
                                                       for name in alerts.targets()})


def _report(outbox: Outbox, workers: list[DeliveryWorker]) -> dict[str, dict[str, Any]]:
    report = {}
    for name in outbox.targets():
        counters = outbox.target_counters(name)
        report[name] = {key: getattr(counters, key) for key in COUNTERS}
    for worker in workers:
        report[worker.target.name].update(retried=worker.retried, last_error=worker.last_error)
    return report


def make_outbound(config: Config, outbox: Outbox, stats: Callable[[], dict[str, Any]],
                  on_event: EventCallback | None) -> Outbound:
    """The delivery threads of every enabled target but MQTT (its publisher is built by the service)."""
    built = Outbound(outbox)

    def add(target: Target, retry_max_s: float) -> None:
        built.workers.append(DeliveryWorker(target, outbox, retry_max_s, on_event))

    if config.birdweather.enabled:  # the config check made sure the store and clips are on
        add(BirdWeatherTarget(config.birdweather, config.clips, config.station,
                              open_store(config.store.path, read_only=True)), config.birdweather.retry_max_s)
    for index, hook in enumerate(config.webhooks):
        add(WebhookTarget(hook, index), hook.retry_max_s)
    notes = config.notifications
    if notes.enabled:
        notifiers = [notify.Notifier(url, index) for index, url in enumerate(notes.urls)]  # a bad URL: before any file
        names = notification_names(config)
        alerts = built.alerts = Outbox(replace(config.outbox, path=str(notify.alerts_path(config.outbox))),
                                       targets=names)  # the same bounds as the detections' outbox
        store = open_store(config.store.path, read_only=True) if config.store.enabled else None
        disk = Path(config.store.path if config.store.enabled else config.outbox.path).parent
        built.background.append(BackgroundWorker(notify.NotificationWatch(  # before its delivery threads: stopped after
            notes, config.station.name, alerts, stats, store, disk, notify.watch_state_path(config.outbox))))
        for name, notifier in zip(names, notifiers, strict=True):
            history = open_store(config.store.path, read_only=True) if config.store.enabled else None
            add(notify.NotificationTarget(name, NotificationRules(notes, config.station.name, history), notifier),
                notes.retry_max_s)
            built.alert_workers.append(DeliveryWorker(notify.AlertTarget(name, notifier), alerts, notes.retry_max_s,
                                                      on_event, thread_name=f"birdd-alerts-{name.split(':')[1]}"))
    return built
