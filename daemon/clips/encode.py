"""A clip's audio as the bytes of a FLAC or Ogg/Opus file (``soundfile``), encoded in memory.

Encoding in memory first tells the disk policy the exact size before anything is written.
"""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf
import soxr

OPUS_SAMPLE_RATE = 48_000
"""Opus encodes 8, 12, 16, 24 or 48 kHz; 32-kHz audio is resampled to 48 kHz (keeps everything up to 16 kHz)"""

EXTENSIONS = {"flac": "flac", "ogg": "ogg"}
"""file name extension of each ``clips.format``"""


def encode_clip(samples: np.ndarray, sample_rate: int, fmt: str) -> bytes:
    """``samples`` (float32 mono) as a 16-bit FLAC (``fmt="flac"``) or an Opus-in-Ogg (``"ogg"``) file."""
    audio = np.clip(samples, -1.0, 1.0)
    out = io.BytesIO()
    if fmt == "flac":
        sf.write(out, audio, sample_rate, format="FLAC", subtype="PCM_16")
    elif fmt == "ogg":
        resampled = soxr.resample(audio, sample_rate, OPUS_SAMPLE_RATE) if sample_rate != OPUS_SAMPLE_RATE else audio
        sf.write(out, resampled, OPUS_SAMPLE_RATE, format="OGG", subtype="OPUS")
    else:
        raise ValueError(f"clip format {fmt!r}: expected one of {', '.join(EXTENSIONS)}")
    return out.getvalue()
