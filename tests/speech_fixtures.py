"""Rendered speech (Debian's espeak-ng) mixed into a synthetic bird-like soundscape, and a speech-energy probe."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

from daemon.constants import SAMPLE_RATE

SENTENCE = "Good morning. Could you bring the ladder over here, we need to fix the gate before the rain comes."


def render_speech(path: Path, text: str = SENTENCE) -> np.ndarray:
    """``text`` spoken by espeak-ng, as float32 at :data:`SAMPLE_RATE` (skips the test if espeak-ng is missing)."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (make apt)")
    subprocess.run(["espeak-ng", "-w", str(path), text], check=True, capture_output=True)
    speech, rate = sf.read(path, dtype="float32")
    return soxr.resample(speech, rate, SAMPLE_RATE).astype(np.float32)


def soundscape(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """Quiet noise with bird-like frequency sweeps (3-6 kHz), one call a second: no energy below 1 kHz."""
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    sweep = np.sin(2 * np.pi * (3000 * t + 1500 * (t % 0.4) ** 2 / 0.4)) * ((t % 1.0) < 0.4)
    return (0.3 * sweep + 0.003 * rng.standard_normal(t.size)).astype(np.float32)


def mix(background: np.ndarray, speech: np.ndarray, at_s: float, gain: float = 0.5) -> np.ndarray:
    """``background`` with ``speech`` added from ``at_s`` seconds on."""
    out = background.copy()
    first = round(at_s * SAMPLE_RATE)
    out[first: first + speech.size] += gain * speech[: out.size - first]
    return out


def speech_frames(audio: np.ndarray, frame_s: float = 0.1) -> int:
    """100-ms frames with speech-band (150-1000 Hz) energy well above the soundscape's (which has none there)."""
    n = round(frame_s * SAMPLE_RATE)
    frames = audio[: audio.size // n * n].reshape(-1, n)
    spectrum = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    freqs = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    band = spectrum[:, (freqs >= 150) & (freqs <= 1000)].sum(axis=1) / n
    return int((band > 0.05).sum())
