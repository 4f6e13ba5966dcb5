"""The 5-s analysis windows: where they start and end, and what a backend emits for each."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from daemon.audio.files import SAMPLE_RATE

WINDOW_SECONDS = 5
"""Length of an analysis window (seconds), as in BirdCLEF."""


@dataclass(frozen=True)
class WindowGrid:
    """Windows aligned to stream start: window ``w`` covers samples ``[w * hop, w * hop + length)``.

    A trailing partial window is kept when it holds at least ``min_tail`` samples and reaches past
    the window before it (with overlapping windows), and it is named by its nominal end: a 63-s file
    yields windows ending at 5, 10, ..., 60 and 65 s; a 62-s file stops at 60 s. A stream shorter
    than a window gets one window if it holds at least ``min_first`` samples.
    """

    length: int = WINDOW_SECONDS * SAMPLE_RATE
    """window length (samples)"""
    hop: int = WINDOW_SECONDS * SAMPLE_RATE
    """distance between window starts (samples)"""
    min_tail: int = WINDOW_SECONDS * SAMPLE_RATE // 2
    """shortest trailing partial window that is still scored (samples)"""
    min_first: int = 1
    """shortest stream that still gets its one window (samples): 1 for files (a 2-s clip is scored), the
    daemon uses ``min_tail`` so that a sliver of audio between two gaps is not scored"""

    def __post_init__(self) -> None:
        if not (0 < self.hop <= self.length and 0 < self.min_tail <= self.length and 0 < self.min_first <= self.length):
            raise ValueError(f"window grid: invalid sizes {self}")

    @classmethod
    def with_hop_seconds(cls, hop_seconds: float, min_first: int = 1) -> WindowGrid:
        """The standard 5-s grid with another hop."""
        return cls(hop=round(hop_seconds * SAMPLE_RATE), min_first=min_first)

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
