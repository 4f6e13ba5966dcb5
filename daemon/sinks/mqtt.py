"""MQTT publishing: detections from the outbox (at-least-once, in order), windows, status, HA discovery.

One thread owns the paho client: it connects (with jittered, capped back-off), drives ``loop()``,
moves detections from the :class:`~daemon.outbox.Outbox` to the broker with at most
``MAX_INFLIGHT`` unacknowledged (the file's rows, then those the outbox holds in memory while its file
takes no write), acks the outbox on PUBACK, and publishes status. Other threads
only hand it work (``publish_window``, ``publish_event``, ``wake`` after an outbox commit) or read counters;
none of them blocks. The thread waits for the broker's socket and for a wake-up pipe together, so a
committed detection is published at once rather than at the end of the current network wait.

Topics under the prefix (``Config.topic_prefix``):

- ``<prefix>/detections``: one JSON detection (:meth:`Detection.to_payload`) per message, QoS from config;
- ``<prefix>/windows``: top-k scores per window, QoS 0, only while connected (not durable);
- ``<prefix>/status``: ``online`` / ``offline``, retained, also the last will;
- ``<prefix>/status/stats``: periodic JSON statistics, retained;
- ``<prefix>/status/events``: JSON events and errors (``publish_event``), QoS 1;
- ``<prefix>/soundlevel``: sound-level reports (``publish_sound_level``), QoS 0, not retained, only while connected.

The statistics and events have their own sub-topics so that ``<prefix>/status`` carries only the two
availability payloads Home Assistant matches against.

paho's own reconnect (``reconnect_delay_set``) doubles the delay without jitter, so this module
runs its own loop with :class:`~daemon.backoff.Backoff` instead of ``loop_start``.

The protocol is MQTT 5: a broker whose ACL denies a topic acknowledges a QoS 1 publish with a
failure reason code (MQTT 3.1.1 has no way to say no, and mosquitto acknowledges and drops it). A
refused detection stays in the outbox; the publisher logs why and starts a fresh session after the
back-off, beginning again at the refused detection. That, and every failed connection (refused, TLS
certificate not trusted, expired or for another host), logs one line and queues an ``mqtt_error``
event (once while an event with the same reason waits), published when a connection succeeds.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import select
import socket
import ssl
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt

from daemon import __version__
from daemon.backoff import Backoff, UniformSource
from daemon.config import Config, MqttConfig
from daemon.errors import ConfigError
from daemon.lifecycle import ManagedThread
from daemon.passwords import read_password as read_secret
from daemon.pipeline.detection import StreamClock, iso_utc
from daemon.pipeline.scoring import WindowResult
from daemon.sinks.outbox import Outbox

log = logging.getLogger(__name__)

MAX_INFLIGHT = 16
"""detections published but not yet acknowledged by the broker, at most"""
_CONTROL_INFLIGHT = 8  # room in paho's in-flight window for status, discovery and event messages
_LOOP_TIMEOUT_S = 0.05  # network wait per loop turn when nothing wakes the thread: bounds the latency of stop()
_EVENTS_KEPT = 32  # events kept while disconnected (oldest dropped)
_WINDOWS_QUEUED = 64
_STOP_MARGIN_S = 0.5  # part of stop()'s budget kept for closing the socket and joining
_STABLE_CONNECTION_S = 30.0  # a connection lost after this long starts the back-off afresh; a shorter one
# (a broker that accepts then drops us, two daemons sharing a client id) keeps growing it: no storm
ONLINE = "online"
OFFLINE = "offline"


@dataclass(frozen=True)
class Topics:
    """The topics of one station."""

    detections: str
    windows: str
    status: str
    stats: str
    events: str
    soundlevel: str

    @classmethod
    def for_prefix(cls, prefix: str) -> Topics:
        """Topics under ``prefix`` (e.g. ``birdd/garden``)."""
        return cls(f"{prefix}/detections", f"{prefix}/windows", f"{prefix}/status",
                   f"{prefix}/status/stats", f"{prefix}/status/events",
                   f"{prefix}/soundlevel")


@dataclass(frozen=True)
class PublisherCounters:
    """A snapshot of the publisher's state, for status messages and metrics."""

    connected: bool
    reconnects: int
    """connections re-established after a loss"""
    published: int
    """detections acknowledged by the broker"""
    last_error: str
    """the last connection error ("" if none yet)"""
    inflight: int
    """detections sent and awaiting the broker's acknowledgement"""


def read_password(mqtt_config: MqttConfig, environ: Mapping[str, str] = os.environ) -> str | None:
    """The broker password: from ``password_file`` if set, else from the ``password_env`` variable."""
    return read_secret(mqtt_config.password_file, mqtt_config.password_env, "mqtt", environ)


def ha_discovery_messages(config: Config) -> list[tuple[str, dict[str, Any]]]:
    """Home Assistant discovery ``(topic, config)`` pairs: last species, its confidence, connectivity; with
    ``[[audio.sources]]``, also each source's last species (the detections whose ``source_name`` is that source)."""
    topics = Topics.for_prefix(config.topic_prefix)
    uid = "birdd_" + re.sub(r"[^A-Za-z0-9_-]", "_", config.station.name)
    base = config.mqtt.ha_prefix
    device = {"identifiers": [uid], "name": f"birdd {config.station.name}", "manufacturer": "birdd",
              "model": "birdd detector", "sw_version": __version__}
    availability = {"availability_topic": topics.status, "payload_available": ONLINE,
                    "payload_not_available": OFFLINE}
    per_source = [
        (f"{base}/sensor/{uid}/{source.name}_last_species/config", {
            "name": f"Last species ({source.name})", "unique_id": f"{uid}_{source.name}_last_species",
            "icon": "mdi:bird", "state_topic": topics.detections,
            # other sources' detections leave the state as it was
            "value_template": f"{{{{ value_json.common_name if value_json.source_name == '{source.name}' "
                              "else this.state }}",
            "device": device, **availability})
        for source in config.audio.sources]
    return [
        (f"{base}/sensor/{uid}/last_species/config", {
            "name": "Last species", "unique_id": f"{uid}_last_species", "icon": "mdi:bird",
            "state_topic": topics.detections, "value_template": "{{ value_json.common_name }}",
            "json_attributes_topic": topics.detections, "device": device, **availability}),
        (f"{base}/sensor/{uid}/last_confidence/config", {
            "name": "Last confidence", "unique_id": f"{uid}_last_confidence", "icon": "mdi:percent",
            "state_topic": topics.detections, "value_template": "{{ (value_json.confidence * 100) | round(1) }}",
            "unit_of_measurement": "%", "state_class": "measurement", "device": device, **availability}),
        (f"{base}/binary_sensor/{uid}/connectivity/config", {
            "name": "Connectivity", "unique_id": f"{uid}_connectivity", "device_class": "connectivity",
            "entity_category": "diagnostic", "state_topic": topics.status, "payload_on": ONLINE,
            "payload_off": OFFLINE, "device": device}),
        *per_source,
    ]


def _dumps(payload: Mapping[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


class MqttPublisher(ManagedThread):
    """Publishes the outbox and the daemon's status to one broker, on a thread of its own (a component).

    ``stats`` returns the daemon's statistics (uptime, windows, detections, overruns, real-time
    factor, queue depths); the publisher adds its own counters and the outbox backlog. Raises
    :class:`ConfigError` at construction for an unreadable password file or TLS file.
    """

    def __init__(self, config: Config, outbox: Outbox, stats: Callable[[], dict[str, Any]] = dict, *,
                 rng: UniformSource | None = None, on_acked: Callable[[dict[str, Any]], None] | None = None) -> None:
        self._mqtt = config.mqtt
        self._station = config.station.name
        self._topics = Topics.for_prefix(config.topic_prefix)
        self._discovery = ha_discovery_messages(config) if config.mqtt.ha_discovery else []
        self._outbox = outbox
        self._stats = stats
        self._on_acked = on_acked
        self._backoff = Backoff(config.mqtt.reconnect_min_s, config.mqtt.reconnect_max_s, rng)
        self._client_id = config.mqtt.client_id or f"birdd-{self._station}"
        self._client = self._make_client()
        super().__init__("birdd-mqtt", self._run)
        self._stop = self.stop_event
        self._stop_deadline = 0.0
        self._windows: deque[dict[str, Any]] = deque(maxlen=_WINDOWS_QUEUED)
        self._events: deque[dict[str, Any]] = deque(maxlen=_EVENTS_KEPT)
        self._sound_levels: deque[dict[str, Any]] = deque(maxlen=_WINDOWS_QUEUED)
        self._wake_r, self._wake_w = socket.socketpair()
        for end in (self._wake_r, self._wake_w):
            end.setblocking(False)
        # Owned by the MQTT thread:
        self._inflight: dict[int, tuple[int, dict[str, Any]]] = {}  # paho mid -> (outbox seq, payload)
        self._last_sent_seq = 0
        self._just_connected = False
        self._ever_connected = False
        self._connected_since: float | None = None
        self._failure = ""
        self._refused_seq: int | None = None  # the first detection the broker refused in this session
        self._control_refusal_logged = False
        self._next_stats_at = 0.0
        # Read by other threads (single assignments):
        self._connected = False
        self._reconnects = 0
        self._published = 0
        self._last_error = ""

    def _make_client(self) -> mqtt.Client:
        cfg = self._mqtt
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self._client_id, protocol=mqtt.MQTTv5)
        client.max_inflight_messages = MAX_INFLIGHT + _CONTROL_INFLIGHT
        client.will_set(self._topics.status, OFFLINE, qos=1, retain=True)
        if cfg.username:
            client.username_pw_set(cfg.username, read_password(cfg))
        elif cfg.password_file:
            log.warning("mqtt.password_file is set but mqtt.username is empty: connecting anonymously")
        if cfg.tls:
            for key in ("ca_file", "cert_file", "key_file"):
                path = getattr(cfg, key)
                if path and not os.access(path, os.R_OK):
                    raise ConfigError(f"mqtt.{key}: cannot read {path}")
            if cfg.key_file and not cfg.cert_file:
                raise ConfigError("mqtt.key_file: needs mqtt.cert_file")
            try:
                client.tls_set(ca_certs=cfg.ca_file or None, certfile=cfg.cert_file or None,
                               keyfile=cfg.key_file or None)
            except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
                raise ConfigError(f"mqtt.tls: cannot load ca_file/cert_file/key_file: {exc}") from None
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        return client

    # --- lifecycle and API for other threads ---------------------------------------------------

    def start(self) -> None:
        """Start the MQTT thread; it connects in the background and retries until stopped."""
        self._client.connect_async(self._mqtt.host, self._mqtt.port, self._mqtt.keepalive_s)
        super().start()

    def stop(self, timeout: float = 5.0) -> None:
        """Publish ``offline``, wait for in-flight acks within ``timeout`` seconds, disconnect, join."""
        self._stop_deadline = time.monotonic() + timeout
        super().stop(timeout)

    def wake(self) -> None:
        """New work for the MQTT thread (a detection committed to the outbox): end its network wait now."""
        with contextlib.suppress(OSError):  # the pipe is full (a wake-up is pending anyway) or closed at exit
            self._wake_w.send(b"\0")

    def publish_window(self, payload: dict[str, Any]) -> None:
        """Queue a window's top-k scores for ``<prefix>/windows`` (dropped unless enabled and connected)."""
        if self._mqtt.publish_windows and self._connected:
            self._windows.append(payload)
            self.wake()

    def publish_sound_level(self, payload: dict[str, Any]) -> None:
        """Queue a sound-level report for ``<prefix>/soundlevel`` (dropped while disconnected)."""
        if self._connected:
            self._sound_levels.append(payload)
            self.wake()

    def publish_event(self, kind: str, message: str) -> None:
        """Queue an event (e.g. ``model_reload_failed``) for ``<prefix>/status/events``; kept while offline."""
        self._events.append({"station": self._station, "time": iso_utc(time.time()), "kind": kind,
                             "message": message})
        self.wake()

    def counters(self) -> PublisherCounters:
        """A snapshot of connected, reconnects, published, last_error and inflight."""
        return PublisherCounters(self._connected, self._reconnects, self._published, self._last_error,
                                 len(self._inflight))

    # --- paho callbacks (run on the MQTT thread, inside loop()) ---------------------------------

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: mqtt.ConnectFlags,
                    reason_code: mqtt.ReasonCode, properties: Any) -> None:
        if reason_code.is_failure:
            self._failure = f"broker refused the connection: {reason_code}"
        else:
            self._connected = True
            self._just_connected = True

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: mqtt.DisconnectFlags,
                       reason_code: mqtt.ReasonCode, properties: Any) -> None:
        self._connected = False

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason_code: mqtt.ReasonCode,
                    properties: Any) -> None:
        sent = self._inflight.pop(mid, None)  # None: a status, discovery or event message
        if not reason_code.is_failure:
            if sent is not None:
                self._acked(*sent)
        elif sent is None:
            if not self._control_refusal_logged:
                self._control_refusal_logged = True
                log.warning("MQTT broker refused a status, event or discovery message: %s (does its ACL allow "
                               "%s/# and %s/#?)", reason_code, self._topics.status.rsplit("/", 1)[0],
                               self._mqtt.ha_prefix)
        elif self._refused_seq is None or sent[0] < self._refused_seq:
            self._refused_seq = sent[0]
            self._failure = (f"broker refused detection {sent[0]} on {self._topics.detections}: {reason_code} "
                             f"(kept in the outbox; does the broker's ACL allow this topic?)")

    def _acked(self, seq: int, payload: dict[str, Any]) -> None:
        self._outbox.ack(seq)
        self._published += 1
        if self._on_acked is not None:
            self._on_acked(payload)

    # --- the MQTT thread -----------------------------------------------------------------------

    def _run(self) -> None:
        socket_open = False
        while not self._stop.is_set():
            if not socket_open:
                try:
                    self._client.reconnect()
                    socket_open = True
                except ssl.SSLCertVerificationError as exc:
                    self._retry_later(f"TLS: the broker's certificate is refused: {exc.verify_message} (checked "
                                      f"against {self._mqtt.ca_file or 'the system CAs'} for host {self._mqtt.host})")
                except OSError as exc:
                    self._retry_later(f"cannot connect: {exc}")
                continue
            self._wait_for_work(_LOOP_TIMEOUT_S)
            rc = self._client.loop(timeout=0.0)
            if rc == mqtt.MQTT_ERR_SUCCESS and self._refused_seq is not None:
                self._new_session()
                rc = mqtt.MQTT_ERR_NO_CONN
            if rc != mqtt.MQTT_ERR_SUCCESS:
                socket_open = False
                self._end_connection()
                self._retry_later(self._failure or f"connection lost: {mqtt.error_string(rc).rstrip('.')}")
                continue
            if self._connected:
                self._serve()
        self._shutdown()

    def _wait_for_work(self, timeout: float) -> None:
        """Wait up to ``timeout`` s for the broker's socket (readable, or writable while paho has output) or for
        :meth:`wake`; ``loop()`` then does the reading and writing without waiting."""
        sock = self._client.socket()
        if sock is None or (isinstance(sock, ssl.SSLSocket) and sock.pending()):  # TLS bytes already read
            return
        try:
            ready, _, _ = select.select([sock, self._wake_r], [sock] if self._client.want_write() else [], [],
                                        timeout)
        except (OSError, ValueError, TypeError):  # the socket closed meanwhile: loop() reports the connection lost
            return
        if self._wake_r in ready:
            with contextlib.suppress(OSError):
                self._wake_r.recv(4096)

    def _end_connection(self) -> None:
        """Only a connection that lasted _STABLE_CONNECTION_S starts the back-off afresh."""
        if self._connected_since is not None and time.monotonic() - self._connected_since >= _STABLE_CONNECTION_S:
            self._backoff.reset()
        self._connected_since = None

    def _new_session(self) -> None:
        """After a refused detection: drop the connection and paho's queue; publish again from the refused row."""
        self._last_sent_seq = min([self._refused_seq, *(seq for seq, _ in self._inflight.values())]) - 1
        self._inflight.clear()
        self._refused_seq = None
        self._client.disconnect()
        self._connected = False
        self._client = self._make_client()
        self._client.connect_async(self._mqtt.host, self._mqtt.port, self._mqtt.keepalive_s)

    def _retry_later(self, reason: str) -> None:
        self._failure = ""
        if not any(event["message"] == reason for event in list(self._events)):  # once while it waits
            self.publish_event("mqtt_error", reason)
        self._last_error = reason
        delay = self._backoff.next_delay()
        log.warning("MQTT %s:%d: %s; retrying in %.2f s", self._mqtt.host, self._mqtt.port, reason, delay)
        self._stop.wait(delay)

    def _serve(self) -> None:
        """One turn of work while connected: greet after a connect, then events, windows, detections, stats."""
        if self._just_connected:
            self._greet()
        while self._events:
            self._client.publish(self._topics.events, _dumps(self._events.popleft()), qos=1)
        while self._windows:
            self._client.publish(self._topics.windows, _dumps(self._windows.popleft()), qos=0)
        while self._sound_levels:
            self._client.publish(self._topics.soundlevel, _dumps(self._sound_levels.popleft()), qos=0)
        self._publish_detections()
        if time.monotonic() >= self._next_stats_at:
            self._publish_stats()

    def _greet(self) -> None:
        self._just_connected = False
        if self._ever_connected:
            self._reconnects += 1
        self._ever_connected = True
        self._connected_since = time.monotonic()
        log.info("MQTT connected to %s:%d (%d detection(s) waiting in the outbox)",
                    self._mqtt.host, self._mqtt.port, self._outbox.backlog())
        self._client.publish(self._topics.status, ONLINE, qos=1, retain=True)
        for topic, config in self._discovery:
            self._client.publish(topic, _dumps(config), qos=1, retain=True)
        self._next_stats_at = 0.0

    def _publish_detections(self) -> None:
        """Publish the next outbox rows in seq order while fewer than MAX_INFLIGHT await a PUBACK.

        Rows in flight when the connection drops stay in paho's session and are re-sent first
        after the reconnect, so the order holds across outages.
        """
        free = MAX_INFLIGHT - len(self._inflight)
        if free <= 0 or self._outbox.last_seq <= self._last_sent_seq:
            return
        qos = self._mqtt.qos
        for seq, payload in self._outbox.pending(free, after=self._last_sent_seq):
            info = self._client.publish(self._topics.detections, _dumps(payload), qos=qos)
            if qos > 0:  # paho keeps it and re-sends it after a reconnect until the PUBACK/PUBCOMP
                self._inflight[info.mid] = (seq, payload)
            elif info.rc == mqtt.MQTT_ERR_SUCCESS:  # QoS 0: handed to the socket is all there is
                self._acked(seq, payload)
            else:  # QoS 0 and the connection just went: try this row again after the reconnect
                return
            self._last_sent_seq = seq

    def _publish_stats(self) -> None:
        self._next_stats_at = time.monotonic() + self._mqtt.status_interval_s
        try:
            stats = dict(self._stats())
        except Exception:
            log.exception("status statistics callable failed")
            stats = {}
        held, held_dropped = self._outbox.held()
        stats.update(station=self._station, time=iso_utc(time.time()), outbox_backlog=self._outbox.backlog(),
                     outbox_dropped=self._outbox.dropped(), outbox_held=held, outbox_held_dropped=held_dropped,
                     outbox_error=self._outbox.write_error, mqtt_reconnects=self._reconnects,
                     mqtt_published=self._published, mqtt_inflight=len(self._inflight),
                     mqtt_last_error=self._last_error)
        self._client.publish(self._topics.stats, _dumps(stats), qos=0, retain=True)

    def _shutdown(self) -> None:
        """Say ``offline`` (a clean disconnect suppresses the last will), let in-flight acks land, disconnect."""
        if self._connected:
            offline = self._client.publish(self._topics.status, OFFLINE, qos=1, retain=True)
            deadline = self._stop_deadline - _STOP_MARGIN_S
            while self._connected and time.monotonic() < deadline and (self._inflight or not offline.is_published()):
                if self._client.loop(timeout=0.05) != mqtt.MQTT_ERR_SUCCESS:
                    break
            if self._inflight:
                log.info("MQTT stop: %d detection(s) unacknowledged, kept in the outbox", len(self._inflight))
        self._client.disconnect()
        self._connected = False
        self._wake_r.close()
        self._wake_w.close()
        log.info("MQTT disconnected from %s:%d", self._mqtt.host, self._mqtt.port)


class WindowTopicSink:
    """Every window's top-k species and scores to ``<prefix>/windows`` (QoS 0, only while connected)."""

    def __init__(self, publisher: MqttPublisher, config: Config, clock: StreamClock) -> None:
        self._publisher = publisher
        self._station = config.station.name
        self._top_k = config.mqtt.windows_top_k
        self._clock = clock

    def put_window(self, result: WindowResult) -> None:
        """Queue the window's top-k for the MQTT thread."""
        top = np.argsort(-result.scores)[: self._top_k]
        self._publisher.publish_window({
            "station": self._station, "source": result.source, "source_name": result.source_name,
            "start": iso_utc(self._clock.at(result.start_sample)),
            "end": iso_utc(self._clock.at(result.end_sample)),
            "top": [{"species_code": result.species[j].code, "confidence": round(float(result.scores[j]), 4)}
                    for j in top]})
