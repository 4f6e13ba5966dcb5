"""Read audio files into the model's format: float32 mono at :data:`SAMPLE_RATE`, whole or in blocks."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from daemon.audio.kaiser_resampler import KaiserFastStream
from daemon.constants import SAMPLE_RATE
from daemon.errors import AudioError

MAX_AMPLITUDE = 1e6
"""largest sample magnitude accepted (full scale is 1): beyond it the log-mel power overflows float32"""

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".opus")
"""File name endings that replay and training pick up when given a folder."""

BLOCK_SECONDS = 10
"""Length of the blocks :func:`read_audio_blocks` decodes at a time (seconds of the file's own rate)."""

RESAMPLERS = ("soxr", "kaiser_fast")
"""How another rate is converted: soxr's HQ stream (birdd's own), or librosa's kaiser_fast (BirdNET-Analyzer's)."""

_DECODE_ERRORS = (sf.LibsndfileError, RuntimeError, OSError, ValueError)


def read_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode ``path`` to a float32 mono array at ``sample_rate``: shape ``(n_samples,)``.

    The blocks of :func:`read_audio_blocks` joined: stereo is downmixed by averaging channels; other rates are
    converted with soxr. An unreadable, empty, truncated or non-audio file, NaN, infinite or absurdly large
    samples (beyond :data:`MAX_AMPLITUDE`), and anything but a regular file raise :class:`AudioError` naming
    the file.
    """
    blocks = list(read_audio_blocks(path, sample_rate=sample_rate))
    return blocks[0] if len(blocks) == 1 else np.concatenate(blocks)


def read_audio_blocks(path: str | Path, start: int = 0, stop: int | None = None, sample_rate: int = SAMPLE_RATE,
                      block_seconds: float = BLOCK_SECONDS, resampler: str = "soxr") -> Iterator[np.ndarray]:
    """Decode ``path`` block by block: float32 mono arrays at ``sample_rate``, memory bounded by the block.

    ``start`` and ``stop`` are sample indices at ``sample_rate`` (``stop=None``: to the end); ``start`` must
    fall on a whole sample of the file's own rate. Joined, the blocks equal :func:`read_audio` sliced to
    ``[start, stop)`` (the resampler is a soxr stream, which keeps its state across blocks; a stream started
    mid-file differs from the whole-file one only within the resampler's first few milliseconds).
    ``resampler`` ``kaiser_fast`` resamples as ``librosa.load(res_type="kaiser_fast")`` does, from the file's start
    (:mod:`daemon.audio.kaiser_resampler`). Errors raise :class:`AudioError` naming the file, at the block where
    they occur.
    """
    path = Path(path)
    _require_regular_file(path)
    try:
        with sf.SoundFile(path) as fh:
            rate = fh.samplerate
            first = start * rate // sample_rate
            if first * sample_rate != start * rate:
                raise AudioError(f"{path}: start sample {start} does not fall on a sample at {rate} Hz")
            if first:
                fh.seek(first)
            stream = None if rate == sample_rate else _resample_stream(resampler, rate, sample_rate)
            block = max(1, round(block_seconds * rate))
            done, frames = start, 0  # stream index of the next sample to yield; frames read from the file
            while stop is None or done < stop:
                data = fh.read(block, dtype="float32", always_2d=True)
                frames += data.shape[0]
                last = data.shape[0] < block
                with np.errstate(invalid="ignore", over="ignore"):  # NaN and inf: refused below, naming the file
                    mono = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1, dtype=np.float32)
                if stream is not None:
                    mono = stream.resample_chunk(np.ascontiguousarray(mono), last=last)
                if stop is not None:
                    mono = mono[: stop - done]
                _check_samples(path, mono)
                if mono.size:
                    done += mono.size
                    yield np.ascontiguousarray(mono, dtype=np.float32)
                if last:
                    break
            if done == start == 0:  # also a few samples at a high rate, which resample to none
                raise AudioError(f"{path}: no audio samples" + (f" at {sample_rate} Hz" if frames else ""))
    except _DECODE_ERRORS as exc:
        raise AudioError(f"{path}: cannot decode audio ({_reason(exc)})") from None


def _resample_stream(resampler: str, old: int, new: int) -> soxr.ResampleStream | KaiserFastStream:
    if resampler == "kaiser_fast":
        return KaiserFastStream(old, new)
    return soxr.ResampleStream(old, new, 1, dtype="float32", quality="HQ")


def audio_length(path: str | Path, sample_rate: int = SAMPLE_RATE) -> int:
    """Length of ``path`` in samples at ``sample_rate``, from its header (the decoded length may differ by one)."""
    _require_regular_file(Path(path))  # a FIFO would block
    try:
        info = sf.info(str(path))
    except _DECODE_ERRORS as exc:
        raise AudioError(f"{path}: cannot decode audio ({_reason(exc)})") from None
    return info.frames * sample_rate // info.samplerate


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


def _check_samples(path: Path, mono: np.ndarray) -> None:
    if not np.isfinite(mono).all():
        raise AudioError(f"{path}: audio holds NaN or infinite samples")
    if mono.size and np.abs(mono).max() > MAX_AMPLITUDE:
        raise AudioError(f"{path}: samples beyond +-{MAX_AMPLITUDE:g} times full scale (not a recording)")


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
    try:  # libsndfile would say only "System error."
        os.close(os.open(path, os.O_RDONLY))
    except OSError as exc:
        raise AudioError(f"{path}: cannot open ({exc.strerror})") from None


def _reason(exc: Exception) -> str:
    return str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
