"""One ``birdd replay`` run: files -> (journal | scoring runner) -> writer, in input order."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from daemon.batch.journal import ResumeJournal, files_digest
from daemon.batch.recording_time import TimePattern, recording_start
from daemon.batch.replay import Runner, replay_files
from daemon.batch.writers import audio_seconds, open_writer
from daemon.model.loader import Model
from daemon.model.windows import WindowGrid

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReplayOptions:
    """Everything about a run that shapes its output (a resumed run must have the same)."""

    fmt: str
    min_conf: float
    hop_seconds: int
    segment_seconds: float
    time_pattern: str | None = None


@dataclass
class ReplaySummary:
    """What a run did."""

    scored: int = 0
    audio_seconds: float = 0.0
    failed: list[str] = field(default_factory=list)


def run_replay(model: Model, files: list[Path], output: Path, options: ReplayOptions, runner: Runner,
               resume: bool = False, progress: bool = False, in_range: np.ndarray | None = None) -> ReplaySummary:
    """Score ``files`` into ``output``; with ``resume``, journal finished files and reuse an earlier run's.

    ``in_range`` (a boolean per species, from the range filter) zeroes the scores of species not expected and
    keeps them out of detection tables (even at ``min_conf`` 0).
    """
    pattern = TimePattern(options.time_pattern) if options.time_pattern else None
    starts = [recording_start(path, pattern) for path in files]
    with_times = any(start is not None for start in starts)
    journal = None
    if resume:
        in_range_codes = None if in_range is None else [s.code for s, keep in zip(model.species, in_range,
                                                                                      strict=True) if keep]
        journal = ResumeJournal(output, {**asdict(options), "model": model.digest, "files": files_digest(files),
                                         "in_range": in_range_codes})
    todo = [i for i in range(len(files)) if journal is None or not journal.has(i)]
    grid = WindowGrid.with_hop_seconds(options.hop_seconds)
    fresh = replay_files(model, [files[i] for i in todo], grid, runner, options.segment_seconds)
    todo_set = set(todo)
    summary = ReplaySummary()
    writer = open_writer(options.fmt, output, model.species, options.min_conf, with_times)
    try:
        for i, path in enumerate(tqdm(files, desc="replay", unit="file", disable=not progress)):
            if i in todo_set:
                result = next(fresh)[1]
                if journal is not None:
                    journal.save(i, result)
            else:
                result = journal.load(i, path)
            if isinstance(result, str):
                log.error("skipped: %s", result)
                summary.failed.append(result)
                continue
            if in_range is not None:
                result = replace(result, scores=np.where(in_range, result.scores, np.float32(0)), in_range=in_range)
            writer.write(replace(result, recording_start=starts[i]))
            summary.scored += 1
            summary.audio_seconds += audio_seconds(result)
    except BaseException:
        writer.discard()
        raise
    writer.commit()
    if journal is not None:
        journal.remove()
    return summary
