"""Read audio files into the model's format: float32 mono at :data:`SAMPLE_RATE`."""

from __future__ import annotations

import stat
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from daemon.constants import SAMPLE_RATE
from daemon.errors import AudioError

MAX_AMPLITUDE = 1e6
"""largest sample magnitude accepted (full scale is 1): beyond it the log-mel power overflows float32"""

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".opus")
"""File name endings that replay and training pick up when given a folder."""


def read_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode ``path`` to a float32 mono array at ``sample_rate``: shape ``(n_samples,)``.

    Stereo is downmixed by averaging channels; other rates are converted with soxr. An unreadable,
    empty, truncated or non-audio file, NaN, infinite or absurdly large samples (beyond
    :data:`MAX_AMPLITUDE`), and anything but a regular file raise :class:`AudioError` naming the file.
    """
    path = Path(path)
    _require_regular_file(path)
    try:
        with sf.SoundFile(path) as fh:
            rate = fh.samplerate
            data = fh.read(dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as exc:
        raise AudioError(f"{path}: cannot decode audio ({_reason(exc)})") from None
    mono = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1, dtype=np.float32)
    if rate != sample_rate and mono.size:
        mono = soxr.resample(mono, rate, sample_rate, quality="HQ").astype(np.float32, copy=False)
    if mono.size == 0:  # also a few samples at a high rate, which resample to none
        raise AudioError(f"{path}: no audio samples" + (f" at {sample_rate} Hz" if data.shape[0] else ""))
    if not np.isfinite(mono).all():
        raise AudioError(f"{path}: audio holds NaN or infinite samples")
    if np.abs(mono).max() > MAX_AMPLITUDE:
        raise AudioError(f"{path}: samples beyond +-{MAX_AMPLITUDE:g} times full scale (not a recording)")
    return np.ascontiguousarray(mono)


def find_audio_files(paths: list[str | Path]) -> list[Path]:
    """Expand files and folders (recursively, sorted) into audio files; a missing path raises AudioError.

    Inside a folder, everything named like audio but a folder is listed, so a dangling link, a link loop or a
    device node is reported by :func:`read_audio` instead of skipped in silence.
    """
    found: list[Path] = []
    for item in map(Path, paths):
        if item.is_dir():
            found.extend(sorted(p for p in item.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and not p.is_dir()))
        elif item.exists() or item.is_symlink():  # a FIFO or a link loop too: read_audio says what it is
            found.append(item)
        else:
            raise AudioError(f"{item}: no such file or folder")
    return found


def _require_regular_file(path: Path) -> None:
    """Raise AudioError unless ``path`` is (a link to) a regular file: says which of missing, a folder, a link
    loop or unreadable it is."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise AudioError(f"{path}: no such file") from None
    except OSError as exc:  # a symlink loop, a path too long, no permission on a folder on the way
        raise AudioError(f"{path}: cannot open ({exc.strerror})") from None
    if not stat.S_ISREG(mode):
        raise AudioError(f"{path}: not a regular file" + (" (a folder)" if stat.S_ISDIR(mode) else ""))


def _reason(exc: Exception) -> str:
    return str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
