"""Which sinks the daemon feeds, from the configuration: the one place a new sink is plugged in."""

from __future__ import annotations

from dataclasses import dataclass

from daemon.audio.ring import RingBuffer
from daemon.config import Config
from daemon.pipeline.detection import StreamClock
from daemon.sinks.base import Sink, WindowSink
from daemon.sinks.log import LogSink
from daemon.sinks.mqtt import MqttPublisher, WindowTopicSink
from daemon.sinks.outbox import Outbox, OutboxSink


@dataclass(frozen=True)
class SinkContext:
    """What the service shares with sinks: configuration, the stream clock, the ring, the durable path."""

    config: Config
    clock: StreamClock
    ring: RingBuffer
    outbox: Outbox
    publisher: MqttPublisher | None


def make_sinks(context: SinkContext) -> tuple[list[Sink], list[WindowSink]]:
    """Detection sinks in the order they get each detection (the outbox first: durability), and window sinks."""
    config = context.config
    outbox = OutboxSink(context.outbox, context.publisher.publish_event if context.publisher else None)
    sinks: list[Sink] = [outbox, LogSink()]
    window_sinks: list[WindowSink] = [outbox]  # each window retries what a full or read-only disk held back
    if context.publisher is not None and config.mqtt.publish_windows:
        window_sinks.append(WindowTopicSink(context.publisher, config, context.clock))
    return sinks, window_sinks
