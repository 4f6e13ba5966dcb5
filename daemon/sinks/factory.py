"""Which sinks the daemon feeds, from the configuration: the one place a new sink is plugged in."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from daemon.archive.archive import AudioArchive
from daemon.audio.ring import RingBuffer
from daemon.clips.recorder import ClipRecorder
from daemon.clips.schedule import ClipSchedule
from daemon.config import Config
from daemon.constants import SAMPLE_RATE, WINDOW_SECONDS
from daemon.filters.audio_gate import MaskedAudio
from daemon.filters.chain import filters_delay_s
from daemon.filters.mask import PrivacyMask
from daemon.filters.stats import FilterStats
from daemon.pipeline.detection import StreamClock
from daemon.pipeline.sound_level import SoundLevelMeter
from daemon.sinks.base import AudioSink, BackgroundTask, Sink, WindowSink
from daemon.sinks.log import LogSink
from daemon.sinks.mqtt import MqttPublisher, WindowTopicSink
from daemon.sinks.outbox import Outbox, OutboxSink
from daemon.sinks.recording import RecordingSink
from daemon.sinks.sound_level import LevelOutput, SoundLevelSink
from daemon.store.sound_levels import LatestLevelsWriter, latest_levels_path
from daemon.store.writer import DetectionStore

CLIP_SLACK_S = 20.0
"""ring capacity added beyond a clip's window and margins (seconds): how far the clip worker may lag live audio"""


@dataclass(frozen=True)
class SinkContext:
    """What the service shares with sinks: configuration, the stream clock, each source's ring, the durable path."""

    config: Config
    clock: StreamClock
    rings: Mapping[str, RingBuffer]
    """each source's ring buffer, by source name (the clips cut a detection's audio from its source's ring)"""
    outbox: Outbox
    publisher: MqttPublisher | None
    masks: Mapping[str, PrivacyMask] = field(default_factory=dict)
    """each source's audio that no clip or archive file keeps (the filters', docs/filters.md), by source name"""
    filter_stats: FilterStats = field(default_factory=FilterStats)
    level_outputs: tuple[LevelOutput, ...] = ()
    """where sound-level reports go besides MQTT and the web's file (the Prometheus gauges)"""


@dataclass
class SinkSet:
    """What the sink thread feeds, and what the service runs and reports for the sinks."""

    sinks: list[Sink]
    """detection sinks, in the order they get each detection"""
    window_sinks: list[WindowSink]
    """window sinks; they get each window result before the detection sinks get its detections"""
    audio_sinks: dict[str, list[AudioSink]] = field(default_factory=dict)
    """audio sinks; they get every block of audio the pipeline reads, after the pipeline"""
    background: list[BackgroundTask] = field(default_factory=list)
    """work the service runs on threads of its own"""
    status: list[Callable[[], dict[str, Any]]] = field(default_factory=list)
    """more statistics for ``<prefix>/status/stats``"""


def ring_extra_samples(config: Config) -> int:
    """Ring capacity the sinks add to ``audio.ring_seconds``: with clips, a window, both margins, slack, and the
    longest any source's filters hold a window."""
    if not (config.store.enabled and config.clips.enabled):
        return 0
    held_s = max(filters_delay_s(source.filters) for source in config.source_list)
    return round((WINDOW_SECONDS + 2 * config.clips.margin_s + CLIP_SLACK_S + held_s) * SAMPLE_RATE)


def make_sinks(context: SinkContext) -> SinkSet:
    """The outbox first among detection sinks (its payload is made before the store takes the detection; the sink
    thread commits it for the windows served together), the detection store after it, then the log.

    The store also watches windows: it gives each detection its row id and clip name before the outbox
    commits the payload that carries them. The audio archive, when on, takes the audio itself.
    """
    config = context.config
    built = SinkSet([], [])
    on_event = context.publisher.publish_event if context.publisher else None
    recording = None
    if config.store.enabled:
        store = DetectionStore(config.store)
        clips = None
        if config.clips.enabled:
            recorder = ClipRecorder(config.clips, store, context.rings, on_event=on_event, masks=context.masks)
            recorder.reconcile()
            clips = ClipSchedule(recorder, context.rings)
            built.background.append(clips)
        recording = RecordingSink(store, clips, on_event, published_id=context.outbox.highest_id)
        built.window_sinks.append(recording)
        built.status.append(recording.status)
    outbox = OutboxSink(context.outbox, on_event, recording.payload_fields if recording else None,
                        context.publisher.wake if context.publisher else None)
    built.sinks.append(outbox)
    built.window_sinks.append(outbox)  # each window retries what a full or read-only disk held back
    if recording is not None:
        built.sinks.append(recording)
    built.sinks.append(LogSink())
    if config.archive.enabled:
        archive = AudioArchive(config.archive, context.clock, on_event)
        several = len(context.rings) > 1  # then each source's files are in a folder of its name
        for name in context.rings:
            feed = archive.feed(name if several else "")
            mask = context.masks.get(name)
            built.audio_sinks.setdefault(name, []).append(
                feed if mask is None else MaskedAudio(feed, mask, context.filter_stats))
        built.background.append(archive)
        built.status.append(archive.status)
    if config.sound_level.enabled:
        outputs = sound_level_outputs(context)
        for name in context.rings:
            built.audio_sinks.setdefault(name, []).append(make_sound_level_sink(context, name, outputs))
    if context.publisher is not None and config.mqtt.publish_windows:
        built.window_sinks.append(WindowTopicSink(context.publisher, config, context.clock))
    return built


def sound_level_outputs(context: SinkContext) -> list[LevelOutput]:
    """Where every source's sound-level reports go: MQTT, the context's outputs, the web's file (one writer)."""
    outputs: list[LevelOutput] = list(context.level_outputs)
    if context.publisher is not None:
        outputs.append(context.publisher.publish_sound_level)
    if context.config.store.enabled:
        outputs.append(LatestLevelsWriter(latest_levels_path(context.config.store.path)))
    return outputs


def make_sound_level_sink(context: SinkContext, source: str, outputs: list[LevelOutput]) -> SoundLevelSink:
    """The sound-level meter of the stream named ``source``, reporting to ``outputs``."""
    config = context.config
    level = config.sound_level
    return SoundLevelSink(SoundLevelMeter(level.interval_s, level.calibration_db), config.station.name, source,
                          context.clock, level.calibration_db, outputs)
