"""Read audio files into the model's format: float32 mono at :data:`SAMPLE_RATE`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from daemon.errors import AudioError

SAMPLE_RATE = 32_000
"""The model's sample rate (hertz); every stage downstream of a source works at this rate."""

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".opus")
"""File name endings that replay and training pick up when given a folder."""


def read_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode ``path`` to a float32 mono array at ``sample_rate``: shape ``(n_samples,)``.

    Stereo is downmixed by averaging channels; other rates are converted with soxr. An unreadable,
    empty, truncated or non-audio file raises :class:`AudioError` naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such file")
    try:
        with sf.SoundFile(path) as fh:
            rate = fh.samplerate
            data = fh.read(dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as exc:
        raise AudioError(f"{path}: cannot decode audio ({_reason(exc)})") from None
    if data.shape[0] == 0:
        raise AudioError(f"{path}: no audio samples")
    mono = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1, dtype=np.float32)
    if rate != sample_rate:
        mono = soxr.resample(mono, rate, sample_rate, quality="HQ").astype(np.float32, copy=False)
    if not np.isfinite(mono).all():
        raise AudioError(f"{path}: audio holds NaN or infinite samples")
    return np.ascontiguousarray(mono)


def find_audio_files(paths: list[str | Path]) -> list[Path]:
    """Expand files and folders (recursively, sorted) into audio files; a missing path raises AudioError."""
    found: list[Path] = []
    for item in map(Path, paths):
        if item.is_dir():
            found.extend(sorted(p for p in item.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file()))
        elif item.is_file():
            found.append(item)
        else:
            raise AudioError(f"{item}: no such file or folder")
    return found


def _reason(exc: Exception) -> str:
    return str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
