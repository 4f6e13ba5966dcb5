"""Streaming log-mel front end: audio chunks in, blocks of log-mel frames out.

Framing is causal: frame ``i`` covers samples ``[(i + 1) * hop - n_fft, (i + 1) * hop)`` of the
stream (the stream is preceded by ``n_fft - hop`` zeros), so frame ``i`` ends exactly at sample
``(i + 1) * hop``. A 5-s window therefore holds exactly 500 frames (at a 10 ms hop), and its last
frame is complete the moment its last sample arrives: no look-ahead, no centre padding.

Frames are computed in blocks of ``block_frames`` aligned to absolute frame indices, and a whole
file is just one long push followed by :meth:`StreamingLogMel.flush`. Every block is therefore
computed from the same samples with the same array shapes however the audio was chunked, and the
streamed frames equal the whole-file frames bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.fft

from daemon.constants import SAMPLE_RATE
from daemon.errors import BundleError
from daemon.model.bundle import ManifestParams


@dataclass(frozen=True)
class FrontEndParams(ManifestParams):
    """Log-mel parameters; they travel in the model manifest so training and serving agree."""

    sample_rate: int = SAMPLE_RATE
    """audio sample rate (hertz)"""
    n_fft: int = 512
    """FFT and frame length (samples): 16 ms at 32 kHz"""
    hop: int = 320
    """frame hop (samples): 10 ms at 32 kHz; divides the 5-s window"""
    n_mels: int = 64
    """mel bands"""
    fmin: float = 300.0
    """lowest band edge (hertz)"""
    fmax: float = 15_000.0
    """highest band edge (hertz)"""
    block_frames: int = 100
    """frames computed together (1 s at a 10 ms hop); divides every window hop"""

    def __post_init__(self) -> None:
        checks = {
            "n_fft": self.n_fft >= 16,
            "hop": 0 < self.hop <= self.n_fft,
            "n_mels": self.n_mels >= 1,
            "fmax": 0 <= self.fmin < self.fmax <= self.sample_rate / 2,
            "block_frames": self.block_frames >= 1,
        }
        for name, ok in checks.items():
            if not ok:
                raise BundleError(f"front end: invalid {name} in {self}")


@dataclass(frozen=True)
class FrameBlock:
    """Consecutive log-mel frames: ``logmel`` has shape ``(n_frames, n_mels)``, float32."""

    first_frame: int
    logmel: np.ndarray


def hz_to_mel(freq: np.ndarray) -> np.ndarray:
    """Slaney mel scale (linear below 1 kHz, logarithmic above), as librosa's default."""
    freq = np.asarray(freq, dtype=np.float64)
    mel = freq / (200.0 / 3)
    log_region = freq >= 1000.0
    return np.where(log_region, 15.0 + np.log(np.maximum(freq, 1e-9) / 1000.0) / (np.log(6.4) / 27.0), mel)


def mel_to_hz(mel: np.ndarray) -> np.ndarray:
    """Inverse of :func:`hz_to_mel`."""
    mel = np.asarray(mel, dtype=np.float64)
    return np.where(mel >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0)), mel * (200.0 / 3))


@lru_cache(maxsize=8)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """Slaney-normalised triangular filters, shape ``(1 + n_fft // 2, n_mels)`` float32 (read-only).

    Equals ``librosa.filters.mel(...).T`` without importing librosa on the runtime path.
    """
    fft_freqs = np.linspace(0, sample_rate / 2, 1 + n_fft // 2)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper)) * (2.0 / (edges[2:] - edges[:-2]))[:, None]
    basis = np.ascontiguousarray(weights.T, dtype=np.float32)
    basis.flags.writeable = False
    return basis


class StreamingLogMel:
    """Incremental log-mel: :meth:`push` audio of any length, get every completed :class:`FrameBlock`."""

    def __init__(self, params: FrontEndParams) -> None:
        self.params = params
        self._basis = mel_filterbank(params.sample_rate, params.n_fft, params.n_mels, params.fmin, params.fmax)
        self._window = np.hanning(params.n_fft + 1)[:-1].astype(np.float32)  # periodic Hann
        self._lead = params.n_fft - params.hop  # zeros before sample 0: frame i ends at (i + 1) * hop
        self.reset()

    def push(self, samples: np.ndarray) -> list[FrameBlock]:
        """Append audio (float32 mono at ``params.sample_rate``); return the blocks it completes."""
        self._buffer = np.concatenate([self._buffer, np.asarray(samples, dtype=np.float32)])
        blocks = []
        while self._available_frames() >= self.params.block_frames:
            blocks.append(self._compute(self.params.block_frames))
        return blocks

    def flush(self) -> list[FrameBlock]:
        """End of stream: return the last, partial block (if any frame is complete) and reset."""
        n = self._available_frames()
        blocks = [self._compute(n)] if n > 0 else []
        self.reset()
        return blocks

    def reset(self) -> None:
        """Start a new stream at sample 0."""
        self._buffer = np.zeros(self._lead, dtype=np.float32)
        self._buffer_start = -self._lead  # stream index of _buffer[0]
        self._next_frame = 0

    def _frame_start(self, frame: int) -> int:
        return frame * self.params.hop - self._lead

    def _available_frames(self) -> int:
        offset = self._frame_start(self._next_frame) - self._buffer_start
        usable = self._buffer.shape[0] - offset - self.params.n_fft
        return 0 if usable < 0 else min(usable // self.params.hop + 1, self.params.block_frames)

    def _compute(self, n_frames: int) -> FrameBlock:
        p = self.params
        offset = self._frame_start(self._next_frame) - self._buffer_start
        span = self._buffer[offset: offset + (n_frames - 1) * p.hop + p.n_fft]
        # the frames as a strided view of the buffer (what sliding_window_view(span, n_fft)[::hop] gives, without its
        # per-call checks: this runs once per block)
        frames = np.lib.stride_tricks.as_strided(span, (n_frames, p.n_fft), (p.hop * span.strides[0], span.strides[0]),
                                                 writeable=False)
        spectrum = scipy.fft.rfft(frames * self._window, axis=1, workers=1)
        power = spectrum.real**2 + spectrum.imag**2
        logmel = np.log(power @ self._basis + 1e-10, dtype=np.float32)
        block = FrameBlock(self._next_frame, logmel)
        self._next_frame += n_frames
        drop = self._frame_start(self._next_frame) - self._buffer_start
        self._buffer = self._buffer[drop:]
        self._buffer_start += drop
        return block


def logmel_frames(samples: np.ndarray, params: FrontEndParams) -> np.ndarray:
    """All log-mel frames of a whole signal, shape ``(n_frames, n_mels)`` (the streaming path, pushed once)."""
    extractor = StreamingLogMel(params)
    blocks = extractor.push(samples) + extractor.flush()
    if not blocks:
        return np.zeros((0, params.n_mels), dtype=np.float32)
    return np.concatenate([b.logmel for b in blocks])
