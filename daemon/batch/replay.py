"""Batch scoring of files: one process per core, one BLAS thread each, results in input order."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from daemon.audio.files import read_audio
from daemon.batch.formats import FileScores
from daemon.constants import SAMPLE_RATE
from daemon.errors import AudioError, BundleError
from daemon.model.loader import Model, load_model
from daemon.model.windows import WindowGrid
from daemon.pipeline.scoring import AudioBlock, ScoringPipeline

_worker_job: tuple[str, str, WindowGrid] | None = None  # (bundle path, its digest, grid), set per worker process
_worker_model: Model | None = None


def score_samples(model: Model, samples: np.ndarray, path: Path, grid: WindowGrid) -> FileScores:
    """Window scores of a decoded signal, through the same :class:`ScoringPipeline` as the daemon."""
    pipeline = ScoringPipeline(model, grid)
    results = pipeline.push(AudioBlock(0, samples, str(path))) + pipeline.flush()
    if not results:
        empty = np.zeros(0, dtype=np.int64)
        return FileScores(path, empty, empty, np.zeros((0, len(model.species)), dtype=np.float32))
    return FileScores(path, np.array([r.start_sample for r in results]), np.array([r.end_sample for r in results]),
                      np.stack([r.scores for r in results]))


def score_file(model: Model, path: Path, grid: WindowGrid) -> FileScores:
    """Decode and score one file (raises AudioError naming the file, also when it is too short for one frame)."""
    samples = read_audio(path)
    scores = score_samples(model, samples, path, grid)
    if not len(scores.ends):
        raise AudioError(f"{path}: too short to score ({samples.size} samples at {SAMPLE_RATE} Hz, not one "
                         f"analysis frame)")
    return scores


def _init_worker(model_path: str, digest: str, grid: WindowGrid) -> None:
    global _worker_job
    threadpool_limits(1)
    _worker_job = (model_path, digest, grid)


def _score_task(path: Path) -> FileScores | str:
    # each worker loads its own copy on its first file (native runtimes such as TFLite do not survive a
    # fork; an error here reaches the parent, where an initializer's would make the pool respawn for ever)
    global _worker_model
    model_path, digest, grid = _worker_job
    if _worker_model is None:
        _worker_model = load_model(model_path)
        if _worker_model.digest != digest:
            raise BundleError(f"{model_path}: the bundle changed while replay was running")
    try:
        return score_file(_worker_model, path, grid)
    except AudioError as exc:
        return str(exc)


def replay_files(model: Model, paths: list[Path], grid: WindowGrid, jobs: int = 0
                 ) -> Iterator[tuple[Path, FileScores | str]]:
    """Score ``paths`` in order; yields ``(path, scores)`` or ``(path, error message)`` for a bad file.

    ``jobs`` worker processes (0 = one per core); each loads the bundle itself and uses one BLAS thread.
    """
    jobs = jobs or len(os.sched_getaffinity(0))
    if jobs == 1 or len(paths) == 1:
        with threadpool_limits(1):
            for path in paths:
                try:
                    yield path, score_file(model, path, grid)
                except AudioError as exc:
                    yield path, str(exc)
        return
    context = multiprocessing.get_context("fork")
    with context.Pool(jobs, initializer=_init_worker, initargs=(str(model.path), model.digest, grid)) as pool:
        yield from zip(paths, pool.imap(_score_task, paths, chunksize=2), strict=True)
