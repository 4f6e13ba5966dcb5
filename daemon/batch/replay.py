"""Batch scoring of files: recordings cut into segments, scored by worker processes, taken in input order.

Segments are grouped into tasks of about ``--segment-minutes`` of audio (a long file's segments one per task,
short files several per task). The same :func:`run_task` runs in a local process pool (one process per core,
one BLAS thread each) or on a Dask cluster (:mod:`daemon.batch.dask_runner`); each worker process loads the
bundle once and checks that its digest is the one the run started with.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from daemon.audio.files import audio_length
from daemon.batch.filtering import ReplayFilters, filtered_scores
from daemon.batch.formats import FileScores
from daemon.batch.parts import PartsSpec, PartSummary, write_part
from daemon.batch.segments import Segment, file_scores, score_segment, split_recording
from daemon.constants import SAMPLE_RATE
from daemon.errors import AudioError, BundleError
from daemon.model.loader import Model, load_model
from daemon.model.windows import Grid
from daemon.pipeline.cascade import CascadeTeacher
from daemon.pipeline.scoring import AudioBlock, ScoringPipeline

SEGMENT_MINUTES = 10
"""Default length of segments and tasks (minutes of audio): about 0.6 s of one core with the default STSG model."""

SegmentResult = FileScores | str
"""A segment's window scores, or the message of the AudioError that stopped it."""

TaskResult = list[SegmentResult] | PartSummary
"""Each segment's result, or, when the worker wrote the rows into a Parquet part, what the task did."""

Runner = Callable[["ReplayJob", list["Task"]], Iterable[TaskResult]]
"""Runs :func:`run_task` over tasks and yields their results in the order of the tasks."""

_worker_models: dict[tuple[str, str], Model] = {}  # (bundle path, digest) -> model, per worker process
_teachers: dict[tuple[str, str, int], Model] = {}  # (bundle path, digest, process id) -> a cascade's teacher


@dataclass(frozen=True)
class CascadeSpec:
    """``birdd replay --cascade``: the teacher bundle (path, and the digest every worker checks) and the
    screen threshold (:mod:`daemon.pipeline.cascade`)."""

    teacher_path: str
    teacher_digest: str
    screen_threshold: float


@dataclass(frozen=True)
class Task:
    """What one worker scores at a time: one segment of a long file, or several consecutive short files whole."""

    number: int
    """position in the run's plan (names its Parquet part with ``--parts``)"""
    segments: tuple[Segment, ...]


@dataclass(frozen=True)
class ReplayJob:
    """What every worker needs besides its task (small and picklable)."""

    model_path: str
    digest: str
    grid: Grid
    parts: PartsSpec | None = None
    """with ``--parts``: the worker writes each task's rows into a Parquet part and returns its summary"""
    filters: ReplayFilters | None = None
    """with ``[filters]``: each file scored whole through the daemon's filter chain (:mod:`daemon.batch.filtering`)"""
    cascade: CascadeSpec | None = None
    """with ``--cascade``: the teacher that re-scores the windows the model flags"""


def run_task(job: ReplayJob, task: Task) -> TaskResult:
    """Score one task's segments in a worker process (the bundle is loaded on the first call and kept)."""
    key = (job.model_path, job.digest)
    if key not in _worker_models:
        # loaded here rather than inherited: native runtimes such as TFLite do not survive a fork
        threadpool_limits(1)
        model = load_model(job.model_path)
        if model.digest != job.digest:
            raise BundleError(f"{job.model_path}: the bundle changed while replay was running")
        _worker_models[key] = model
    return score_task(_worker_models[key], job, task)


def cascade_teacher(spec: CascadeSpec | None) -> CascadeTeacher | None:
    """The teacher of ``spec``, loaded once per process (TFLite does not survive a fork, so never inherited)."""
    if spec is None:
        return None
    key = (spec.teacher_path, spec.teacher_digest, os.getpid())
    if key not in _teachers:
        teacher = load_model(spec.teacher_path)
        if teacher.digest != spec.teacher_digest:
            raise BundleError(f"{spec.teacher_path}: the teacher bundle changed while replay was running")
        _teachers[key] = teacher
    return CascadeTeacher(_teachers[key], spec.screen_threshold)


def score_task(model: Model, job: ReplayJob, task: Task) -> TaskResult:
    """Score one task's segments with ``model`` in this process."""
    teacher = cascade_teacher(job.cascade)
    results = [_score_or_message(model, segment, job.grid, job.filters, teacher) for segment in task.segments]
    if job.parts is None:
        return results
    return write_part(job.parts, model.species, task.number, list(zip(task.segments, results, strict=True)))


def score_samples(model: Model, samples: np.ndarray, path: Path, grid: Grid) -> FileScores:
    """Window scores of a decoded signal, through the same :class:`ScoringPipeline` as the daemon."""
    pipeline = ScoringPipeline(model, grid)
    return file_scores(path, pipeline.push(AudioBlock(0, samples, str(path))) + pipeline.flush(), len(model.species))


def score_file(model: Model, path: Path, grid: Grid) -> FileScores:
    """Decode (block by block) and score one whole file in this process (raises AudioError naming the file)."""
    return score_segment(model, Segment(path, 0, None), grid)


def _score_or_message(model: Model, segment: Segment, grid: Grid, filters: ReplayFilters | None,
                      teacher: CascadeTeacher | None) -> SegmentResult:
    try:
        if filters is not None:
            return filtered_scores(model, segment.path, grid, filters)
        return score_segment(model, segment, grid, teacher)
    except AudioError as exc:
        return str(exc)


def plan_tasks(paths: list[Path], grid: Grid, segment_seconds: float, whole_files: bool = False) -> list[Task]:
    """Every file's segments, in order, grouped into tasks of at most ``segment_seconds`` of audio (a long file's
    segments one per task; short files several per task; ``whole_files``: a file is one segment). A file whose
    header cannot be read is one segment: it fails when scored."""
    budget = round(segment_seconds * SAMPLE_RATE)
    groups: list[tuple[Segment, ...]] = []
    current: list[Segment] = []
    filled = 0
    for path in paths:
        try:
            length = audio_length(path)
        except AudioError:
            length = 0
        for segment in [Segment(path, 0, None, length)] if whole_files else split_recording(path, length, grid, budget):
            size = (segment.stop if segment.stop is not None else length) - segment.start
            if current and filled + size > budget:
                groups.append(tuple(current))
                current, filled = [], 0
            current.append(segment)
            filled += size
    if current:
        groups.append(tuple(current))
    return [Task(number, segments) for number, segments in enumerate(groups)]


def pool_runner(model: Model, jobs: int = 0) -> Runner:
    """Run tasks in ``jobs`` forked worker processes (0 = one per core), or with ``model`` in this process
    when there is one job or one task."""
    jobs = jobs or len(os.sched_getaffinity(0))

    def run(job: ReplayJob, tasks: list[Task]) -> Iterator[TaskResult]:
        if jobs == 1 or len(tasks) == 1:
            with threadpool_limits(1):
                yield from (score_task(model, job, task) for task in tasks)
            return
        context = multiprocessing.get_context("fork")
        with context.Pool(jobs) as pool:
            yield from pool.imap(partial(run_task, job), tasks, chunksize=1)

    return run
