"""One source of the daemon end to end up to the shared results queue: its ring, its source, its pipeline worker.

The service holds one :class:`SourcePipeline` per ``[[audio.sources]]`` entry (one for a plain ``[audio]``),
all built by :func:`make_source_pipelines` over one model, one stream clock and one results queue; the sinks
after the queue are shared. A source is isolated from the others: when its thread dies (an exception, a
device that cannot be opened at all) the service's main loop calls :meth:`SourcePipeline.supervise`, which
reports it (log line, ``source_failed`` event naming the source) and makes a new source on the same ring
after a back-off (``audio.retry_initial_s`` .. ``retry_max_s``, jittered), marking the time without audio as a
gap so the stream keeps its clock; the other sources go on detecting all the while.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from daemon.audio.ring import RingBuffer
from daemon.audio.sources import AudioSource, make_source
from daemon.backoff import Backoff
from daemon.config import AudioConfig, Config, DetectionConfig, SourceConfig
from daemon.constants import SAMPLE_RATE
from daemon.errors import AudioError, BundleError, ConfigError
from daemon.filters.chain import build_filters
from daemon.filters.mask import PrivacyMask
from daemon.filters.stats import FilterStats
from daemon.model.loader import Model
from daemon.model.range_filter import RangeFilter, StationRange
from daemon.model.windows import Grid, WindowGrid
from daemon.pipeline.cascade import CascadeTeacher
from daemon.pipeline.detection import StreamClock
from daemon.pipeline.policy import DetectionMaker, DetectionPolicy
from daemon.pipeline.scoring import PipelineStats, ScoringPipeline, choose_grid
from daemon.service.workers import PipelineWorker

log = logging.getLogger(__name__)

EventCallback = Callable[[str, str], None]
RESET_AFTER_S = 60.0
"""a source that ran this long before it died restarts after the shortest back-off again (seconds)"""
RATE_PERIOD_S = 5.0
"""the period over which the input rate is measured (seconds)"""
RECEIVING_S = 5.0
"""a source whose ring took no audio for this long is not receiving data (seconds)"""


@dataclass(frozen=True)
class FilterSetup:
    """What every source's filter chain shares (the counters) and owns (its privacy mask, by source name)."""

    stats: FilterStats = field(default_factory=FilterStats)
    masks: Mapping[str, PrivacyMask] = field(default_factory=dict)


def is_live(audio: AudioConfig) -> bool:
    """Whether a source's stream follows the wall clock (a mic, a network stream, or files paced at real time)."""
    return audio.source != "file" or audio.realtime


class SourcePipeline:
    """A source's ring, its source component (replaced when it dies) and its pipeline worker."""

    def __init__(self, source: SourceConfig, ring: RingBuffer, made: AudioSource | AudioError,
                 worker_for: Callable[[SourcePipeline], PipelineWorker], on_event: EventCallback | None = None) -> None:
        """``made``: the source made on ``ring``, or why it could not be made (it is then retried)."""
        self.name = source.name
        self.config = source
        self.ring = ring
        self.stats = PipelineStats()
        self.worker = worker_for(self)
        self.restarts = 0
        self.error = ""
        """why the source last failed ("" if it never did)"""
        self.last_audio: float | None = None
        """epoch seconds when the ring last took audio (None: never)"""
        self._on_event = on_event
        self._backoff = Backoff(source.audio.retry_initial_s, source.audio.retry_max_s)
        self._origin = time.monotonic()
        self._started_at = 0.0
        self._restart_at = 0.0
        self._written = 0
        self._rate_mark = (time.monotonic(), 0)
        self.samples_per_second = 0.0
        """samples the ring took per second, over the last :data:`RATE_PERIOD_S` or more"""
        self.source: AudioSource | None = None if isinstance(made, AudioError) else made
        """the running source; None while it is failed and waiting for its restart"""
        if isinstance(made, AudioError):
            self._failed(str(made))

    @property
    def failed(self) -> bool:
        """True while the source is dead and waiting for its restart."""
        return self.source is None

    @property
    def live(self) -> bool:
        """Whether the source's stream follows the wall clock."""
        return is_live(self.config.audio)

    def source_at(self, sample: int) -> str:
        """The input that produced stream sample ``sample`` (for the pipeline worker)."""
        return self.source.source_at(sample) if self.source is not None else ""

    def start_source(self, origin: float) -> None:
        """Start the source; ``origin`` is the monotonic time of stream sample 0 (the stream clock's start)."""
        self._origin = origin
        self._started_at = time.monotonic()
        if self.source is not None:
            self.source.start()
        else:
            self._restart_at = time.monotonic() + self._backoff.next_delay()

    def stop_source(self, timeout: float) -> None:
        """Stop the source (which closes the ring), or close the ring of a failed one: the worker then drains."""
        if self.source is not None:
            self.source.stop(timeout)
        self.ring.close()

    def supervise(self) -> None:
        """Main loop tick: note the audio that came in, report a source that died, restart it when due."""
        now = time.monotonic()
        if self.ring.written != self._written:
            self._written, self.last_audio = self.ring.written, time.time()
        marked_at, marked = self._rate_mark
        if now - marked_at >= RATE_PERIOD_S:
            self.samples_per_second = (self._written - marked) / (now - marked_at)
            self._rate_mark = (now, self._written)
        if self.source is not None and self.source.error is not None:
            if now - self._started_at > RESET_AFTER_S:
                self._backoff.reset()
            self._failed(repr(self.source.error))
            self.source = None
            self._restart_at = now + self._backoff.next_delay()
        if self.source is None and not self.ring.closed and now >= self._restart_at:
            self._restart()

    def health(self) -> dict[str, Any]:
        """The source's health for ``sources.json`` (and the status message)."""
        status = self.source.status() if self.source is not None else None
        state = "failed" if status is None else status.state
        receiving = self.last_audio is not None and time.time() - self.last_audio < RECEIVING_S
        return {
            "name": self.name, "type": self.config.audio.source, "input": status.detail if status else "",
            "state": state, "is_healthy": state == "ok" and receiving, "is_receiving_data": receiving,
            "last_audio": self.last_audio, "restarts": self.restarts, "error": self.error,
            "audio_seconds": round(self.stats.samples / SAMPLE_RATE, 1), "samples": self.ring.written,
            "samples_per_second": round(self.samples_per_second, 1),
            "gaps": self.stats.gaps, "lost_samples": self.ring.lost_samples,
            "overruns": self.ring.overruns + (status.overruns if status else 0),
            "device_retries": status.retries if status else 0, "stalls": status.stalls if status else 0,
            "resyncs": status.resyncs if status else 0, "skipped_files": status.skipped_files if status else 0,
            "windows": self.stats.windows, "detections": self.stats.detections,
            "teacher_windows": self.stats.teacher_windows,
        }

    def _failed(self, error: str) -> None:
        self.error = error
        log.error("source %s failed: %s (made again after its back-off)", self.name, error)
        if self._on_event:
            self._on_event("source_failed", f"{self.name}: {error}")

    def _restart(self) -> None:
        try:
            source = make_source(self.config.audio, self.ring, origin=self._origin, on_event=self._on_event)
        except AudioError as exc:
            self._failed(str(exc))
            self._restart_at = time.monotonic() + self._backoff.next_delay()
            return
        if self.live:  # the time without a source is a gap: later samples keep their place in time
            self.ring.skip(max(0, round((time.monotonic() - self._origin) * SAMPLE_RATE) - self.ring.written))
        self.restarts += 1
        self._started_at = time.monotonic()
        self.source = source
        source.start()
        log.info("source %s restarted (%d restart(s))", self.name, self.restarts)
        if self._on_event:
            self._on_event("source_restarted", f"{self.name}: restart {self.restarts}")


def detection_grid(detection: DetectionConfig, model: Model) -> Grid:
    """The detection grid ``model`` runs on (``detection.grid``); a BundleError naming the key if it cannot."""
    try:
        return choose_grid(detection.grid, model, detection.window_hop_s, detection.overlap_s,
                           detection.sensitivity, min_first=WindowGrid.min_tail)
    except BundleError as exc:
        raise BundleError(f"detection.grid: {exc}") from None


def make_source_pipelines(config: Config, model: Model, results: queue.Queue, clock: StreamClock,
                          range_filter: RangeFilter | None, ring_extra: int,
                          on_event: EventCallback | None = None,
                          filters: FilterSetup | None = None,
                          teacher: CascadeTeacher | None = None) -> list[SourcePipeline]:
    """One :class:`SourcePipeline` per configured source, each scoring with the shared ``model`` into ``results``
    and filtering with its own chain (``filters``: the shared counters, each source's privacy mask); with a
    cascade's ``teacher`` (shared too), each pipeline has its own cascade stage."""
    filters = filters or FilterSetup()
    several = len(config.source_list) > 1

    def worker_for(pipeline: SourcePipeline) -> PipelineWorker:
        def make_pipeline(model: Model) -> ScoringPipeline:
            station, detection = config.station, pipeline.config.detection
            station_range = None if range_filter is None else StationRange(
                range_filter, model.species, station.latitude, station.longitude, detection.range_threshold)
            grid = detection_grid(detection, model)
            detector = DetectionMaker(detection, station.name, model, clock, station_range, pipeline.stats,
                                      source_name=pipeline.name, strictly_above=grid.strictly_above)
            chain = build_filters(pipeline.config.filters, model.species, clock, filters.stats,
                                  filters.masks.get(pipeline.name), config.model.threads)
            cascade = teacher.stage(model, pipeline.stats) if teacher is not None else None
            return ScoringPipeline(model, grid, detector, pipeline.stats, chain, source_name=pipeline.name,
                                   cascade=cascade)

        name = f"birdd-pipeline-{pipeline.name}" if several else "birdd-pipeline"
        return PipelineWorker(pipeline.ring, pipeline, model, make_pipeline, results, name=name)

    DetectionPolicy(config.detection, model.species)  # [detection] against the model, named as such
    if teacher is not None:  # checked once per source grid, before any source starts (and on reload)
        for source in config.source_list:
            teacher.check(model, detection_grid(source.detection, model))
    made: list[tuple[SourceConfig, RingBuffer, AudioSource | AudioError]] = []
    for source in config.source_list:
        ring = RingBuffer(int(source.audio.ring_seconds * SAMPLE_RATE) + ring_extra)
        try:
            made.append((source, ring, make_source(source.audio, ring, on_event=on_event)))
        except AudioError as exc:
            made.append((source, ring, exc))
    errors = [(source.name, item) for source, _, item in made if isinstance(item, AudioError)]
    if len(errors) == len(made):  # nothing would run: an error before the store or the broker, as with one source
        name, error = errors[0]
        raise AudioError(f"source {name}: {error}") if several else error
    pipelines = []
    for i, (source, ring, item) in enumerate(made):
        try:
            pipelines.append(SourcePipeline(source, ring, item, worker_for, on_event))
        except ConfigError as exc:  # the source's own include, exclude or species thresholds
            raise ConfigError(f"audio.sources[{i}].{exc}") from None
    return pipelines
