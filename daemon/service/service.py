"""``birdd run``: the service that wires source -> ring -> workers -> outbox -> MQTT, and its lifecycle.

Start order: model, outbox, publisher, metrics, workers, source; stop order is the reverse,
each with a time budget: the source stops, the workers drain what was heard (the current window
is flushed), the publisher says ``offline`` and lets in-flight acks land, the outbox closes last.
Signals are only flags here; the main loop acts on them: SIGTERM/SIGINT stop, SIGHUP reloads the
model (verified first: a bad bundle leaves the old model running, and the error is logged and
published). A worker that dies makes the service exit non-zero so systemd restarts it: nothing dies
quietly.
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
import time
from datetime import datetime
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from daemon.audio.files import SAMPLE_RATE
from daemon.audio.ring import RingBuffer
from daemon.audio.sources import make_source
from daemon.config import Config
from daemon.model.loader import Model, load_model
from daemon.model.windows import WindowGrid, WindowVector
from daemon.pipeline.detection import Detection, iso_utc, make_detection_id
from daemon.pipeline.policy import DetectionPolicy
from daemon.service import sdnotify
from daemon.service.metrics import Metrics
from daemon.service.workers import QUEUE_MESSAGES, ClassifierWorker, PipelineStats, Segment, TokenizerWorker
from daemon.sinks.mqtt import MqttPublisher
from daemon.sinks.outbox import Outbox

log = logging.getLogger(__name__)

STOP_BUDGET_S = 4.0
"""the whole shutdown, well inside systemd's and the issue's 5 s"""
TICK_S = 0.5
"""main-loop period: signal handling, health checks, watchdog pings"""
STALL_S = 30.0
"""a tokenizer that has not read the ring for this long is reported dead (no watchdog ping)"""


class Service:
    """The running daemon. ``run()`` blocks until SIGTERM/SIGINT (or the input ends) and returns an exit code."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._started = time.monotonic()
        self._stream_epoch = 0.0
        self._live = config.audio.source == "mic" or config.audio.realtime
        """audio time follows the wall clock, so window-end-to-publish latency means something"""
        self.stats = PipelineStats()
        self.metrics = Metrics()
        self.model = load_model(config.model.path, config.model.threads)
        self._policy = DetectionPolicy(config.detection, self.model.species)
        self.grid = WindowGrid.with_hop_seconds(config.detection.window_hop_s, min_first=WindowGrid.min_tail)
        self.outbox = Outbox(config.outbox)
        self.publisher = (MqttPublisher(config, self.outbox, self.status, on_acked=self._on_acked)
                          if config.mqtt.enabled else None)
        self.ring = RingBuffer(int(config.audio.ring_seconds * SAMPLE_RATE))
        self.source = make_source(config.audio, self.ring)
        self._queue: queue.Queue = queue.Queue(QUEUE_MESSAGES)
        self.tokenizer = TokenizerWorker(self.ring, self.source, self.model, self._queue, self.stats)
        self.classifier = ClassifierWorker(self.model, self.grid, self._queue, self._on_window, self.stats,
                                           self._on_model)
        self._register_metrics()

    # --- lifecycle ----------------------------------------------------------------------------

    def run(self) -> int:
        """Start everything, serve until told to stop, stop everything; 0 on a clean stop."""
        with threadpool_limits(self.config.model.threads):
            self._install_signals()
            try:
                self.start()
                code = self._serve()
            finally:
                self.stop()
        failed = [t.name for t in (self.source, self.tokenizer, self.classifier) if t.error is not None]
        if failed:
            log.critical("exiting with an error: %s failed", ", ".join(failed))
            return 1
        return code

    def start(self) -> None:
        """Start in dependency order; the source last, so nothing it hears is dropped."""
        if self.publisher:
            self.publisher.start()
        self.metrics.serve(self.config.metrics)
        self.classifier.start()
        self.tokenizer.start()
        self._stream_epoch = time.time()
        self.source.start()
        log.info("birdd running: station %s, model %s (%s), source %s", self.config.station.name,
                 self.model.identity["name"], self.model.digest, self.config.audio.source)
        sdnotify.notify("READY=1", f"STATUS=listening ({self.config.audio.source})")

    def stop(self) -> None:
        """Stop in reverse order within :data:`STOP_BUDGET_S`; the outbox closes last."""
        deadline = time.monotonic() + STOP_BUDGET_S
        sdnotify.notify("STOPPING=1")
        self.source.stop(timeout=_left(deadline, 0.5))
        drained = all([worker.join(_left(deadline, 1.5)) for worker in (self.tokenizer, self.classifier)])
        if self.publisher:
            self.publisher.stop(timeout=_left(deadline, 1.5))
        self.metrics.close()
        log.info("birdd stopped: %.1f s of audio, %d windows, %d detections, %d awaiting the broker in the outbox",
                 self.stats.samples / SAMPLE_RATE, self.stats.windows, self.stats.detections, self.outbox.backlog())
        if drained:
            self.outbox.close()
        else:  # a worker may still commit a detection: leave the connection open (every put is already durable)
            log.warning("workers still draining at exit: the outbox is left open")

    def request_stop(self) -> None:
        """Ask the main loop to stop (what SIGTERM does)."""
        self._stop.set()

    def request_reload(self) -> None:
        """Ask the main loop to reload the model (what SIGHUP does)."""
        self._reload.set()

    def _serve(self) -> int:
        watchdog = sdnotify.watchdog_interval()
        next_ping = 0.0
        while not self._stop.wait(TICK_S):
            if self._reload.is_set():
                self._reload.clear()
                self.reload()
            failure = self._failure()
            if failure:
                log.critical("%s: exiting so that systemd restarts birdd", failure)
                return 1
            if not self.tokenizer.is_alive():  # the input ended (file source without loop)
                log.info("input finished")
                return 0
            if watchdog and time.monotonic() >= next_ping:
                sdnotify.notify("WATCHDOG=1")
                next_ping = time.monotonic() + watchdog / 2
        return 0

    def _failure(self) -> str:
        for thread in (self.source, self.tokenizer, self.classifier):
            if thread.error is not None:
                return f"{thread.name} died: {thread.error!r}"
        if self.classifier.is_alive() is False and self.tokenizer.is_alive():
            return "classifier worker ended unexpectedly"
        if time.monotonic() - self.stats.last_progress > STALL_S:
            return f"tokenizer made no progress for {STALL_S:.0f} s"
        if self.publisher and not self.publisher.is_alive():
            return "MQTT publisher thread ended unexpectedly"
        return ""

    def reload(self) -> None:
        """Load and verify the configured bundle; switch to it at the next read, or keep the old one."""
        sdnotify.reloading()
        try:
            model = load_model(self.config.model.path, self.config.model.threads)
            DetectionPolicy(self.config.detection, model.species)
        except Exception as exc:  # whatever is wrong with the new bundle, the old model keeps running
            log.error("model reload failed, keeping %s: %s", self.model.digest, exc)
            if self.publisher:
                self.publisher.publish_event("model_reload_failed", str(exc))
        else:
            log.info("model reload: %s -> %s", self.model.digest, model.digest)
            self.tokenizer.switch_model(model)
        sdnotify.notify("READY=1")

    def _install_signals(self) -> None:
        signal.signal(signal.SIGTERM, lambda *_: self.request_stop())
        signal.signal(signal.SIGINT, lambda *_: self.request_stop())
        signal.signal(signal.SIGHUP, lambda *_: self.request_reload())

    # --- the classifier thread's callbacks ------------------------------------------------------

    def _on_model(self, model: Model) -> None:
        self.model = model
        self._policy = DetectionPolicy(self.config.detection, model.species)
        if self.publisher:
            self.publisher.publish_event("model_reloaded", f"{model.identity['name']} {model.digest}")

    def _on_window(self, segment: Segment, window: WindowVector, scores: np.ndarray, read_at: float) -> None:
        self.metrics.windows.inc()
        end_sample = segment.start_sample + window.end_sample
        start_epoch = self._stream_epoch + (segment.start_sample + window.start_sample) / SAMPLE_RATE
        end_epoch = self._stream_epoch + end_sample / SAMPLE_RATE
        for j, confidence in self._policy.select(scores):
            species = self.model.species[j]
            detection = Detection(
                detection_id=make_detection_id(self.config.station.name, segment.source, self._stream_epoch,
                                               end_sample, species.code),
                station=self.config.station.name, source=segment.source, start=iso_utc(start_epoch),
                end=iso_utc(end_epoch), species_code=species.code, common_name=species.common_name,
                scientific_name=species.scientific_name, confidence=round(confidence, 4),
                model=self.model.identity)
            self.outbox.put(detection.to_payload())
            self.stats.detections += 1
            self.metrics.detections.inc()
            log.info("detection %s %.2f at %s (%s)", species.code, confidence, detection.end, segment.source)
        if self.publisher and self.config.mqtt.publish_windows:
            top = np.argsort(-scores)[: self.config.mqtt.windows_top_k]
            self.publisher.publish_window({
                "station": self.config.station.name, "source": segment.source, "start": iso_utc(start_epoch),
                "end": iso_utc(end_epoch),
                "top": [{"species_code": self.model.species[j].code, "confidence": round(float(scores[j]), 4)}
                        for j in top]})
        self.metrics.inference_seconds.observe(time.monotonic() - read_at)

    def _on_acked(self, payload: dict[str, Any]) -> None:
        """MQTT thread: the broker has a detection; observe window end (audio clock) to acknowledgement."""
        if self._live:
            end = datetime.fromisoformat(payload["end"].replace("Z", "+00:00")).timestamp()
            self.metrics.publish_latency.observe(max(0.0, time.time() - end))

    # --- status -----------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """Statistics for ``<prefix>/status/stats`` (the publisher adds its own and the outbox's)."""
        source = self.source.status()
        return {
            "uptime_s": round(time.monotonic() - self._started, 1),
            "windows": self.stats.windows, "detections": self.stats.detections,
            "audio_seconds": round(self.stats.samples / SAMPLE_RATE, 1),
            "audio_overruns": self.ring.overruns + source.overruns, "audio_lost_samples": self.ring.lost_samples,
            "audio_gaps": self.stats.gaps, "source_state": source.state, "source_detail": source.detail,
            "real_time_factor": round(self.stats.real_time_factor, 5),
            "queue_depth": self._queue.qsize(), "model": self.model.identity,
            **{key: value for key, value in (("latitude", self.config.station.latitude),
                                            ("longitude", self.config.station.longitude)) if value is not None},
        }

    def _register_metrics(self) -> None:
        m = self.metrics
        m.observe("birdd_audio_overruns", "Ring and device overruns", lambda: self.ring.overruns +
                  self.source.status().overruns)
        m.observe("birdd_outbox_backlog", "Detections awaiting broker acknowledgement", self.outbox.backlog)
        m.observe("birdd_outbox_dropped", "Detections dropped at the outbox bounds", self.outbox.dropped)
        m.observe("birdd_mqtt_connected", "1 while connected to the broker",
                  lambda: float(bool(self.publisher and self.publisher.counters().connected)))
        m.observe("birdd_real_time_factor", "Processing seconds per audio second", lambda: self.stats.real_time_factor)


def _left(deadline: float, at_most: float) -> float:
    return max(0.05, min(at_most, deadline - time.monotonic()))


def run_service(config: Config) -> int:
    """Build and run the service (what ``birdd run`` does)."""
    return Service(config).run()
