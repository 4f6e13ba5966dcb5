"""The daemon's health in one place: the statistics published on ``<prefix>/status/stats`` and the gauges."""

from __future__ import annotations

import queue
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from daemon.audio.ring import RingBuffer
from daemon.audio.sources import AudioSource
from daemon.config import Config
from daemon.constants import SAMPLE_RATE
from daemon.pipeline.scoring import PipelineStats
from daemon.service.metrics import Metrics
from daemon.service.workers import PipelineWorker
from daemon.sinks.mqtt import MqttPublisher
from daemon.sinks.outbox import Outbox


class StatusReport:
    """Reads the components' counters; called by the MQTT thread (stats) and by metric scrapes."""

    def __init__(self, config: Config, ring: RingBuffer, source: AudioSource, stats: PipelineStats,
                 pipeline: PipelineWorker, sink_failures: Counter[str], results: queue.Queue) -> None:
        self._config = config
        self._ring = ring
        self._source = source
        self._stats = stats
        self._pipeline = pipeline
        self._sink_failures = sink_failures
        self._results = results
        self._started = time.monotonic()
        self._more: list[Callable[[], dict[str, Any]]] = []

    def extend(self, reports: list[Callable[[], dict[str, Any]]]) -> None:
        """Add statistics read from elsewhere (the sinks') to every report."""
        self._more.extend(reports)

    def __call__(self) -> dict[str, Any]:
        """Statistics for ``<prefix>/status/stats`` (the publisher adds its own and the outbox's)."""
        stats = self._stats
        source = self._source.status()
        station = self._config.station
        return {
            "uptime_s": round(time.monotonic() - self._started, 1),
            "windows": stats.windows, "detections": stats.detections,
            "windows_out_of_range": stats.windows_out_of_range,
            "audio_seconds": round(stats.samples / SAMPLE_RATE, 1),
            "audio_overruns": self.overruns(), "audio_lost_samples": self._ring.lost_samples,
            "audio_gaps": stats.gaps, "source_state": source.state, "source_detail": source.detail,
            "source_retries": source.retries, "source_stalls": source.stalls, "source_resyncs": source.resyncs,
            "real_time_factor": round(stats.real_time_factor, 5),
            "queue_depth": self._results.qsize(), "sink_failures": dict(self._sink_failures),
            "model": self._pipeline.model.identity,
            **{key: value for key, value in (("latitude", station.latitude), ("longitude", station.longitude))
               if value is not None},
            **{key: value for report in self._more for key, value in report().items()},
        }

    def overruns(self) -> int:
        """Ring and device overruns."""
        return self._ring.overruns + self._source.status().overruns

    def register(self, metrics: Metrics, outbox: Outbox, publisher: MqttPublisher | None) -> None:
        """The gauges read at every scrape."""
        metrics.observe("birdd_audio_overruns", "Ring and device overruns", self.overruns)
        metrics.observe("birdd_outbox_backlog", "Detections awaiting broker acknowledgement", outbox.backlog)
        metrics.observe("birdd_outbox_dropped", "Detections dropped at the outbox bounds", outbox.dropped)
        metrics.observe("birdd_mqtt_connected", "1 while connected to the broker",
                        lambda: float(bool(publisher and publisher.counters().connected)))
        metrics.observe("birdd_real_time_factor", "Processing seconds per audio second",
                        lambda: self._stats.real_time_factor)
