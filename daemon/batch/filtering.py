"""``[filters]`` in ``birdd replay``: a file scored as the daemon scores it, through the daemon's own filter chain.

With filters, a file is one task (the chain's state runs through the whole recording, as in the daemon) and is
decoded to the daemon's 32 kHz stream (on the BirdNET grid too: the daemon's BirdNET grid hears its 32 kHz ring),
then pushed through a :class:`~daemon.pipeline.scoring.ScoringPipeline` with a
:class:`~daemon.pipeline.policy.DetectionMaker` of the daemon's ``[detection]`` (its threshold, species
thresholds, include and exclude lists) and the :class:`~daemon.filters.chain.FilterChain` of ``[filters]``. Quiet
hours use the recording's start (file name or metadata, see :mod:`daemon.batch.recording_time`); a recording whose
start is unknown has no quiet hours. The chunk scores come back with every score that is not a detection the
filters kept set to NaN (no score: never listed), so the writers list exactly what the daemon would have published;
the filters' counters come with them.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np

from daemon.audio.files import read_audio_blocks
from daemon.batch.formats import FileScores
from daemon.batch.recording_time import TimePattern, recording_start
from daemon.batch.segments import file_scores
from daemon.config import DetectionConfig, FiltersConfig
from daemon.constants import SAMPLE_RATE
from daemon.errors import AudioError
from daemon.filters.chain import build_filters
from daemon.filters.stats import FilterStats
from daemon.model.loader import Model
from daemon.model.windows import BirdNETGrid, Grid
from daemon.pipeline.detection import StreamClock
from daemon.pipeline.policy import DetectionMaker
from daemon.pipeline.scoring import AudioBlock, ScoringPipeline, WindowResult


@dataclass(frozen=True)
class ReplayFilters:
    """What a worker needs to filter as the daemon does (small and picklable)."""

    config: FiltersConfig
    detection: DetectionConfig
    """the detections the filters work on, as the daemon makes them (``threshold``: ``--min-conf`` or the config's)"""
    time_pattern: str | None = None
    """``--time-pattern``, for the recording's start (quiet hours)"""
    in_range: np.ndarray | None = None
    """bool per species: the range filter's choice (the others are never detected)"""


def add_stats(total: FilterStats, more: FilterStats) -> None:
    """Add ``more``'s counters to ``total``."""
    for item in fields(FilterStats):
        setattr(total, item.name, getattr(total, item.name) + getattr(more, item.name))


def filtered_scores(model: Model, path: Path, grid: Grid, filters: ReplayFilters) -> FileScores:
    """One whole file through the daemon's pipeline and filter chain (raises AudioError naming the file)."""
    pattern = TimePattern(filters.time_pattern) if filters.time_pattern else None
    start = recording_start(path, pattern)
    config = filters.config if start is not None else replace(filters.config, quiet_hours=[])
    clock = StreamClock(start.timestamp() if start is not None else 0.0)
    if isinstance(grid, BirdNETGrid):
        grid = replace(grid, stream_rate=SAMPLE_RATE)
    detector = DetectionMaker(filters.detection, "replay", model, clock, strictly_above=grid.strictly_above)
    if filters.in_range is not None:
        detector.policy.restrict(filters.in_range)
    stats = FilterStats()
    pipeline = ScoringPipeline(model, grid, detector, filters=build_filters(config, model.species, clock, stats, None))
    results, position, source = [], 0, str(path)
    for block in read_audio_blocks(path):
        results += pipeline.push(AudioBlock(position, block, source))
        position += block.size
    results += pipeline.flush()
    if not results and not isinstance(grid, BirdNETGrid):
        raise AudioError(f"{path}: too short to score ({position} samples at {SAMPLE_RATE} Hz, not one "
                         f"analysis frame)")
    scored = file_scores(path, [_kept_only(r) for r in results], len(model.species))
    return replace(scored, filter_stats=stats)


def _kept_only(result: WindowResult) -> WindowResult:
    """``result`` with every score but those of its (filtered) detections set to NaN."""
    kept = {d.species_code for d in result.detections}
    scores = np.full_like(result.scores, np.nan)
    columns = [j for j, species in enumerate(result.species) if species.code in kept]
    scores[columns] = result.scores[columns]
    return replace(result, scores=scores)
