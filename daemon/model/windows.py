"""The 5-s analysis windows: where they start and end, and what a backend emits for each."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Protocol

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
    strictly_above: ClassVar[bool] = False
    """a window lists a species whose probability is at or above its threshold"""

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


BIRDNET_CHUNK_SECONDS = 3.0
"""length of a BirdNET chunk (seconds): the model's input"""
BIRDNET_MIN_CHUNK_SECONDS = 1.5
"""a trailing chunk with less audio than this is dropped, a longer one zero-padded (BirdNET-Analyzer's minlen)"""
BIRDNET_MAX_OVERLAP_S = 2.9
"""largest overlap BirdNET-Analyzer accepts (seconds)"""


@dataclass(frozen=True)
class BirdNETGrid:
    """BirdNET-Analyzer's own detection grid: 3-s chunks from the stream start, ``3 - overlap_s`` apart.

    Exactly birdnetlib's ``process_audio_data``: chunk ``k`` starts at model-rate sample
    ``k * int((3 - overlap_s) * rate)``; a chunk with fewer than ``int(1.5 * rate)`` samples of audio ends the
    stream (a clip shorter than 1.5 s has none), a shorter than 3-s one is zero-padded. Its confidence is
    BirdNET's ``1 / (1 + exp(-s * clip(logit, -15, 15)))`` with ``s = clamp(2 - sensitivity, 0.5, 1.5)``; a
    species is listed when its confidence is above (not at) its threshold. Chunk positions are reported in samples
    of ``stream_rate``, the rate of the audio pushed into the pipeline (replay: the model's 48 kHz, read as
    birdnetlib reads it; the daemon: its 32 kHz ring).
    """

    overlap_s: float = 0.0
    """overlap of consecutive chunks (seconds, 0 to 2.9)"""
    sensitivity: float = 1.0
    """BirdNET's detection sensitivity (0.5 to 1.5; higher gives higher confidences)"""
    stream_rate: int = SAMPLE_RATE
    """sample rate of the stream the chunk positions count (hertz)"""
    strictly_above: ClassVar[bool] = True
    """BirdNET's rule: a chunk lists a species whose confidence is *above* its threshold (birdnetlib's
    ``Recording.detections``, BirdNET-Go's processor), a tie is not listed"""

    def __post_init__(self) -> None:
        if not (0 <= self.overlap_s <= BIRDNET_MAX_OVERLAP_S and 0.5 <= self.sensitivity <= 1.5
                and self.stream_rate > 0):
            raise ValueError(f"BirdNET grid: invalid settings {self}")

    def chunk_step(self, rate: int) -> int:
        """Distance between chunk starts (samples at ``rate``), rounded as BirdNET-Analyzer rounds it."""
        return int((BIRDNET_CHUNK_SECONDS - self.overlap_s) * rate)

    @staticmethod
    def chunk_length(rate: int) -> int:
        """A chunk's length (samples at ``rate``)."""
        return int(BIRDNET_CHUNK_SECONDS * rate)

    @staticmethod
    def min_chunk(rate: int) -> int:
        """Fewest samples of audio a trailing chunk needs (samples at ``rate``)."""
        return int(BIRDNET_MIN_CHUNK_SECONDS * rate)

    @property
    def slope(self) -> float:
        """BirdNET's sigmoid slope for ``sensitivity``."""
        return max(0.5, min(1.0 - (self.sensitivity - 1.0), 1.5))

    def confidences(self, logits: np.ndarray) -> np.ndarray:
        """BirdNET's flat sigmoid of ``logits`` (float32, any shape)."""
        z = np.clip(np.asarray(logits, dtype=np.float32), -15, 15)
        return (1.0 / (1.0 + np.exp(np.float32(-self.slope) * z))).astype(np.float32)


Grid = WindowGrid | BirdNETGrid
"""Where windows (or chunks) lie in a stream."""
GRIDS = ("auto", "birdclef", "birdnet")
"""``detection.grid`` values: BirdCLEF's 5-s windows, BirdNET's 3-s chunks, or the bundle's own (see
:func:`daemon.pipeline.scoring.choose_grid`)"""
