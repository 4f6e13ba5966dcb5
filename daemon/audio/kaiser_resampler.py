"""A streaming resampler equal to librosa's ``res_type="kaiser_fast"`` (resampy's band-limited sinc filter).

BirdNET-Analyzer and birdnetlib read every file with ``librosa.load(path, sr=48000, res_type="kaiser_fast")``.
To give their chunk confidences, the BirdNET grid (``docs/tflite.md``, "BirdNET grid") resamples a file the same
way: resampy's interpolated sinc table (24 zero crossings, 512 table entries per crossing, roll-off 0.868, a
Kaiser taper with beta 9.903; within 4e-12 of the table resampy ships) and librosa's output length,
``ceil(n * new / old)``, the last sample zero when resampy's ``floor`` is one shorter.

Output ``t`` sits at input position ``t * old / new``, taken here as an exact fraction (resampy's float product
can fall a rounding error short of a whole sample; the filter is continuous there, so the samples agree to float
rounding). Each output is a fixed-order sum of the same taps however the input is cut into blocks, so a
block-streamed file equals the whole file bit for bit.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

ZERO_CROSSINGS = 24
"""half-length of resampy's kaiser_fast filter (zero crossings of the sinc)"""
TABLE_PER_CROSSING = 512
"""filter table entries per zero crossing (resampy's precision 9)"""
ROLLOFF = 0.8682120388377784
"""cut-off as a share of the lower Nyquist frequency (resampy's kaiser_fast)"""
KAISER_BETA = 9.903224414024429
"""shape of the Kaiser taper (fitted to resampy's kaiser_fast table)"""


@lru_cache(maxsize=1)
def kaiser_fast_table() -> np.ndarray:
    """The right wing of the interpolated sinc filter, shape ``(ZERO_CROSSINGS * TABLE_PER_CROSSING + 1,)``."""
    n = ZERO_CROSSINGS * TABLE_PER_CROSSING
    sinc = ROLLOFF * np.sinc(ROLLOFF * np.linspace(0, ZERO_CROSSINGS, num=n + 1, endpoint=True))
    return np.kaiser(2 * n + 1, KAISER_BETA)[n:] * sinc


@lru_cache(maxsize=8)
def _phase_taps(old: int, new: int) -> tuple[tuple[tuple[tuple[int, float], ...], ...], int, int]:
    """Per output phase, the ``(input offset, weight)`` taps in resampy's order (left wing from the nearest input
    sample back, then the right wing); and the phase count and input step per phase cycle."""
    g = math.gcd(old, new)
    up, down = new // g, old // g
    ratio = new / old
    win = kaiser_fast_table() * (ratio if ratio < 1 else 1.0)
    delta = np.diff(win, append=win[-1])
    scale = min(1.0, ratio)
    step = int(scale * TABLE_PER_CROSSING)

    def wing(frac: float) -> list[float]:
        index = frac * TABLE_PER_CROSSING
        offset = int(index)
        eta = index - offset
        return [float(win[offset + i * step] + eta * delta[offset + i * step])
                for i in range((win.size - offset) // step)]

    phases = []
    for p in range(up):
        frac = scale * ((p * down) % up) / up
        left = [(-i, w) for i, w in enumerate(wing(frac))]
        right = [(k + 1, w) for k, w in enumerate(wing(scale - frac))]
        phases.append(tuple(left + right))
    return tuple(phases), up, down


class KaiserFastStream:
    """Streaming resampler from ``old`` to ``new`` hertz: push float32 blocks, get the output they complete.

    The interface of :class:`soxr.ResampleStream`: ``resample_chunk(samples, last=False)``; after ``last=True``
    the stream is ready for a new signal.
    """

    def __init__(self, old: int, new: int) -> None:
        if old <= 0 or new <= 0:
            raise ValueError(f"sample rates must be positive, got {old} and {new}")
        self.old, self.new = old, new
        self._phases, self._up, self._down = _phase_taps(old, new)
        self._left = max(-min(rel for rel, _ in taps) for taps in self._phases)
        self._right = max(max(rel for rel, _ in taps) for taps in self._phases)
        self._reset()

    def _reset(self) -> None:
        self._buffer = np.zeros(self._left, dtype=np.float64)  # the signal, zero before its start
        self._buffer_start = -self._left  # input index of self._buffer[0]
        self._received = 0
        self._produced = 0

    def resample_chunk(self, samples: np.ndarray, last: bool = False) -> np.ndarray:
        """The output samples that ``samples`` complete (with ``last``: all the rest, librosa's length)."""
        samples = np.asarray(samples, dtype=np.float32)
        self._buffer = np.concatenate([self._buffer, samples.astype(np.float64)])
        self._received += samples.size
        if not last:
            ready = self._received - self._right  # outputs whose nearest input is below this have every tap
            return self._produce(max(0, -(-ready * self._up // self._down)))
        self._buffer = np.concatenate([self._buffer, np.zeros(self._right + 1)])
        total = self._received * self._up // self._down  # resampy's length
        out = self._produce(total)
        wanted = math.ceil(self._received * (self.new / self.old))  # librosa's length (a float product)
        out = np.concatenate([out, np.zeros(max(0, wanted - total), dtype=np.float32)])  # never shorter: ceil
        self._reset()
        return out

    def _produce(self, stop: int) -> np.ndarray:
        """Outputs ``[produced, stop)``, float32; drops the input no later output needs."""
        first = self._produced
        if stop <= first:
            return np.zeros(0, dtype=np.float32)
        out = np.empty(stop - first, dtype=np.float32)
        for p, taps in enumerate(self._phases):
            m0 = -(-(first - p) // self._up)
            count = -(-(stop - p) // self._up) - m0
            if count <= 0:
                continue
            nearest = m0 * self._down + (p * self._down) // self._up - self._buffer_start
            acc = np.zeros(count, dtype=np.float32)
            for rel, weight in taps:  # float32 sums of float64 products, as resampy's loop adds them
                begin = nearest + rel
                acc = (acc + weight * self._buffer[begin: begin + (count - 1) * self._down + 1: self._down]).astype(
                    np.float32)
            out[m0 * self._up + p - first:: self._up] = acc
        self._produced = stop
        keep = stop * self._down // self._up - self._left - self._buffer_start
        if keep > 0:
            self._buffer = self._buffer[keep:]
            self._buffer_start += keep
        return out


def resample_kaiser_fast(samples: np.ndarray, old: int, new: int) -> np.ndarray:
    """A whole signal resampled as ``librosa.resample(samples, orig_sr=old, target_sr=new, res_type="kaiser_fast")``."""
    if old == new:
        return np.asarray(samples, dtype=np.float32)
    return KaiserFastStream(old, new).resample_chunk(samples, last=True)
