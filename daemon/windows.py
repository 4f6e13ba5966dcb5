"""The 5-s analysis windows: where they start and end, and what a backend emits for each."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from daemon.audio_io import SAMPLE_RATE

WINDOW_SECONDS = 5
"""Length of an analysis window (seconds), as in BirdCLEF."""


@dataclass(frozen=True)
class WindowGrid:
    """Windows aligned to stream start: window ``w`` covers samples ``[w * hop, w * hop + length)``.

    A trailing partial window is kept when it holds at least ``min_tail`` samples (or when it is the
    stream's only window), and it is named by its nominal end: a 63-s file yields windows ending at
    5, 10, ..., 60 and 65 s; a 62-s file stops at 60 s.
    """

    length: int = WINDOW_SECONDS * SAMPLE_RATE
    """window length (samples)"""
    hop: int = WINDOW_SECONDS * SAMPLE_RATE
    """distance between window starts (samples)"""
    min_tail: int = WINDOW_SECONDS * SAMPLE_RATE // 2
    """shortest trailing partial window that is still scored (samples)"""

    def __post_init__(self) -> None:
        if not (0 < self.hop <= self.length and 0 < self.min_tail <= self.length):
            raise ValueError(f"window grid: invalid sizes {self}")

    @classmethod
    def with_hop_seconds(cls, hop_seconds: float, sample_rate: int = SAMPLE_RATE) -> WindowGrid:
        """The standard 5-s grid with another hop."""
        return cls(hop=round(hop_seconds * sample_rate), length=WINDOW_SECONDS * sample_rate,
                   min_tail=WINDOW_SECONDS * sample_rate // 2)

    def start(self, index: int) -> int:
        """First sample of window ``index``."""
        return index * self.hop

    def end(self, index: int) -> int:
        """Nominal end sample (exclusive) of window ``index``."""
        return index * self.hop + self.length


@dataclass(frozen=True)
class WindowVector:
    """One window's pooled feature vector, with its place in the stream (sample indices)."""

    index: int
    start_sample: int
    end_sample: int
    vector: np.ndarray


class Stage(Protocol):
    """A streaming stage: push inputs, get the outputs they complete; flush at end of stream."""

    def push(self, item) -> list: ...

    def flush(self) -> list: ...
