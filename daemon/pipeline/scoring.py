"""The one scoring pipeline: audio blocks -> backend units -> windows -> head scores -> window results.

``birdd replay`` pushes a file's samples through it; the daemon's pipeline thread pushes what it
reads from the ring. Both run the same object, so "the daemon scores a file as replay does" holds by
construction, including segmentation: a block whose source differs from the previous one, or which
does not start where the previous one ended (a gap), closes the current segment (its trailing
windows are scored) and opens a new one whose windows are aligned to its first sample.

A model reload is a new pipeline: the old one is flushed, the new one starts a fresh segment.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from daemon.constants import SAMPLE_RATE
from daemon.errors import BundleError
from daemon.model.loader import Model, Species
from daemon.model.windows import BIRDNET_CHUNK_SECONDS, BirdNETGrid, Grid, Stage, WindowGrid, WindowVector
from daemon.pipeline.cascade import STUDENT, TEACHER, Cascade
from daemon.pipeline.detection import Detection
from daemon.pipeline.policy import DetectionMaker

if TYPE_CHECKING:
    from daemon.filters.chain import FilterChain


def speaks_birdnet(model: Model) -> bool:
    """Whether ``model`` is a zero-shot BirdNET bundle: a TFLite model of 3-s chunks whose scores are its logits."""
    backend = model.backend
    return (backend.name == "tflite" and backend.output == "logits"
            and backend.spec.chunk_seconds == BIRDNET_CHUNK_SECONDS and backend.spec.name.startswith("birdnet"))


def choose_grid(name: str, model: Model, hop_seconds: float, overlap_s: float, sensitivity: float,
                stream_rate: int = SAMPLE_RATE, min_first: int = 1) -> Grid:
    """The grid called ``name`` (``auto``: ``birdnet`` for a zero-shot BirdNET bundle, else ``birdclef``); a
    BirdNET grid for a bundle that is not TFLite raises :class:`BundleError`."""
    if name == "birdnet" or (name == "auto" and speaks_birdnet(model)):
        if model.backend.name != "tflite":
            raise BundleError(f"{model.path}: the BirdNET grid needs a TFLite bundle (BirdNET's own model), "
                              f"this one is {model.backend.name!r}")
        return BirdNETGrid(overlap_s, sensitivity, stream_rate)
    return WindowGrid.with_hop_seconds(hop_seconds, min_first=min_first)


@dataclass(frozen=True)
class AudioBlock:
    """Contiguous float32 mono samples at :data:`SAMPLE_RATE` from one input, placed in the stream."""

    start_sample: int
    """stream index of ``samples[0]``"""
    samples: np.ndarray
    source: str
    """the input the samples came from (file path, device name)"""
    read_at: float = 0.0
    """monotonic time the samples were read (for the latency metric; 0 in batch)"""

    @property
    def end_sample(self) -> int:
        """Stream index one past the last sample."""
        return self.start_sample + self.samples.size


@dataclass(frozen=True)
class WindowResult:
    """One scored window: where it is in the stream, its per-species probabilities, its detections."""

    source: str
    segment_start: int
    """stream index of the first sample of the window's segment"""
    start_sample: int
    """stream index of the window's first sample"""
    end_sample: int
    """stream index one past the window's nominal last sample"""
    scores: np.ndarray
    """probabilities, shape ``(n_species,)``, in the model's column order"""
    species: list[Species]
    """the model's columns"""
    read_at: float
    detections: tuple[Detection, ...] = ()
    source_name: str = ""
    """the configured source whose ring the window was read from (its own stream of sample indices)"""
    scored_by: str = ""
    """with a cascade (:mod:`daemon.pipeline.cascade`): ``teacher`` for a window the student flagged, else
    ``student``; "" without one"""


@dataclass
class PipelineStats:
    """What a pipeline has done; one writer (the thread that pushes), any reader."""

    samples: int = 0
    windows: int = 0
    detections: int = 0
    gaps: int = 0
    windows_out_of_range: int = 0
    """windows whose best species (at or above its threshold) the range filter removed"""
    encode_seconds: float = 0.0
    """time in the backend's encoder (front end, tokenizer or resampler)"""
    score_seconds: float = 0.0
    """time pooling windows and running the head (with a cascade, also the teacher's)"""
    teacher_windows: int = 0
    """windows a cascade's student flagged and its teacher scored"""
    teacher_seconds: float = 0.0
    """time the cascade's teacher took (part of ``score_seconds``)"""

    @property
    def real_time_factor(self) -> float:
        """Processing time per second of audio (0.01 = 1 % of one core)."""
        return (self.encode_seconds + self.score_seconds) / max(self.samples / SAMPLE_RATE, 1e-9)


class ScoringPipeline:
    """A model's stages end to end; plain object, no threads. ``detector`` adds detections to results, ``filters``
    (:mod:`daemon.filters`) hears the audio and filters them (holding results while its evidence needs);
    ``cascade`` (:mod:`daemon.pipeline.cascade`) hears it too and has its teacher re-score the windows it flags."""

    def __init__(self, model: Model, grid: Grid, detector: DetectionMaker | None = None,
                 stats: PipelineStats | None = None, filters: FilterChain | None = None, *,
                 source_name: str = "", cascade: Cascade | None = None) -> None:
        self.model = model
        self.source_name = source_name
        self.grid = grid
        self.stats = stats or PipelineStats()
        self._detector = detector
        self._filters = filters
        self._cascade = cascade
        if isinstance(grid, BirdNETGrid):
            self._encoder: Stage = model.backend.encoder(grid.stream_rate, "kaiser_fast")  # as BirdNET-Analyzer
        else:
            self._encoder = model.backend.encoder()
        self._pooler: Stage = model.backend.pooler(grid)
        self._source: str | None = None
        self._segment_start = 0
        self._expected = 0
        self._read_at = 0.0

    def push(self, block: AudioBlock) -> list[WindowResult]:
        """Add a block; return the windows it completes (and those of a segment it closes)."""
        out: list[WindowResult] = []
        if self._source is not None and (block.source != self._source or block.start_sample != self._expected):
            if block.start_sample != self._expected:
                self.stats.gaps += 1
            out = self.flush()
        if self._source is None:
            self._source, self._segment_start = block.source, block.start_sample
        self._expected = block.end_sample
        self._read_at = block.read_at
        if block.samples.size:
            started = time.perf_counter()
            units = self._encoder.push(block.samples)
            self.stats.encode_seconds += time.perf_counter() - started
            self.stats.samples += block.samples.size
            if self._filters is not None:
                self._filters.hear(block)
            if self._cascade is not None:
                self._cascade.hear(block)
            out += self._finish(self._pool(units), end_of_segment=False)
        return out

    def flush(self) -> list[WindowResult]:
        """End the current segment: score its trailing windows; the next block starts a new segment."""
        if self._source is None:
            return []
        out = self._finish(self._pool(self._encoder.flush(), end_of_segment=True), end_of_segment=True)
        self._source = None
        if self._cascade is not None:
            self._cascade.reset()
        return out

    def _finish(self, results: list[WindowResult], end_of_segment: bool) -> list[WindowResult]:
        """Results through the filters (those they release), detections counted."""
        if self._filters is not None:
            results = self._filters.push(results) + (self._filters.flush() if end_of_segment else [])
        self.stats.detections += sum(len(r.detections) for r in results)
        return results

    def _pool(self, units: list, end_of_segment: bool = False) -> list[WindowResult]:
        started = time.perf_counter()
        windows = [w for unit in units for w in self._pooler.push(unit)]
        if end_of_segment:
            windows += self._pooler.flush()
        results = self._score(windows)
        self.stats.score_seconds += time.perf_counter() - started
        return results

    def _probabilities(self, vectors: np.ndarray) -> np.ndarray:
        """The head's probabilities; on the BirdNET grid, BirdNET's sigmoid (with its sensitivity) of its logits."""
        if isinstance(self.grid, BirdNETGrid):
            return self.grid.confidences(self.model.head.logits(vectors))
        return self.model.head.probabilities(vectors)

    def _score(self, windows: list[WindowVector]) -> list[WindowResult]:
        if not windows:
            return []
        results = []
        for window in windows:  # one window per head call: how blocks fall never changes a score's last bit
            scores = self._probabilities(window.vector[None, :])[0]
            start, end = self._segment_start + window.start_sample, self._segment_start + window.end_sample
            scored_by, screening = "", None
            if self._cascade is not None:
                scores, screening = self._cascade.screen(start, end, scores)
                scored_by = STUDENT if screening is None else TEACHER
            found = self._detector.detect(self._source, start, end, scores, screening) if self._detector else ()
            results.append(WindowResult(self._source, self._segment_start, start, end, scores, self.model.species,
                                        self._read_at, found, self.source_name, scored_by))
        self.stats.windows += len(results)
        return results
