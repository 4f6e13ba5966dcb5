"""A student/teacher cascade: the student scores every window, the teacher re-scores the few it flags.

A window is **flagged** when the student's best score (over all its species) reaches ``screen_threshold``; the
teacher (a TFLite bundle: BirdNET zero-shot, a BirdNET head) then scores the same window's audio, and the
window's score for every species the teacher knows is the teacher's. A species the teacher does not know (not
in its list, or without a class of its model) keeps the student's score (the student is never silently poorer
than alone). An unflagged window keeps the student's scores: every one is below ``screen_threshold``, so with
``screen_threshold`` at or below the detection threshold it makes no detection, and its scores still rank the
window for an evaluation.

The teacher scores a window as its own streaming stages would (a fresh resampler and pooler on the window's
audio, with up to :meth:`~daemon.model.tflite_backend.TFLiteBackend.context_samples` of audio before it so the
resampler has settled): at the model's own rate (no resampling) the scores are the teacher's streaming ones to
the last bit; with resampling, within 1e-4 of them (the stream's resampler has also seen the audio after the
window, this one has not). The cascade stage keeps the audio of the current
window and a little before it; it has no threads, and the teacher model is loaded once and shared by every
source's cascade (its TFLite calls are serialised by the embedder's lock).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from daemon.constants import SAMPLE_RATE
from daemon.errors import BundleError, ConfigError
from daemon.model.head import SelectionHead
from daemon.model.loader import Model, Species, load_model
from daemon.model.windows import Grid, WindowGrid
from daemon.pipeline.species_list import species_index

if TYPE_CHECKING:
    from daemon.pipeline.scoring import AudioBlock, PipelineStats

STUDENT, TEACHER = "student", "teacher"
"""``WindowResult.scored_by`` of a cascade's windows"""


@dataclass(frozen=True)
class Screening:
    """Whose scores a flagged window carries: the teacher's in ``teacher_columns`` (bool per student column)."""

    teacher_columns: np.ndarray
    identity: dict[str, str]
    """the teacher's name and version, as published with a detection it scored"""


def teacher_columns(teacher: Model, species: list[Species]) -> np.ndarray:
    """For each of ``species`` (the student's columns) the teacher's column (by code, then scientific name), -1
    where the teacher does not know the species: not in its list, or in it without a class of its model (a
    zero-shot bundle's species that BirdNET does not know: a constant score)."""
    unscored = teacher.head.unmatched if isinstance(teacher.head, SelectionHead) else np.zeros(len(teacher.species),
                                                                                                  bool)
    found = [species_index(s.code, teacher.species) for s in species]
    found = [j if j is not None or not s.scientific_name else species_index(s.scientific_name, teacher.species)
             for s, j in zip(species, found, strict=True)]
    return np.array([-1 if j is None or unscored[j] else j for j in found], dtype=np.int64)


def check_cascade(teacher: Model, student: Model, grid: Grid, key: str = "cascade.teacher") -> None:
    """Refuse a cascade that cannot run: a teacher that is not TFLite, a grid other than the 5-s one, a teacher
    that knows none of the student's species (a ConfigError naming ``key``)."""
    if teacher.backend.name != "tflite":
        raise ConfigError(f"{key}: {teacher.path} is a {teacher.backend.name!r} bundle; the teacher must "
                          "be a TFLite bundle (birdd train DATA --backend tflite, e.g. BirdNET --zero-shot)")
    if not isinstance(grid, WindowGrid):
        raise ConfigError(f"{key}: a cascade runs on 5-s windows (detection.grid = \"birdclef\"), not on "
                          "BirdNET's 3-s chunks")
    if not (teacher_columns(teacher, student.species) >= 0).any():
        raise ConfigError(f"{key}: {teacher.path} knows none of the {len(student.species)} species of "
                          f"the model {student.path}")


def load_teacher(path: str, threads: int = 1, key: str = "cascade.teacher") -> Model:
    """The teacher bundle at ``path`` (a BundleError naming ``key`` and the file if it cannot be loaded)."""
    try:
        return load_model(path, threads)
    except BundleError as exc:
        raise BundleError(f"{key}: {exc}") from None


@dataclass(frozen=True)
class CascadeTeacher:
    """The teacher, loaded once and shared by every pipeline (every source, every segment), and the screen
    threshold; :meth:`stage` makes a pipeline's own :class:`Cascade`."""

    model: Model
    screen_threshold: float

    def check(self, student: Model, grid: Grid, key: str = "cascade.teacher") -> None:
        """:func:`check_cascade` of this teacher."""
        check_cascade(self.model, student, grid, key)

    def stage(self, student: Model, stats: PipelineStats | None = None) -> Cascade:
        """A new cascade stage for a pipeline of ``student``."""
        return Cascade(self.model, student, self.screen_threshold, stats)


class Cascade:
    """Stage of a :class:`~daemon.pipeline.scoring.ScoringPipeline`: hears its audio, screens its window scores.

    ``stats.teacher_windows`` counts the windows sent to the teacher, ``stats.teacher_seconds`` their time.
    """

    def __init__(self, teacher: Model, student: Model, screen_threshold: float,
                 stats: PipelineStats | None = None) -> None:
        self.teacher = teacher
        self.screen_threshold = screen_threshold
        self._columns = teacher_columns(teacher, student.species)
        self._known = self._columns >= 0
        self._screening = Screening(self._known, teacher.identity)
        self._stats = stats
        context = teacher.backend.context_samples()
        self._lead = math.ceil(context / SAMPLE_RATE) * SAMPLE_RATE  # whole seconds: aligned with any model rate
        self.reset()

    def reset(self) -> None:
        """A new segment: the audio heard so far is forgotten."""
        self._buffer = np.zeros(0, dtype=np.float32)
        self._kept = slice(0, 0)  # the audio kept: self._buffer[self._kept]
        self._audio_start = 0  # stream index of the first sample kept
        self._segment_start: int | None = None

    def hear(self, block: AudioBlock) -> None:
        """Keep the block's samples (blocks of one segment arrive contiguous, as the pipeline checks), appended
        in place: the kept audio is moved only when the buffer is full, so a block costs its own length."""
        if self._segment_start is None:
            self._segment_start = self._audio_start = block.start_sample
        samples, (first, end) = block.samples, (self._kept.start, self._kept.stop)
        if end + samples.size > self._buffer.size:
            kept = end - first
            grown = np.zeros(max(2 * (kept + samples.size), self._buffer.size), dtype=np.float32)
            grown[:kept] = self._buffer[first:end]
            self._buffer, first, end = grown, 0, kept
        self._buffer[end: end + samples.size] = samples
        self._kept = slice(first, end + samples.size)

    def screen(self, start: int, end: int, scores: np.ndarray) -> tuple[np.ndarray, Screening | None]:
        """The window ``[start, end)``'s scores: the teacher's where it flags them (with the :class:`Screening`;
        the teacher hears the window and its lead, never the audio after it, however long the block), else the
        student's ``scores`` (and None). Audio before the window (less its lead) is let go."""
        flagged = scores.size > 0 and float(scores.max()) >= self.screen_threshold
        first = max(start - self._lead, self._segment_start if self._segment_start is not None else start)
        if flagged:
            started = time.perf_counter()
            heard = self._buffer[self._kept][max(first - self._audio_start, 0): end - self._audio_start]
            lead = start - first
            teacher = self._teacher_scores(heard, lead)
            scores = scores.copy()
            scores[self._known] = teacher[self._columns[self._known]]
            if self._stats is not None:
                self._stats.teacher_windows += 1
                self._stats.teacher_seconds += time.perf_counter() - started
        cut = min(max(first - self._audio_start, 0), self._kept.stop - self._kept.start)
        self._kept, self._audio_start = slice(self._kept.start + cut, self._kept.stop), self._audio_start + cut
        return scores, self._screening if flagged else None

    def _teacher_scores(self, heard: np.ndarray, lead: int) -> np.ndarray:
        """The teacher's probabilities for the window that starts ``lead`` samples into ``heard``: its own
        stages, a fresh resampler over all of ``heard`` and a pooler from the window's start."""
        backend = self.teacher.backend
        encoder = backend.encoder()
        parts = encoder.push(heard) + encoder.flush()
        resampled = np.concatenate(parts) if parts else np.zeros(0, np.float32)
        pooler = backend.pooler(WindowGrid())
        window = resampled[lead * backend.spec.sample_rate // SAMPLE_RATE:]
        vector = (pooler.push(window) + pooler.flush())[0].vector
        return self.teacher.head.probabilities(vector[None, :])[0]
