"""Audio blocks -> the pieces of audio the archive keeps: a plain stage (``push``, ``flush``), no threads.

A piece is contiguous audio of one input within one kept minute (:mod:`daemon.archive.minutes`); it ends at
the end of the minute, where the input changes (file replay) and at a gap in the stream (a ring overrun, a
microphone that was away). Wall-clock time comes from the stream clock, so a piece's time is the time its
first sample was heard, as for detections.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from daemon.archive.minutes import SECONDS_PER_MINUTE, is_kept
from daemon.constants import SAMPLE_RATE
from daemon.pipeline.detection import StreamClock
from daemon.pipeline.scoring import AudioBlock


@dataclass(frozen=True)
class ArchivePiece:
    """Audio for one archive file."""

    source: str
    """the input it came from (device label or file path)"""
    start_time: float
    """wall-clock time of ``samples[0]`` (seconds since 1970)"""
    samples: np.ndarray
    """float32 mono at :data:`SAMPLE_RATE`"""
    source_name: str = ""
    """the configured source that heard it, with several ``[[audio.sources]]`` ("" for a daemon of one source)"""

    @property
    def seconds(self) -> float:
        """Length (seconds)."""
        return self.samples.size / SAMPLE_RATE


class ArchiveSampler:
    """Keeps the audio of the kept minutes of each hour, in pieces."""

    def __init__(self, minutes_per_hour: int, clock: StreamClock, source_name: str = "") -> None:
        """``source_name``: the configured source whose stream this is, carried by its pieces."""
        self._minutes_per_hour = minutes_per_hour
        self._clock = clock
        self._source_name = source_name
        self._parts: list[np.ndarray] = []  # the ring hands out fresh arrays: kept without a copy
        self._source = ""
        self._minute = 0
        self._start = 0  # stream index of the piece's first sample
        self._end = 0  # one past its last

    def push(self, block: AudioBlock) -> list[ArchivePiece]:
        """Take one block (in stream order); the pieces it completes."""
        done = []
        first = block.start_sample
        while first < block.end_sample:
            minute = math.floor(self._clock.at(first) / SECONDS_PER_MINUTE)
            stop = min(block.end_sample, max(first + 1, self._first_sample_of(minute + 1)))
            if self._parts and (minute, block.source, first) != (self._minute, self._source, self._end):
                done += self.flush()
            if is_kept(minute, self._minutes_per_hour):
                if not self._parts:
                    self._minute, self._source, self._start = minute, block.source, first
                self._parts.append(block.samples[first - block.start_sample: stop - block.start_sample])
                self._end = stop
            first = stop
        return done

    def flush(self) -> list[ArchivePiece]:
        """End the piece under way (the stream ended); it, if there was one."""
        if not self._parts:
            return []
        piece = ArchivePiece(self._source, self._clock.at(self._start), np.concatenate(self._parts),
                             self._source_name)
        self._parts = []
        return [piece]

    def _first_sample_of(self, minute: int) -> int:
        return math.ceil((minute * SECONDS_PER_MINUTE - self._clock.epoch) * SAMPLE_RATE)
