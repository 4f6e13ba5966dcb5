"""Exponential back-off with jitter and a cap, for loops that retry (broker, audio device)."""

from __future__ import annotations

import random
from typing import Protocol


class UniformSource(Protocol):
    """Anything with ``uniform(low, high)``: :class:`random.Random` or a numpy ``Generator``."""

    def uniform(self, low: float, high: float) -> float: ...


class Backoff:
    """Delays that double from ``initial_s`` up to ``max_s``, each drawn uniformly from ``[d/2, d]``.

    "Equal jitter": a delay never falls below half its nominal value ``d`` (so retries stay spaced
    out) and never exceeds ``max_s``; the spread keeps many clients that lost the same broker from
    coming back in lock-step.
    """

    def __init__(self, initial_s: float, max_s: float, rng: UniformSource | None = None) -> None:
        if not 0 < initial_s <= max_s:
            raise ValueError(f"Backoff: need 0 < initial_s <= max_s, got {initial_s} and {max_s}")
        self._initial_s = initial_s
        self._max_s = max_s
        self._rng = rng if rng is not None else random.Random()
        self._nominal_s = initial_s

    def next_delay(self) -> float:
        """The delay before the next attempt (seconds); doubles the nominal delay for the one after."""
        nominal = self._nominal_s
        self._nominal_s = min(self._max_s, nominal * 2)
        return float(self._rng.uniform(nominal / 2, nominal))

    def reset(self) -> None:
        """Start again from ``initial_s`` (call after a success)."""
        self._nominal_s = self._initial_s
