"""The TFLite backend: a pretrained audio model (BirdNET, Perch-style) gives each window its vector.

Two streaming stages, as for every backend:

- the encoder, :class:`ModelRateResampler`, turns the 32 kHz stream into the model's rate (a soxr
  stream keeps its state across pushes, so any chunking of the input gives the same samples);
- the pooler, :class:`ChunkWindowPooler`, cuts model inputs ("chunks") at fixed places in each window
  (BirdNET: 0-3 s and 2-5 s), runs the model on each chunk once (overlapping windows share chunks)
  and averages the chunk vectors into the window vector.

The model runs in the pooler because only the pooler knows the window grid: the chunks a grid needs
depend on its hop, and computing them for every possible hop would cost BirdNET 2.5 times more at the
usual 5-s hop. A window's vector is the model's embedding (a head trained by ``birdd train --backend
tflite``) or its own class logits (a zero-shot bundle, whose head just selects columns).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soxr

from daemon.audio.kaiser_resampler import KaiserFastStream
from daemon.constants import SAMPLE_RATE
from daemon.errors import BundleError
from daemon.model.bundle import MANIFEST
from daemon.model.tflite_runtime import ChunkEmbedder, ModelFile, locate_model_file
from daemon.model.tflite_spec import TFLiteSpec
from daemon.model.windows import BirdNETGrid, Grid, WindowGrid, WindowVector

NAME = "tflite"
RESAMPLER_SETTLE_SAMPLES = SAMPLE_RATE // 10
"""stream samples a soxr HQ resampler needs before its output equals a stream started earlier (100 ms, ample)"""
OUTPUTS = ("embedding", "logits")
"""What a bundle's window vector is made of: the model's embedding tensor or its logits tensor."""


class ModelRateResampler:
    """Streaming stage: float32 samples at ``stream_rate`` in, blocks at the model's rate out; ``resampler`` is
    ``soxr`` (HQ) or ``kaiser_fast`` (librosa's, as BirdNET-Analyzer reads files: the BirdNET grid)."""

    def __init__(self, model_rate: int, stream_rate: int = SAMPLE_RATE, resampler: str = "soxr") -> None:
        self.model_rate = model_rate
        self.stream_rate = stream_rate
        self.resampler = resampler
        self._stream = self._new_stream()

    def _new_stream(self) -> soxr.ResampleStream | KaiserFastStream | None:
        if self.model_rate == self.stream_rate:
            return None
        if self.resampler == "kaiser_fast":
            return KaiserFastStream(self.stream_rate, self.model_rate)
        return soxr.ResampleStream(self.stream_rate, self.model_rate, 1, dtype="float32", quality="HQ")

    def push(self, samples: np.ndarray) -> list[np.ndarray]:
        """The model-rate samples that ``samples`` make available (possibly none yet)."""
        samples = np.asarray(samples, dtype=np.float32)
        out = samples.copy() if self._stream is None else self._stream.resample_chunk(samples, last=False)
        return [out] if out.size else []

    def flush(self) -> list[np.ndarray]:
        """End of stream: the resampler's last samples; ready for a new stream."""
        if self._stream is None:
            return []
        out = self._stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
        self._stream = self._new_stream()
        return [out] if out.size else []


TRAILING_CHUNK_MIN_FILL = 0.5
"""a trailing window pools the chunks at least this share of which is audio (its first chunk always); part
of the teacher's score cache key and of a student's record of its teacher"""


class ChunkWindowPooler:
    """Model-rate blocks in, :class:`WindowVector` s out, on a :class:`WindowGrid`.

    Window ``w`` uses the chunks starting at ``start(w) + offset`` for each offset of the spec. A window
    is emitted once its last chunk is complete; at the end of the stream, the trailing windows that the
    grid keeps are pooled over the chunks at least half full of audio, zero-padded (a window
    always keeps its first chunk): a 2.4-s clip is scored on its 0-3 s chunk alone, not pooled with a
    2-5 s chunk of 0.4 s of audio and 2.6 s of padding (:data:`TRAILING_CHUNK_MIN_FILL`).
    Sample counts are compared at the model rate, the grid's sizes converted to it.
    """

    def __init__(self, grid: WindowGrid, spec: TFLiteSpec, embed: Callable[[np.ndarray], np.ndarray]) -> None:
        self.grid = grid
        self._rate = spec.sample_rate
        self._chunk = spec.chunk_samples
        self._min_fill = math.ceil(TRAILING_CHUNK_MIN_FILL * self._chunk)
        self._offsets = spec.offset_samples()
        self._combine = np.mean if spec.chunk_pooling == "mean" else np.max
        self._embed = embed
        self.reset()

    def reset(self) -> None:
        """A new stream."""
        self._audio = np.zeros(0, dtype=np.float32)
        self._audio_start = 0  # model-rate index of self._audio[0]
        self._seen = 0  # model-rate samples received
        self._chunks: dict[int, np.ndarray] = {}  # chunk start -> vector, for chunks later windows may share
        self._next_window = 0

    def push(self, block: np.ndarray) -> list[WindowVector]:
        """Add model-rate samples; return the windows they complete."""
        self._audio = np.concatenate([self._audio, block.astype(np.float32, copy=False)])
        self._seen += block.size
        out = []
        while (starts := self._chunk_starts(self._next_window))[-1] + self._chunk <= self._seen:
            out.append(self._emit(starts))
        return out

    def flush(self) -> list[WindowVector]:
        """End of stream: emit the trailing windows the grid keeps (see :class:`WindowGrid`), then reset."""
        out = []
        while self.grid.keeps_at_end(self._next_window, self._seen, self._model_index):
            starts = self._chunk_starts(self._next_window)
            out.append(self._emit([s for s in starts if self._seen - s >= self._min_fill] or starts[:1]))
        self.reset()
        return out

    def _model_index(self, stream_index: int) -> int:
        return stream_index * self._rate // SAMPLE_RATE

    def _chunk_starts(self, window: int) -> list[int]:
        base = self._model_index(self.grid.start(window))
        return [base + offset for offset in self._offsets]

    def _chunk_vector(self, start: int) -> np.ndarray:
        if start not in self._chunks:
            piece = self._audio[start - self._audio_start: start - self._audio_start + self._chunk]
            if piece.size < self._chunk:
                piece = np.pad(piece, (0, self._chunk - piece.size))
            self._chunks[start] = self._embed(piece)
        return self._chunks[start]

    def _emit(self, starts: list[int]) -> WindowVector:
        w = self._next_window
        vector = self._combine(np.stack([self._chunk_vector(s) for s in starts]), axis=0).astype(np.float32)
        self._next_window += 1
        keep_from = self._chunk_starts(self._next_window)[0]
        self._chunks = {s: v for s, v in self._chunks.items() if s >= keep_from}
        cut = min(max(keep_from - self._audio_start, 0), self._audio.size)
        self._audio = self._audio[cut:]
        self._audio_start += cut
        return WindowVector(w, self.grid.start(w), self.grid.end(w), vector)


class BirdNETChunkPooler:
    """Model-rate blocks in, one :class:`WindowVector` per chunk of a :class:`BirdNETGrid` out.

    A chunk is emitted as soon as it is complete; at the end of the stream, the chunks that start before it and
    hold at least :meth:`BirdNETGrid.min_chunk` samples, zero-padded (birdnetlib's ``process_audio_data``).
    """

    def __init__(self, grid: BirdNETGrid, spec: TFLiteSpec, embed: Callable[[np.ndarray], np.ndarray]) -> None:
        if spec.chunk_samples != grid.chunk_length(spec.sample_rate):
            raise BundleError(f"TFLite spec {spec.name!r}: the BirdNET grid needs {grid.chunk_length(1):g}-s chunks, "
                              f"the model takes {spec.chunk_seconds:g} s")
        self.grid = grid
        self._rate = spec.sample_rate
        self._step = grid.chunk_step(self._rate)
        self._chunk = spec.chunk_samples
        self._min_chunk = grid.min_chunk(self._rate)
        self._embed = embed
        self.reset()

    def reset(self) -> None:
        """A new stream."""
        self._audio = np.zeros(0, dtype=np.float32)
        self._audio_start = 0  # model-rate index of self._audio[0]
        self._seen = 0
        self._next = 0  # next chunk's index

    def push(self, block: np.ndarray) -> list[WindowVector]:
        """Add model-rate samples; return the chunks they complete."""
        self._audio = np.concatenate([self._audio, block.astype(np.float32, copy=False)])
        self._seen += block.size
        out = []
        while self._next * self._step + self._chunk <= self._seen:
            out.append(self._emit())
        return out

    def flush(self) -> list[WindowVector]:
        """End of stream: the trailing chunks with enough audio, zero-padded; then reset."""
        out = []
        while self._seen - self._next * self._step >= self._min_chunk:
            out.append(self._emit())
        self.reset()
        return out

    def _emit(self) -> WindowVector:
        k, start = self._next, self._next * self._step
        piece = self._audio[start - self._audio_start: start - self._audio_start + self._chunk]
        vector = self._embed(np.pad(piece, (0, self._chunk - piece.size)) if piece.size < self._chunk else piece)
        self._next += 1
        cut = min(self._next * self._step - self._audio_start, self._audio.size)
        self._audio = self._audio[cut:]
        self._audio_start += cut
        first = start * self.grid.stream_rate // self._rate
        return WindowVector(k, first, first + self.grid.chunk_length(self.grid.stream_rate), vector)


@dataclass
class TFLiteBackend:
    """A TFLite model file, its spec, and which of its tensors makes the window vector."""

    spec: TFLiteSpec
    model_path: Path
    model_sha256: str
    output: str
    embedder: ChunkEmbedder
    name: str = NAME

    @classmethod
    def open(cls, model: ModelFile, spec: TFLiteSpec, output: str = "embedding", threads: int = 1) -> TFLiteBackend:
        """Run ``model`` as ``spec`` describes; ``output`` is ``embedding`` or ``logits``."""
        if output not in OUTPUTS:
            raise BundleError(f"TFLite backend: output must be one of {', '.join(OUTPUTS)}, got {output!r}")
        tensor = spec.embedding_tensor if output == "embedding" else spec.logits_tensor
        if not tensor:
            raise BundleError(f"TFLite spec {spec.name!r}: no {output}_tensor, so it cannot give {output}")
        embedder = ChunkEmbedder(model, spec, tensor, f"{output}_tensor", threads)
        return cls(spec, model.path, model.sha256, output, embedder)

    @classmethod
    def from_bundle(cls, params: dict, bundle_dir: Path, threads: int = 1) -> TFLiteBackend:
        """Build from the manifest's ``backend_params``; the model file must be the one the bundle names."""
        source = f"{bundle_dir / MANIFEST}: backend_params"
        spec = TFLiteSpec.from_dict(params["spec"], f"{source}.spec")
        for key in ("model_sha256", "output"):
            if not isinstance(params.get(key), str):
                raise BundleError(f"{source}.{key}: missing or not a string")
        model = ModelFile.read(locate_model_file(spec, bundle_dir, params.get("model_path", "")))
        model.check_sha256(params["model_sha256"])
        return cls.open(model, spec, params["output"], threads)

    def params(self) -> dict:
        """The manifest's ``backend_params`` for this backend."""
        return {"spec": self.spec.to_dict(), "output": self.output, "model_file": self.model_path.name,
                "model_path": str(self.model_path.resolve()), "model_sha256": self.model_sha256}

    @property
    def dim(self) -> int:
        """Length of a window vector."""
        return self.embedder.dim

    def context_samples(self) -> int:
        """Audio a stream started mid-recording needs before its first window: the resampler's filter settles
        within a few milliseconds (equal to the unsplit stream to float rounding, see :mod:`daemon.audio.files`)."""
        return RESAMPLER_SETTLE_SAMPLES

    def encoder(self, stream_rate: int = SAMPLE_RATE, resampler: str = "soxr") -> ModelRateResampler:
        """A new streaming encoder (audio at ``stream_rate`` -> model-rate audio, see :class:`ModelRateResampler`)."""
        return ModelRateResampler(self.spec.sample_rate, stream_rate, resampler)

    def pooler(self, grid: Grid) -> ChunkWindowPooler | BirdNETChunkPooler:
        """A new streaming pooler (model-rate audio -> window vectors) on ``grid``."""
        if isinstance(grid, BirdNETGrid):
            return BirdNETChunkPooler(grid, self.spec, self.embedder)
        return ChunkWindowPooler(grid, self.spec, self.embedder)
