"""One ``birdd replay`` run: files -> (journal | scoring runner) -> writer, in input order; or, with ``--parts``,
files -> scoring runner -> Parquet parts written by the workers (:mod:`daemon.batch.parts`)."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from daemon.batch.filtering import ReplayFilters, add_stats
from daemon.batch.formats import for_output
from daemon.batch.journal import ResumeJournal, files_digest, record_run
from daemon.batch.parts import RUN_FILE, PartsSpec, PartSummary, part_path
from daemon.batch.recording_time import TimePattern, recording_start
from daemon.batch.replay import CascadeSpec, ReplayJob, Runner, Task, plan_tasks
from daemon.batch.writers import PARQUET_FORMATS, audio_seconds, common_folder, open_writer
from daemon.config import DetectionConfig, FiltersConfig
from daemon.constants import SAMPLE_RATE
from daemon.errors import BirddError, BundleError, StorageError
from daemon.filters.stats import FilterStats
from daemon.model.loader import Model
from daemon.model.windows import Grid
from daemon.pipeline.policy import DetectionPolicy, lowest_listed
from daemon.pipeline.scoring import choose_grid

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReplayOptions:
    """Everything about a run that shapes its output (a resumed run must have the same)."""

    fmt: str
    min_conf: float
    hop_seconds: int
    segment_seconds: float
    time_pattern: str | None = None
    grid: str = "birdclef"
    """``birdclef`` (5-s windows ``hop_seconds`` apart) or ``birdnet`` (BirdNET's 3-s chunks)"""
    overlap_s: float = 0.0
    """BirdNET grid: overlap of consecutive chunks (seconds)"""
    sensitivity: float = 1.0
    """BirdNET grid: BirdNET's sensitivity"""
    filters: FiltersConfig | None = None
    """``[filters]`` as the daemon applies them (:mod:`daemon.batch.filtering`); None: no filters"""
    detection: DetectionConfig | None = None
    """with filters: the daemon's ``[detection]`` they work on (None: its defaults at ``min_conf``)"""
    cascade: CascadeSpec | None = None
    """``--cascade``: the teacher that re-scores the windows the model flags (:mod:`daemon.pipeline.cascade`)"""

    def window_grid(self, model: Model) -> Grid:
        """The grid ``model`` is scored on: on the BirdNET grid, the stream is the model's rate (48 kHz), read as
        birdnetlib reads it (:func:`daemon.batch.segments.score_birdnet_chunks`); a submission needs the 5-s grid."""
        if self.grid == "birdnet" and self.fmt == "submission":
            raise BirddError("--grid birdnet: a BirdCLEF submission is scored on 5-s windows; choose --format "
                             "birdnet, detections, raven or audacity")
        try:
            rate = model.backend.spec.sample_rate if model.backend.name == "tflite" else SAMPLE_RATE
            return choose_grid(self.grid, model, self.hop_seconds, self.overlap_s, self.sensitivity, rate)
        except BundleError as exc:
            raise BirddError(f"--grid {self.grid}: {exc}") from None

    def replay_filters(self, model: Model, in_range: np.ndarray | None) -> ReplayFilters | None:
        """What the workers need to filter (None without filters); a BirddError for a run they cannot apply to, or
        a ConfigError for a ``[detection]`` that does not fit ``model``."""
        if self.filters is None:
            return None
        if self.fmt == "submission":
            raise BirddError("filters: a submission lists every probability; choose --format detections, birdnet, "
                             "raven or audacity")
        detection = replace(self.detection or DetectionConfig(), threshold=self.min_conf)
        DetectionPolicy(detection, model.species)  # [detection] against the model, named as such, before any work
        return ReplayFilters(self.filters, detection, self.time_pattern, in_range)


@dataclass
class ReplaySummary:
    """What a run did."""

    scored: int = 0
    audio_seconds: float = 0.0
    failed: list[str] = field(default_factory=list)
    filters: FilterStats | None = None
    """with ``[filters]``: what they did, over every file"""


def run_replay(model: Model, files: list[Path], output: Path, options: ReplayOptions, runner: Runner,
               resume: bool = False, progress: bool = False, in_range: np.ndarray | None = None) -> ReplaySummary:
    """Score ``files`` into ``output``; with ``resume``, journal scored segments and reuse an earlier run's.

    Segments go to the writer as they come, in input order, so memory does not grow with a recording's length;
    a recording with a segment that cannot be decoded is listed as failed (the rows of its other segments are
    kept and, when its last segment was scored, it counts as scored too: as with ``--parts``). ``in_range`` (a
    boolean per species, from the range filter) zeroes the scores of species not expected and keeps them out of
    detection tables (even at ``min_conf`` 0). An output (or journal) that cannot be written is a
    :class:`StorageError` naming it.
    """
    with _writing(output):
        return _run_replay(model, files, output, options, runner, resume, progress, in_range)


def _run_replay(model: Model, files: list[Path], output: Path, options: ReplayOptions, runner: Runner,
                resume: bool, progress: bool, in_range: np.ndarray | None) -> ReplaySummary:
    pattern = TimePattern(options.time_pattern) if options.time_pattern else None
    starts = [recording_start(path, pattern) for path in files]
    with_times = any(start is not None for start in starts)
    if options.fmt in ("submission", "audacity"):
        warn_shared_stems(files, per_folder=options.fmt == "audacity")
    grid = options.window_grid(model)
    filters = options.replay_filters(model, in_range)
    tasks = plan_tasks(files, grid, options.segment_seconds, whole_files=filters is not None)
    journal = (ResumeJournal(output, {**_description(model, files, options, in_range), "journal": "segments"})
               if resume else None)  # "segments": a journal of files, from before birdd kept segments, is refused
    numbered = _numbered(tasks)
    todo = [task for task, numbers in zip(tasks, numbered, strict=True)
            if journal is None or not all(map(journal.has, numbers))]
    job = ReplayJob(str(model.path), model.digest, grid, filters=filters, cascade=options.cascade)
    fresh = (result for task_results in runner(job, todo) for result in task_results)
    todo_set = {task.number for task in todo}
    summary = ReplaySummary(filters=None if filters is None else FilterStats())
    listed = 0.0 if filters is not None else lowest_listed(options.min_conf, grid.strictly_above)  # filtered: NaN
    writer = open_writer(options.fmt, output, model.species, listed, with_times, common_folder(files))
    bar = tqdm(total=len(files), desc="replay", unit="file", disable=not progress)
    position, error = 0, None  # the file being written, and the first error of its segments
    try:
        for task, numbers in zip(tasks, numbered, strict=True):
            for segment, number in zip(task.segments, numbers, strict=True):
                if task.number in todo_set:
                    result = next(fresh)
                    if journal is not None:
                        journal.save(number, result)
                else:
                    result = journal.load(number, segment.path)
                if isinstance(result, str):
                    error = error or result
                else:
                    if summary.filters is not None and result.filter_stats is not None:
                        add_stats(summary.filters, result.filter_stats)
                    writer.write(for_output(result, in_range, starts[position], segment.length / SAMPLE_RATE or None))
                if not segment.is_last:
                    continue
                writer.end_file()
                if not isinstance(result, str):  # counted as --parts counts: scored to its end
                    summary.scored += 1
                    summary.audio_seconds += audio_seconds(result)
                if error is not None:
                    log.error("skipped: %s", error)
                    summary.failed.append(error)
                position, error = position + 1, None
                bar.update()
    except BaseException:
        writer.discard()
        raise
    finally:
        bar.close()
    writer.commit()
    if journal is not None:
        journal.remove()
    return summary


def _numbered(tasks: list[Task]) -> list[range]:
    """Each task's segments' positions in the whole plan (the journal's part numbers)."""
    out, first = [], 0
    for task in tasks:
        out.append(range(first, first + len(task.segments)))
        first += len(task.segments)
    return out


def first_error_per_file(messages: list[str], files: list[Path]) -> list[str]:
    """The first of ``messages`` about each file (an AudioError names its file first: ``<path>: ...``), so that a
    recording that failed in two segments is listed once, as the gathered outputs list it."""
    names = {str(path) for path in files}
    first: dict[str, str] = {}
    for message in messages:
        prefixes = (message[:cut.start()] for cut in re.finditer(": ", message))
        first.setdefault(next((prefix for prefix in prefixes if prefix in names), message), message)
    return list(first.values())


def warn_shared_stems(files: list[Path], per_folder: bool = False) -> None:
    """Warn when recordings share a file stem (``per_folder``: in one folder): their submission rows
    (``<stem>_<end second>``) share row ids, or their Audacity label files (``<stem>.txt``) one file."""
    seen: dict[Path, Path] = {}
    shared = []
    for path in files:
        key = path.with_suffix("") if per_folder else Path(path.stem)
        if seen.setdefault(key, path) != path:
            shared.append((seen[key], path))
    if shared:
        first, second = shared[0]
        what = "Audacity label file (the later one is kept)" if per_folder else "submission row ids"
        log.warning("%d recording(s) share a file stem with another (%s and %s): they share their %s; --format "
                    "detections names each recording by its path", len(shared), first, second, what)


def replay_into_parts(model: Model, files: list[Path], folder: Path, options: ReplayOptions, runner: Runner,
                      resume: bool = False, progress: bool = False,
                      in_range: np.ndarray | None = None) -> ReplaySummary:
    """Score ``files`` into Parquet parts that the workers write in ``folder``; with ``resume``, keep the parts of
    an earlier run of the same command and score only the tasks without one (without, earlier parts are removed).
    """
    with _writing(folder):
        return _replay_into_parts(model, files, folder, options, runner, resume, progress, in_range)


def _replay_into_parts(model: Model, files: list[Path], folder: Path, options: ReplayOptions, runner: Runner,
                       resume: bool, progress: bool, in_range: np.ndarray | None) -> ReplaySummary:
    if options.fmt not in PARQUET_FORMATS:
        raise BirddError(f"--parts writes Parquet: --format {' or '.join(PARQUET_FORMATS)}, not {options.fmt}")
    if options.filters is not None:
        raise BirddError("--parts: the filters are not applied to Parquet parts; run without --parts")
    if folder.exists() and not folder.is_dir():
        raise BirddError(f"{folder}: --parts writes a folder of Parquet parts, and this is a file")
    pattern = TimePattern(options.time_pattern) if options.time_pattern else None
    with_times = any(recording_start(path, pattern) is not None for path in files)
    if options.fmt == "submission":
        warn_shared_stems(files)
    folder.mkdir(parents=True, exist_ok=True)
    if not resume:
        for old in [*folder.glob("part-*.parquet"), folder / RUN_FILE]:
            old.unlink(missing_ok=True)
    record_run(folder / RUN_FILE, _description(model, files, options, in_range))
    grid = options.window_grid(model)
    tasks = plan_tasks(files, grid, options.segment_seconds)
    summaries = {task.number: PartSummary.read(part_path(folder, task.number)) for task in tasks
                 if part_path(folder, task.number).is_file()}
    if summaries:
        log.info("resuming: %d of %d part(s) already in %s", len(summaries), len(tasks), folder)
    todo = [task for task in tasks if task.number not in summaries]
    job = ReplayJob(str(model.path), model.digest, grid,
                    PartsSpec(str(folder.absolute()), options.fmt, lowest_listed(options.min_conf, grid.strictly_above),
                              with_times, pattern, in_range),
                    cascade=options.cascade)
    fresh = runner(job, todo) if todo else []
    for task, result in zip(todo, tqdm(fresh, total=len(todo), desc="replay", unit="task", disable=not progress),
                            strict=True):
        summaries[task.number] = result
    done = [summaries[number] for number in sorted(summaries)]
    failed = first_error_per_file([error for part in done for error in part.errors], files)
    for message in failed:
        log.error("skipped: %s", message)
    return ReplaySummary(sum(part.files for part in done), sum(part.seconds for part in done), failed)


@contextmanager
def _writing(output: Path) -> Iterator[None]:
    """Turn a failure to make or write a file (an OSError naming it: no such folder, read-only, disk full) into one
    line naming ``output`` and the file; other OSErrors (a lost Dask scheduler) pass unchanged."""
    try:
        yield
    except OSError as exc:
        if exc.filename is None:
            raise
        raise StorageError(f"{output}: cannot write ({exc.filename}: {exc.strerror or exc})") from exc


def _description(model: Model, files: list[Path], options: ReplayOptions, in_range: np.ndarray | None) -> dict:
    """What a resumed run must have in common with the interrupted one."""
    in_range_codes = None if in_range is None else [s.code for s, keep in zip(model.species, in_range, strict=True)
                                                    if keep]
    return {**asdict(options), "model": model.digest, "files": files_digest(files), "in_range": in_range_codes}
