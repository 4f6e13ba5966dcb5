"""Prometheus metrics of the daemon: the registry, its HTTP endpoint (a component), and a window sink."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from daemon.config import MetricsConfig
from daemon.errors import ServiceError
from daemon.pipeline.scoring import WindowResult

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 30.0, 300.0)


class Metrics:
    """The daemon's counters and histograms, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.windows = Counter("birdd_windows", "Windows scored", registry=self.registry)
        self.detections = Counter("birdd_detections", "Detections handed to the sinks", registry=self.registry)
        self.inference_seconds = Histogram("birdd_inference_seconds",
                                           "Reading a window's last samples to its result reaching the sinks",
                                           buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.1, 1.0),
                                           registry=self.registry)
        self.publish_latency = Histogram("birdd_publish_latency_seconds",
                                         "Window end (audio time) to broker acknowledgement of its detection",
                                         buckets=LATENCY_BUCKETS, registry=self.registry)
        self.sound_laeq = Gauge("birdd_sound_level_laeq_db", "A-weighted equivalent level of the last sound-level "
                                "interval (dB)", ["source"], registry=self.registry)
        self.sound_band = Gauge("birdd_sound_level_band_db", "Energy-mean level of a 1/3-octave band over the last "
                                "sound-level interval (dB)", ["source", "band"], registry=self.registry)

    def set_sound_level(self, payload: dict[str, Any]) -> None:
        """Set the sound-level gauges from one report (:func:`daemon.sinks.sound_level.sound_level_payload`)."""
        source = payload["source"]
        self.sound_laeq.labels(source).set(payload["laeq_db"])
        for band, values in payload["octave_bands"].items():
            self.sound_band.labels(source, band).set(values["mean_db"])

    def observe(self, name: str, doc: str, read: Callable[[], float]) -> None:
        """A gauge whose value is read from ``read()`` at every scrape (ring overruns, outbox backlog, ...)."""
        Gauge(name, doc, registry=self.registry).set_function(read)

    def observe_labelled(self, name: str, doc: str, label: str, reads: dict[str, Callable[[], float]]) -> None:
        """A gauge with one label; each label value's sample is read from its callable at every scrape."""
        gauge = Gauge(name, doc, [label], registry=self.registry)
        for value, read in reads.items():
            gauge.labels(value).set_function(read)


class MetricsSink:
    """Window sink: counts windows and detections, observes read-to-sink latency."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def put_window(self, result: WindowResult) -> None:
        """Count one window and its detections."""
        self._metrics.windows.inc()
        self._metrics.detections.inc(len(result.detections))
        self._metrics.inference_seconds.observe(time.monotonic() - result.read_at)


class PublishLatency:
    """Observes window end (audio clock) to broker acknowledgement; meaningful only when audio is live."""

    def __init__(self, metrics: Metrics, live: bool) -> None:
        self._metrics = metrics
        self._live = live

    def __call__(self, payload: dict[str, Any]) -> None:
        """The broker has acknowledged ``payload`` (called on the MQTT thread)."""
        if self._live:
            end = datetime.fromisoformat(payload["end"].replace("Z", "+00:00")).timestamp()
            self._metrics.publish_latency.observe(max(0.0, time.time() - end))


class MetricsServer:
    """The ``/metrics`` HTTP endpoint as a component (prometheus_client serves it on its own thread)."""

    name = "metrics"

    def __init__(self, config: MetricsConfig, metrics: Metrics) -> None:
        self._config = config
        self._registry = metrics.registry
        self._server = None
        self.error: BaseException | None = None

    def start(self) -> None:
        """Listen, if a port is configured; a port already taken is a runtime fault (exit 1, restarted)."""
        if not self._config.port:
            return
        try:
            self._server, _ = start_http_server(self._config.port, addr=self._config.bind, registry=self._registry)
        except OSError as exc:
            raise ServiceError(f"metrics.port: cannot listen on {self._config.bind}:{self._config.port} "
                               f"({exc.strerror})") from None
        log.info("metrics on http://%s:%d/metrics", self._config.bind, self._config.port)

    def stop(self, timeout: float = 1.0) -> None:
        """Stop the endpoint."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def is_alive(self) -> bool:
        """True while serving (or when off: there is nothing to fail)."""
        return True
