"""The interfaces at the far end of the pipeline: what every sink offers the service's sink thread."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from daemon.pipeline.detection import Detection
from daemon.pipeline.scoring import AudioBlock, WindowResult


class Sink(Protocol):
    """Takes detections, one at a time, in the order they were made."""

    def put(self, detection: Detection) -> None:
        """Keep, send or show one detection; must not block for long (the sink thread serves every sink)."""

    def close(self) -> None:
        """Release what the sink holds; called once, after the last ``put``."""


@runtime_checkable
class GroupCommitSink(Sink, Protocol):
    """A sink whose durable write can serve several detections: the sink thread holds each detection of the
    windows queued together, in order, then commits them once (``put`` is ``hold`` then ``commit``)."""

    def hold(self, detection: Detection) -> None:
        """Take one detection as ``put`` would, leaving its durable write to :meth:`commit`."""

    def commit(self) -> None:
        """Write what was held since the last commit."""


class BackgroundTask(Protocol):
    """Work a sink hands off its thread (e.g. writing clips); the service runs it on a thread of its own."""

    name: str
    """the thread's name"""

    def work(self, timeout: float) -> None:
        """Do what is ready; wait at most ``timeout`` seconds for more."""

    def drain(self, deadline: float) -> int:
        """At stop: finish what is queued until ``deadline`` (monotonic); return how much was left undone."""

    def pending(self) -> int:
        """Work queued and not done yet (at the end of the input the service waits for none to be left)."""


class WindowSink(Protocol):
    """Takes every scored window, detections or not (metrics, the windows topic)."""

    def put_window(self, result: WindowResult) -> None:
        """Observe one window result."""


class AudioSink(Protocol):
    """Takes every block of audio the pipeline thread reads, in stream order (the archive)."""

    def put_audio(self, block: AudioBlock) -> None:
        """Observe one block; must return at once (it runs on the pipeline thread, before scoring goes on)."""

    def end_audio(self) -> None:
        """The stream has ended: finish what is pending."""
