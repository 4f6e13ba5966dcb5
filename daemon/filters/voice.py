"""Speech in the audio, for bundles without human classes: Silero VAD (its ONNX model from the ``silero-vad``
wheel) through onnxruntime, as a plain stage. ``pip install 'birdd[vad]'`` and ``silero-vad --no-deps``
(the wheel's own dependencies, torch, are not needed: only its model file is read).

Audio is resampled to 16 kHz (``soxr``, streaming) and judged in 32-ms frames; a frame whose speech probability
reaches the threshold is speech. 0.74 % of one core per audio second (bench/vad_choice.py, docs/filters.md).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import soxr

from daemon.constants import SAMPLE_RATE
from daemon.errors import ConfigError

VAD_RATE = 16_000
FRAME = 512
"""samples per frame at 16 kHz (Silero's frame for 16 kHz)"""
CONTEXT = 64
"""samples of the previous frame Silero sees before each frame"""
STEP = FRAME * SAMPLE_RATE // VAD_RATE
"""stream samples per frame"""


def vad_installed() -> bool:
    """Are onnxruntime and the silero-vad wheel there?"""
    return importlib.util.find_spec("onnxruntime") is not None and importlib.util.find_spec("silero_vad") is not None


def silero_model_path() -> Path:
    """The ONNX model inside the installed silero-vad wheel (found without importing it: that would import torch)."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("filters.privacy_detector: the voice-activity detector needs the silero-vad wheel "
                          "(pip install --no-deps silero-vad)")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "silero_vad.onnx"
    if not path.is_file():
        raise ConfigError(f"filters.privacy_detector: {path}: no Silero model in the silero-vad wheel")
    return path


class SileroVoice:
    """Stream blocks -> speech spans (stream samples). One stream at a time; a gap starts it afresh."""

    def __init__(self, threshold: float, threads: int = 1) -> None:
        try:
            import onnxruntime
        except ImportError:
            raise ConfigError("filters.privacy_detector: the voice-activity detector needs onnxruntime "
                              "(pip install 'birdd[vad]')") from None
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = threads
        self._session = onnxruntime.InferenceSession(str(silero_model_path()), options,
                                                     providers=["CPUExecutionProvider"])
        self._threshold = threshold
        self._rate = np.array(VAD_RATE, dtype=np.int64)
        self._expected: int | None = None
        self._restart(0)

    def _restart(self, start_sample: int) -> None:
        self._resampler = soxr.ResampleStream(SAMPLE_RATE, VAD_RATE, 1, dtype="float32")
        self._state = np.zeros((2, 1, 128), dtype=np.float32)
        self._pending = np.zeros(CONTEXT, dtype=np.float32)  # context, then samples not judged yet
        self._origin = start_sample  # stream sample of the first frame
        self._frames = 0

    @property
    def judged_until(self) -> int:
        """Stream sample up to which the audio has been judged."""
        return self._origin + self._frames * STEP

    def push(self, start_sample: int, samples: np.ndarray) -> list[tuple[int, int]]:
        """Judge a block; the speech frames it completes, as stream sample spans ``[start, end)``."""
        if start_sample != self._expected:
            self._restart(start_sample)
        self._expected = start_sample + samples.size
        self._pending = np.concatenate([self._pending, self._resampler.resample_chunk(samples)])
        spans = []
        while self._pending.size >= CONTEXT + FRAME:
            frame = self._pending[: CONTEXT + FRAME][None, :]
            probability, self._state = self._session.run(None, {"input": frame, "state": self._state,
                                                                "sr": self._rate})
            if probability[0, 0] >= self._threshold:
                first = self.judged_until
                spans.append((first, first + STEP))
            self._frames += 1
            self._pending = self._pending[FRAME:]
        return spans
