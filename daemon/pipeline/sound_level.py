"""Sound level: A-weighted equivalent level (LAeq) and 1/3-octave band levels of the audio stream.

A plain object fed the blocks the pipeline reads. Each second of audio is one frame: its Hann-windowed
power spectrum (1-Hz bins, scaled so that the bins add up to the frame's mean square, Parseval) is weighted
with the IEC 61672-1 A-weighting curve for the LAeq and summed over the IEC 61260 base-10 band edges
(``fc * 10**(±1/20)``) for the bands. Every ``interval_s`` seconds of audio a :class:`SoundLevel` is made:
LAeq and each band's energy mean (``mean_db``) over the interval, and the band's quietest and loudest
second (``min_db``, ``max_db``), as BirdNET-Go's sound-level feature reports them. The A-weighting is
applied at the bin frequencies with the analogue formula itself, so a tone's dB(A) is the formula's to a
few hundredths of a dB at every frequency below Nyquist (a digital A-weighting filter is off by several
dB near it).

Levels are dB relative to a digital RMS of 1.0 (a full-scale sine is -3.01 dB) plus ``calibration_db``
(the microphone's sensitivity: the dB SPL of an RMS of 1.0). A gap in the stream (a ring overrun, a stream
outage) drops the unfinished second; intervals count seconds of audio heard, not of wall time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from daemon.constants import SAMPLE_RATE

NOMINAL_BANDS_HZ = (25, 31.5, 40, 50, 63, 80, 100, 125, 160, 200, 250, 315, 400, 500, 630, 800, 1000, 1250,
                    1600, 2000, 2500, 3150, 4000, 5000, 6300, 8000, 10000, 12500)
"""ISO 266 nominal 1/3-octave centres whose upper band edge is below Nyquist at the model rate"""
EXACT_BANDS_HZ = tuple(1000.0 * 10 ** (n / 10) for n in range(-16, -16 + len(NOMINAL_BANDS_HZ)))
"""the exact base-10 centres of the same bands (IEC 61260-1)"""
SILENCE_DB = -200.0
"""the level reported for digital silence (the floor of every level)"""
_FRAME = SAMPLE_RATE
"""samples per one-second frame"""


def a_weighting_db(frequency_hz: np.ndarray | float) -> np.ndarray:
    """IEC 61672-1 A-weighting (dB) at ``frequency_hz``: 0 dB at 1 kHz."""
    f2 = np.square(np.asarray(frequency_hz, dtype=np.float64))
    ra = (12194.0 ** 2 * f2 ** 2) / ((f2 + 20.6 ** 2) * np.sqrt((f2 + 107.7 ** 2) * (f2 + 737.9 ** 2))
                                     * (f2 + 12194.0 ** 2))
    with np.errstate(divide="ignore"):
        return 20.0 * np.log10(ra) + 2.0


def band_key(nominal_hz: float) -> str:
    """BirdNET-Go's key of a band: ``"31.5_Hz"``, ``"1.0_kHz"``, ``"12.5_kHz"``."""
    return f"{nominal_hz:.1f}_Hz" if nominal_hz < 1000 else f"{nominal_hz / 1000:.1f}_kHz"


def level_db(mean_square: np.ndarray | float, calibration_db: float = 0.0) -> np.ndarray:
    """``10 log10(mean_square) + calibration_db``, floored at :data:`SILENCE_DB`."""
    with np.errstate(divide="ignore"):
        return np.maximum(10.0 * np.log10(np.asarray(mean_square, dtype=np.float64)) + calibration_db, SILENCE_DB)


@dataclass(frozen=True)
class SoundLevel:
    """One interval's levels (dB)."""

    start_sample: int
    """stream index of the interval's first sample"""
    end_sample: int
    """stream index one past its last sample"""
    seconds: int
    """seconds of audio in the interval"""
    laeq_db: float
    bands_mean_db: tuple[float, ...]
    """per band of :data:`NOMINAL_BANDS_HZ`: energy mean over the interval"""
    bands_min_db: tuple[float, ...]
    bands_max_db: tuple[float, ...]


class SoundLevelMeter:
    """Blocks of samples in, a :class:`SoundLevel` per ``interval_s`` seconds of audio out; no threads."""

    def __init__(self, interval_s: int, calibration_db: float = 0.0) -> None:
        if interval_s < 1:
            raise ValueError(f"sound level: interval_s must be >= 1, got {interval_s}")
        self._interval = interval_s
        self._calibration = calibration_db
        self._frame = np.zeros(_FRAME, dtype=np.float32)
        self._filled = 0
        self._expected: int | None = None  # stream index the next block should start at
        window = np.hanning(_FRAME + 1)[:-1]  # periodic Hann
        self._window = window.astype(np.float32)
        frequencies = np.fft.rfftfreq(_FRAME, 1.0 / SAMPLE_RATE)
        bin_weight = np.full(frequencies.size, 2.0)  # one-sided spectrum: interior bins stand for two
        bin_weight[0] = bin_weight[-1] = 1.0
        self._bin_scale = bin_weight / (_FRAME ** 2 * float(np.mean(window ** 2)))
        self._a_gain = 10.0 ** (a_weighting_db(np.maximum(frequencies, 1e-9)) / 10.0)
        edges = np.array([[fc * 10 ** (-1 / 20), fc * 10 ** (1 / 20)] for fc in EXACT_BANDS_HZ])
        self._band_of_bin = np.full(frequencies.size, -1)
        for band, (low, high) in enumerate(edges):
            self._band_of_bin[(frequencies >= low) & (frequencies < high)] = band
        self._in_band = self._band_of_bin >= 0
        self._seconds_a: list[float] = []
        self._seconds_bands: list[np.ndarray] = []
        self._interval_start = 0

    def push(self, start_sample: int, samples: np.ndarray) -> list[SoundLevel]:
        """Add samples starting at stream index ``start_sample``; return the intervals they complete."""
        if self._expected is not None and start_sample != self._expected:
            self._filled = 0  # a gap: the unfinished second is not one second of audio
        self._expected = start_sample + samples.size
        out = []
        offset = 0
        while offset < samples.size:
            if self._filled == 0 and not self._seconds_a:
                self._interval_start = start_sample + offset
            take = min(_FRAME - self._filled, samples.size - offset)
            self._frame[self._filled:self._filled + take] = samples[offset:offset + take]
            self._filled += take
            offset += take
            if self._filled == _FRAME:
                self._filled = 0
                self._add_second()
                if len(self._seconds_a) == self._interval:
                    out.append(self._report(start_sample + offset))
        return out

    def flush(self) -> list[SoundLevel]:
        """The end of the stream: the unfinished interval, if it has a whole second."""
        self._filled = 0
        if not self._seconds_a or self._expected is None:
            return []
        return [self._report(self._expected)]

    def _add_second(self) -> None:
        spectrum = np.fft.rfft(self._frame * self._window)
        power = (spectrum.real ** 2 + spectrum.imag ** 2) * self._bin_scale
        self._seconds_a.append(float(np.dot(power, self._a_gain)))
        self._seconds_bands.append(np.bincount(self._band_of_bin[self._in_band], weights=power[self._in_band],
                                               minlength=len(EXACT_BANDS_HZ)))

    def _report(self, end_sample: int) -> SoundLevel:
        bands = np.array(self._seconds_bands)
        seconds = len(self._seconds_a)
        level = SoundLevel(
            start_sample=self._interval_start, end_sample=end_sample, seconds=seconds,
            laeq_db=float(level_db(np.mean(self._seconds_a), self._calibration)),
            bands_mean_db=tuple(level_db(bands.mean(axis=0), self._calibration).tolist()),
            bands_min_db=tuple(level_db(bands.min(axis=0), self._calibration).tolist()),
            bands_max_db=tuple(level_db(bands.max(axis=0), self._calibration).tolist()))
        self._seconds_a.clear()
        self._seconds_bands.clear()
        return level
