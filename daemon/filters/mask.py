"""The privacy mask: stream sample ranges whose audio no clip or archive file may keep (a voice, quiet hours).

The filter chain (pipeline thread) adds ranges and moves :attr:`PrivacyMask.decided_until` on, the sample below
which no range will be added any more; the clip worker and the archive (through
:class:`~daemon.filters.audio_gate.MaskedAudio`) read it. Audio at or past ``decided_until`` is treated as
private: a clip cut before the mask is decided is silenced there rather than risk keeping a voice.
"""

from __future__ import annotations

import bisect
import threading

import numpy as np

CAPACITY = 4096
"""ranges kept (merged, oldest dropped first): days of speech in stretches, far more than the ring holds"""


class PrivacyMask:
    """Sorted, merged ``[start, end)`` ranges of stream samples; thread-safe."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self._lock = threading.Lock()
        self._starts: list[int] = []
        self._ends: list[int] = []
        self._capacity = capacity
        self.decided_until = 0
        """no range will be added below this sample (written by the pipeline thread only)"""

    def add(self, start: int, end: int) -> None:
        """Mask ``[start, end)`` (merged with the ranges it touches)."""
        if end <= start:
            return
        with self._lock:
            i = bisect.bisect_left(self._ends, start)
            j = bisect.bisect_right(self._starts, end)
            if i < j:
                start, end = min(start, self._starts[i]), max(end, self._ends[j - 1])
            self._starts[i:j], self._ends[i:j] = [start], [end]
            if len(self._starts) > self._capacity:
                del self._starts[0], self._ends[0]

    def decide(self, sample: int) -> None:
        """No range will be added below ``sample`` from now on."""
        self.decided_until = max(self.decided_until, sample)

    def covers(self, start: int, end: int) -> bool:
        """Is all of ``[start, end)`` masked?"""
        with self._lock:
            i = bisect.bisect_right(self._starts, start) - 1
            return i >= 0 and self._ends[i] >= end

    def touches(self, start: int, end: int) -> bool:
        """Is any of ``[start, end)`` masked?"""
        with self._lock:
            i = bisect.bisect_right(self._ends, start)
            return i < len(self._starts) and self._starts[i] < end

    def silence(self, first_sample: int, audio: np.ndarray) -> int:
        """Zero the masked samples of ``audio`` (stream samples from ``first_sample``) and those not decided yet,
        in place; how many were zeroed."""
        last = first_sample + audio.size
        zeroed = np.zeros(audio.size, dtype=bool)
        with self._lock:
            i = max(0, bisect.bisect_right(self._ends, first_sample))
            while i < len(self._starts) and self._starts[i] < last:
                zeroed[max(0, self._starts[i] - first_sample): self._ends[i] - first_sample] = True
                i += 1
        zeroed[max(0, self.decided_until - first_sample):] = True
        audio[zeroed] = 0.0
        return int(zeroed.sum())
