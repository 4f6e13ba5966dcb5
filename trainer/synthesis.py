"""Labelled soundscape-like training windows: focal recordings mixed into real backgrounds.

Focal clips are short and clean, test windows are 5 s of field background with a call somewhere:
training on the mixture closes that gap.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np

from daemon.constants import SAMPLE_RATE, WINDOW_SECONDS
from trainer.recipe import SynthesisParams

WINDOW_SAMPLES = WINDOW_SECONDS * SAMPLE_RATE


def pink_noise(n_samples: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS pink (1/f) noise, float32: the background when there are no soundscapes."""
    spectrum = np.fft.rfft(rng.standard_normal(n_samples))
    spectrum /= np.sqrt(np.maximum(np.arange(spectrum.size), 1.0))
    noise = np.fft.irfft(spectrum, n_samples)
    return (noise / (np.sqrt(np.mean(noise**2)) + 1e-12)).astype(np.float32)


def background_crop(backgrounds: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """A random 5-s crop of a random background (pink noise at -40 dBFS when there is none)."""
    usable = [b for b in backgrounds if b.size >= WINDOW_SAMPLES]
    if not usable:
        return 0.01 * pink_noise(WINDOW_SAMPLES, rng)
    source = usable[rng.integers(len(usable))]
    start = rng.integers(source.size - WINDOW_SAMPLES + 1)
    return source[start: start + WINDOW_SAMPLES].copy()


def place_call(window: np.ndarray, clip: np.ndarray, snr_db: float, rng: np.random.Generator) -> None:
    """Add ``clip`` (cropped to the window if longer) at a random offset, ``snr_db`` above the window's level."""
    if clip.size > window.size:
        start = rng.integers(clip.size - window.size + 1)
        clip = clip[start: start + window.size]
    offset = rng.integers(window.size - clip.size + 1)
    rms_call = np.sqrt(np.mean(clip.astype(np.float64) ** 2)) + 1e-12
    rms_background = np.sqrt(np.mean(window.astype(np.float64) ** 2)) + 1e-12
    gain = rms_background / rms_call * 10 ** (snr_db / 20)
    window[offset: offset + clip.size] += (gain * clip).astype(np.float32)


Background = Callable[[np.random.Generator], tuple[np.ndarray, np.ndarray]]
"""Draws a 5-s background window and its target vector (what it already holds)."""


def mixed_windows(calls: Sequence[np.ndarray], call_targets: list[np.ndarray], background: Background,
                  params: SynthesisParams, rng: np.random.Generator) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(5-s window, target vector)``: each call mixed ``windows_per_recording`` times into a drawn
    background (sometimes with further random calls, see ``extra_call_probability``), then
    ``background_windows`` drawn backgrounds alone. A mixture's target is the element-wise maximum of
    the targets of its parts (0/1 labels or soft teacher scores)."""
    for clip, call_target in zip(calls, call_targets, strict=True):
        for _ in range(params.windows_per_recording):
            window, target = background(rng)
            place_call(window, clip, rng.uniform(*params.snr_db), rng)
            target = np.maximum(target, call_target)
            for probability in params.extra_call_probability:
                if rng.random() >= probability:
                    break
                other = int(rng.integers(len(calls)))
                place_call(window, calls[other], rng.uniform(*params.snr_db), rng)
                target = np.maximum(target, call_targets[other])
            yield _limit(window), target
    for _ in range(params.background_windows):
        yield background(rng)


def training_windows(clips: list[np.ndarray], labels: list[int], backgrounds: list[np.ndarray], n_species: int,
                     params: SynthesisParams, rng: np.random.Generator) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Labelled windows (:func:`mixed_windows`) of focal clips (one species index each) over random crops
    of ``backgrounds``, which count as holding no call."""
    one_hot = np.eye(n_species, dtype=np.float32)

    def unlabelled_crop(generator: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        return background_crop(backgrounds, generator), np.zeros(n_species, dtype=np.float32)

    return mixed_windows(clips, [one_hot[label] for label in labels], unlabelled_crop, params, rng)


def window_count(n_clips: int, params: SynthesisParams) -> int:
    """How many windows :func:`training_windows` yields for ``n_clips`` recordings."""
    return n_clips * params.windows_per_recording + params.background_windows


def _limit(window: np.ndarray) -> np.ndarray:
    peak = float(np.abs(window).max())
    return window / peak if peak > 1.0 else window
