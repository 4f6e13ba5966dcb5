"""The 5-s analysis windows: where they start and end, and what a backend emits for each."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from daemon.constants import SAMPLE_RATE, WINDOW_SECONDS


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

    def keeps_at_end(self, index: int, seen: int, to_unit: Callable[[int], int] = int) -> bool:
        """The trailing-window rule: at the end of a stream of ``seen`` units, is window ``index`` scored?

        ``to_unit`` converts the grid's sample counts to the caller's unit (frames, model-rate samples),
        so that every backend applies this one rule in its own unit.
        """
        remaining = seen - to_unit(self.start(index))
        if remaining <= 0:
            return False
        if index == 0:
            return remaining >= to_unit(self.min_first)
        # a tail window: long enough, and reaching past the window before it
        return remaining >= to_unit(self.min_tail) and to_unit(self.end(index - 1)) < seen


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
