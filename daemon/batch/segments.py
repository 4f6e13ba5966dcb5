"""Long recordings cut into segments that are scored independently and joined into the unsplit result.

Segment ``k`` of a file owns the windows that start in ``[start, stop)``. It is decoded from ``context`` samples
before ``start`` (what the backend needs to reach the state the unsplit stream has there: causal frames, a
resampler) to a little past the end of its last window, block by block, into a fresh
:class:`~daemon.pipeline.scoring.ScoringPipeline` (the daemon's, one head call per window); windows that start
before ``start`` or at ``stop`` and later are dropped. Segment starts are multiples of the window hop and of one
second, so the segment's window grid and frame blocks line up with the unsplit stream's, and every segment but
the last holds at least one whole window. For files at the model rate the joined windows and scores are
bit-identical to the unsplit stream's (``tests/test_segments_equal_unsplit.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from daemon.audio.files import read_audio_blocks
from daemon.batch.formats import FileScores
from daemon.constants import SAMPLE_RATE
from daemon.errors import AudioError
from daemon.model.loader import Model
from daemon.model.windows import BirdNETGrid, Grid, WindowGrid
from daemon.pipeline.cascade import CascadeTeacher
from daemon.pipeline.scoring import AudioBlock, ScoringPipeline, WindowResult


@dataclass(frozen=True)
class Segment:
    """The windows of ``path`` that start in ``[start, stop)`` (sample indices; ``stop=None``: to the end)."""

    path: Path
    start: int
    stop: int | None
    length: int = 0
    """the whole recording's length (samples, from its header when the run was planned; 0: not known)"""

    @property
    def is_last(self) -> bool:
        """Whether this segment runs to the end of its file."""
        return self.stop is None


def split_points_unit(grid: WindowGrid) -> int:
    """Segment starts are multiples of this (samples): of the window hop and of one second."""
    return math.lcm(grid.hop, SAMPLE_RATE)


def split_recording(path: Path, length: int, grid: Grid, segment_samples: int) -> list[Segment]:
    """Segments of about ``segment_samples`` covering a recording of ``length`` samples (one if it is short; on
    the BirdNET grid, whose chunks birdnetlib places in its own 48 kHz samples, always one)."""
    if isinstance(grid, BirdNETGrid):
        return [Segment(path, 0, None, length)]
    unit = split_points_unit(grid)
    step = max(unit, segment_samples // unit * unit)
    starts = [0, *range(step, max(length - grid.length + 1, 0), step)]  # every later segment holds a whole window
    return [Segment(path, a, b, length) for a, b in zip(starts, [*starts[1:], None], strict=True)]


def score_segment(model: Model, segment: Segment, grid: Grid, teacher: CascadeTeacher | None = None) -> FileScores:
    """Window scores of one segment, in stream sample indices of the whole file, through a
    :class:`ScoringPipeline` (raises AudioError naming the file, also when a whole file is too short for one
    frame); with ``teacher``, a cascade's (:mod:`daemon.pipeline.cascade`)."""
    if isinstance(grid, BirdNETGrid):
        return score_birdnet_chunks(model, segment.path, grid)
    context = model.backend.context_samples()
    unit = split_points_unit(grid)
    begin = max(0, segment.start - math.ceil(context / unit) * unit)
    end = None if segment.is_last else segment.stop - grid.hop + grid.length + context
    cascade = teacher.stage(model) if teacher is not None else None
    pipeline, source = ScoringPipeline(model, grid, cascade=cascade), str(segment.path)
    results, position = [], begin
    for block in read_audio_blocks(segment.path, begin, end):
        results += pipeline.push(AudioBlock(position, block, source))
        position += block.size
    if end is None or position < end:  # the file ended: its trailing windows
        results += pipeline.flush()
    stop = np.iinfo(np.int64).max if segment.stop is None else segment.stop
    kept = [r for r in results if segment.start <= r.start_sample < stop]
    if not kept and segment.start == 0 and segment.is_last:
        raise AudioError(f"{segment.path}: too short to score ({position} samples at {SAMPLE_RATE} Hz, not one "
                         f"analysis frame)")
    return file_scores(segment.path, kept, len(model.species))


def score_birdnet_chunks(model: Model, path: Path, grid: BirdNETGrid) -> FileScores:
    """Chunk scores of a whole file on the BirdNET grid, read as birdnetlib reads it: decoded at the grid's stream
    rate (the model's 48 kHz) with librosa's kaiser_fast resampling; positions returned at :data:`SAMPLE_RATE`.
    A file shorter than BirdNET's shortest chunk (1.5 s) has no chunks (no rows)."""
    pipeline, source = ScoringPipeline(model, grid), str(path)
    results, position = [], 0
    for block in read_audio_blocks(path, sample_rate=grid.stream_rate, resampler="kaiser_fast"):
        results += pipeline.push(AudioBlock(position, block, source))
        position += block.size
    results += pipeline.flush()
    scores = file_scores(path, results, len(model.species))
    return replace(scores, starts=scores.starts * SAMPLE_RATE // grid.stream_rate,
                   ends=scores.ends * SAMPLE_RATE // grid.stream_rate)


def file_scores(path: Path, results: list[WindowResult], n_species: int) -> FileScores:
    """Window results of one file (or segment) as arrays."""
    if not results:
        empty = np.zeros(0, dtype=np.int64)
        return FileScores(path, empty, empty, np.zeros((0, n_species), dtype=np.float32))
    return FileScores(path, np.array([r.start_sample for r in results]), np.array([r.end_sample for r in results]),
                      np.stack([r.scores for r in results]))
