"""Detections dropped near a sound that makes them doubtful (a voice, a dog): the stage behind privacy and noise.

Evidence comes as stream-sample spans (a window in which a class fired, a stretch of speech), each widened by
``margin`` on both sides and by ``remember`` forward. A window result is held until no later evidence can reach it
(:meth:`SpanFilter.decide` has passed its end), then released with the detections its window shares with a span
removed. Results leave in the order they came; :meth:`SpanFilter.flush` releases everything (end of a segment).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import replace

from daemon.pipeline.scoring import WindowResult


class SpanFilter:
    """Holds window results until their evidence is complete; drops the detections (of ``codes``, or all) in spans."""

    def __init__(self, margin: int, *, remember: int = 0, codes: frozenset[str] | None = None,
                 on_drop: Callable[[int], None] = lambda n: None) -> None:
        self._margin = margin
        self._remember = remember
        self._codes = codes
        self._on_drop = on_drop
        self._spans: deque[tuple[int, int]] = deque()  # in the order heard (their starts rise)
        self._held: deque[WindowResult] = deque()
        self._decided = 0

    def evidence(self, start: int, end: int) -> tuple[int, int]:
        """A doubtful sound over stream samples ``[start, end)``; the span it masks (widened by the margin)."""
        span = (start - self._margin, end + self._margin + self._remember)
        self._spans.append(span)
        return span

    def decide(self, sample: int) -> None:
        """No evidence will start before ``sample - margin`` from now on (the next window or frame starts later)."""
        self._decided = max(self._decided, sample - self._margin)

    @property
    def decided_until(self) -> int:
        """No span will start below this sample from now on."""
        return self._decided

    def push(self, results: list[WindowResult]) -> list[WindowResult]:
        """Hold ``results``; release (filtered) those no later evidence can reach."""
        self._held.extend(results)
        return self._release(everything=False)

    def flush(self) -> list[WindowResult]:
        """Release every held result with the evidence there is."""
        return self._release(everything=True)

    def _release(self, everything: bool) -> list[WindowResult]:
        out = []
        while self._held and (everything or self._decided >= self._held[0].end_sample):
            out.append(self._filtered(self._held.popleft()))
        oldest = self._held[0].start_sample if self._held else (out[-1].start_sample if out else None)
        while oldest is not None and self._spans and self._spans[0][1] <= oldest:
            self._spans.popleft()
        return out

    def _filtered(self, result: WindowResult) -> WindowResult:
        if not result.detections or not any(a < result.end_sample and b > result.start_sample
                                            for a, b in self._spans):
            return result
        kept = tuple(d for d in result.detections if self._codes is not None and d.species_code not in self._codes)
        self._on_drop(len(result.detections) - len(kept))
        return replace(result, detections=kept)
