"""What every audio source offers the service layer, and the factory that picks one from the config.

A source owns one producer thread: ``start()`` launches it, ``stop()`` ends it, and it writes
float32 mono at :data:`daemon.audio_io.SAMPLE_RATE` into a :class:`daemon.ring.RingBuffer`, whose
sample counter is the stream's clock. The ring is closed when the source stops or runs out of input.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from daemon.audio.ring import RingBuffer
from daemon.config import AudioConfig


@dataclass(frozen=True)
class SourceStatus:
    """A snapshot of a source's health, for the status message and metrics."""

    state: str
    """"starting", "ok", "waiting" (for a device or a stream, retrying), "finished" (input exhausted) or "stopped\""""
    detail: str
    """the device name, the file being played, or the last error"""
    retries: int = 0
    """mic: attempts to (re)open the device since start-up"""
    overruns: int = 0
    """mic: blocks the device or the capture ring dropped (PortAudio input overflow, capture-ring overrun)"""
    skipped_files: int = 0
    """file: inputs that could not be read and were skipped"""
    stalls: int = 0
    """url: connections ended because no audio came for ``audio.stall_s`` seconds"""
    resyncs: int = 0
    """url: times the stream drifted ``audio.max_drift_s`` from the wall clock and was put back in step"""


class AudioSource(Protocol):
    """The lifecycle every source implements (see :class:`daemon.lifecycle.ManagedThread`)."""

    name: str
    """the producer thread's name"""
    error: BaseException | None
    """the exception that ended the producer thread, if one did"""

    def start(self) -> None:
        """Launch the producer thread."""

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the producer to end, wait up to ``timeout`` seconds, and close the ring."""

    def is_alive(self) -> bool:
        """True while the producer thread runs."""

    def status(self) -> SourceStatus:
        """The current health snapshot."""

    def source_at(self, sample: int) -> str:
        """The name of the input that produced stream sample ``sample`` (the detections' ``source``)."""


def make_source(config: AudioConfig, ring: RingBuffer, origin: float | None = None,
                on_event: Callable[[str, str], None] | None = None) -> AudioSource:
    """The source ``config.source`` names; PortAudio is loaded only for the mic.

    ``origin``: the monotonic time of stream sample 0 (a source restarted on a ring it wrote before keeps
    the stream's clock); None = when the source starts. ``on_event(kind, message)`` gets the status events of a
    URL source (stalls, outages, drift).
    """
    if config.source == "mic":
        from daemon.audio.mic_source import MicSource

        return MicSource(config, ring, origin=origin)
    if config.source == "url":
        from daemon.audio.url_source import UrlSource

        return UrlSource(config, ring, on_event, origin=origin)
    from daemon.audio.file_source import FileSource

    return FileSource(config, ring, origin=origin)
