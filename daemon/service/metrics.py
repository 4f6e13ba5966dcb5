"""Prometheus metrics of the daemon (optional HTTP endpoint, off when ``metrics.port`` is 0)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from daemon.config import MetricsConfig
from daemon.errors import ConfigError

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 30.0, 300.0)


class Metrics:
    """The daemon's counters and histograms, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.windows = Counter("birdd_windows", "Windows scored", registry=self.registry)
        self.detections = Counter("birdd_detections", "Detections committed to the outbox", registry=self.registry)
        self.inference_seconds = Histogram("birdd_inference_seconds",
                                           "Reading a window's last samples to its detections committed",
                                           buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.1, 1.0),
                                           registry=self.registry)
        self.publish_latency = Histogram("birdd_publish_latency_seconds",
                                         "Window end (audio time) to broker acknowledgement of its detection",
                                         buckets=LATENCY_BUCKETS, registry=self.registry)
        self._gauges: list[Gauge] = []
        self._server = None

    def observe(self, name: str, doc: str, read: Callable[[], float]) -> None:
        """A gauge whose value is read from ``read()`` at every scrape (ring overruns, outbox backlog, ...)."""
        gauge = Gauge(name, doc, registry=self.registry)
        gauge.set_function(read)
        self._gauges.append(gauge)

    def serve(self, config: MetricsConfig) -> None:
        """Start the HTTP endpoint if a port is configured."""
        if not config.port:
            return
        try:
            self._server, _ = start_http_server(config.port, addr=config.bind, registry=self.registry)
        except OSError as exc:
            raise ConfigError(f"metrics.port: cannot listen on {config.bind}:{config.port} ({exc.strerror})") from None
        log.info("metrics on http://%s:%d/metrics", config.bind, config.port)

    def close(self) -> None:
        """Stop the HTTP endpoint."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
