"""The daemon's health in one place: the statistics published on ``<prefix>/status/stats`` and the gauges."""

from __future__ import annotations

import queue
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from daemon.config import Config
from daemon.constants import SAMPLE_RATE
from daemon.filters.stats import FilterStats
from daemon.service.metrics import Metrics
from daemon.service.source_pipeline import SourcePipeline
from daemon.sinks.mqtt import MqttPublisher
from daemon.sinks.outbox import Outbox


class StatusReport:
    """Reads the components' counters; called by the MQTT thread (stats) and by metric scrapes."""

    def __init__(self, config: Config, pipelines: list[SourcePipeline], sink_failures: Counter[str],
                 results: queue.Queue, filter_stats: FilterStats | None = None) -> None:
        self._config = config
        self._pipelines = pipelines
        self._sink_failures = sink_failures
        self._results = results
        self._filter_stats = filter_stats or FilterStats()
        self._started = time.monotonic()
        self._more: list[Callable[[], dict[str, Any]]] = []

    def extend(self, reports: list[Callable[[], dict[str, Any]]]) -> None:
        """Add statistics read from elsewhere (the sinks') to every report."""
        self._more.extend(reports)

    def __call__(self) -> dict[str, Any]:
        """Statistics for ``<prefix>/status/stats`` (the publisher adds its own and the outbox's): totals over the
        sources (the first source's state and input), then each source's health under ``sources``."""
        pipelines = self._pipelines
        health = {p.name: p.health() for p in pipelines}  # once per message: each source's status snapshot
        first = health[pipelines[0].name]
        station = self._config.station
        return {
            "uptime_s": round(time.monotonic() - self._started, 1),
            "windows": self._total("windows"), "detections": self._total("detections"),
            "windows_out_of_range": self._total("windows_out_of_range"),
            "audio_seconds": round(self._total("samples") / SAMPLE_RATE, 1),
            "audio_overruns": sum(h["overruns"] for h in health.values()),
            "audio_lost_samples": sum(p.ring.lost_samples for p in pipelines),
            "audio_gaps": self._total("gaps"), "source_state": first["state"], "source_detail": first["input"],
            **{f"source_{key}": sum(h[field] for h in health.values())
               for key, field in (("retries", "device_retries"), ("stalls", "stalls"), ("resyncs", "resyncs"))},
            "real_time_factor": round(self.real_time_factor(), 5),
            "queue_depth": self._results.qsize(), "sink_failures": dict(self._sink_failures),
            "model": pipelines[0].worker.model.identity,
            "filters": {key: round(value, 1) if isinstance(value, float) else value
                        for key, value in asdict(self._filter_stats).items()},
            **{key: value for key, value in (("latitude", station.latitude), ("longitude", station.longitude))
               if value is not None},
            **{key: value for report in self._more for key, value in report().items()},
            "sources": health,
        }

    def _total(self, counter: str) -> int:
        return sum(getattr(p.stats, counter) for p in self._pipelines)

    def overruns(self) -> int:
        """Ring and device overruns, over every source."""
        return sum(p.health()["overruns"] for p in self._pipelines)

    def real_time_factor(self) -> float:
        """Processing seconds per audio second, over every source (the per-source factors add up)."""
        return sum(p.stats.real_time_factor for p in self._pipelines)

    def register(self, metrics: Metrics, outbox: Outbox, publisher: MqttPublisher | None) -> None:
        """The gauges read at every scrape."""
        metrics.observe("birdd_audio_overruns", "Ring and device overruns", self.overruns)
        metrics.observe("birdd_outbox_backlog", "Detections in the outbox, not yet done for every target",
                        outbox.backlog)
        metrics.observe("birdd_outbox_dropped", "Detections dropped at the outbox bounds", outbox.dropped)
        metrics.observe("birdd_mqtt_connected", "1 while connected to the broker",
                        lambda: float(bool(publisher and publisher.counters().connected)))
        metrics.observe("birdd_real_time_factor", "Processing seconds per audio second", self.real_time_factor)
        metrics.observe("birdd_sources_failed", "Sources dead and waiting for their restart",
                        lambda: float(sum(p.failed for p in self._pipelines)))
        for key in asdict(self._filter_stats):
            metrics.observe(f"birdd_filter_{key}", f"Filters: {key.replace('_', ' ')} (docs/filters.md)",
                            lambda key=key: float(getattr(self._filter_stats, key)))
