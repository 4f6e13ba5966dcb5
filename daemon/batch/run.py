"""One ``birdd replay`` run: files -> (journal | scoring runner) -> writer, in input order; or, with ``--parts``,
files -> scoring runner -> Parquet parts written by the workers (:mod:`daemon.batch.parts`)."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from daemon.batch.formats import for_output
from daemon.batch.journal import ResumeJournal, files_digest, record_run
from daemon.batch.parts import RUN_FILE, PartsSpec, PartSummary, part_path
from daemon.batch.recording_time import TimePattern, recording_start
from daemon.batch.replay import ReplayJob, Runner, plan_tasks, replay_files
from daemon.batch.writers import PARQUET_FORMATS, audio_seconds, open_writer
from daemon.errors import BirddError
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
    journal = ResumeJournal(output, _description(model, files, options, in_range)) if resume else None
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
            writer.write(for_output(result, in_range, starts[i]))
            summary.scored += 1
            summary.audio_seconds += audio_seconds(result)
    except BaseException:
        writer.discard()
        raise
    writer.commit()
    if journal is not None:
        journal.remove()
    return summary


def replay_into_parts(model: Model, files: list[Path], folder: Path, options: ReplayOptions, runner: Runner,
                      resume: bool = False, progress: bool = False,
                      in_range: np.ndarray | None = None) -> ReplaySummary:
    """Score ``files`` into Parquet parts that the workers write in ``folder``; with ``resume``, keep the parts of
    an earlier run of the same command and score only the tasks without one (without, earlier parts are removed).
    """
    if options.fmt not in PARQUET_FORMATS:
        raise BirddError(f"--parts writes Parquet: --format {' or '.join(PARQUET_FORMATS)}, not {options.fmt}")
    if folder.exists() and not folder.is_dir():
        raise BirddError(f"{folder}: --parts writes a folder of Parquet parts, and this is a file")
    pattern = TimePattern(options.time_pattern) if options.time_pattern else None
    with_times = any(recording_start(path, pattern) is not None for path in files)
    folder.mkdir(parents=True, exist_ok=True)
    if not resume:
        for old in [*folder.glob("part-*.parquet"), folder / RUN_FILE]:
            old.unlink(missing_ok=True)
    record_run(folder / RUN_FILE, _description(model, files, options, in_range))
    grid = WindowGrid.with_hop_seconds(options.hop_seconds)
    tasks = plan_tasks(files, grid, options.segment_seconds)
    summaries = {task.number: PartSummary.read(part_path(folder, task.number)) for task in tasks
                 if part_path(folder, task.number).is_file()}
    if summaries:
        log.info("resuming: %d of %d part(s) already in %s", len(summaries), len(tasks), folder)
    todo = [task for task in tasks if task.number not in summaries]
    job = ReplayJob(str(model.path), model.digest, grid,
                    PartsSpec(str(folder.absolute()), options.fmt, options.min_conf, with_times, pattern, in_range))
    fresh = runner(job, todo) if todo else []
    for task, result in zip(todo, tqdm(fresh, total=len(todo), desc="replay", unit="task", disable=not progress),
                            strict=True):
        summaries[task.number] = result
    done = [summaries[number] for number in sorted(summaries)]
    failed = list(dict.fromkeys(error for part in done for error in part.errors))
    for message in failed:
        log.error("skipped: %s", message)
    return ReplaySummary(sum(part.files for part in done), sum(part.seconds for part in done), failed)


def _description(model: Model, files: list[Path], options: ReplayOptions, in_range: np.ndarray | None) -> dict:
    """What a resumed run must have in common with the interrupted one."""
    in_range_codes = None if in_range is None else [s.code for s, keep in zip(model.species, in_range, strict=True)
                                                    if keep]
    return {**asdict(options), "model": model.digest, "files": files_digest(files), "in_range": in_range_codes}
