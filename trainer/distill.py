"""``birdd distill``: an STSG student for a site, taught by a TFLite teacher on the site's unlabelled audio.

The teacher scores every window of the audio (on a fine grid, cached). The student's codebook, skip-gram
vectors and idf are fitted on the audio itself, as ``birdd train`` does on soundscapes; its head is fitted
on the teacher's scores as soft targets, for the species the teacher finds in the audio (or a given list).
Its training windows are the real windows with the teacher's targets, and the windows the teacher is
confident about ("calls") mixed into other windows, the target of a mixture being the maximum of its
parts': the student learns to find a call the teacher found in clear audio under other sounds too. With
``teacher.augment_windows``, the head also learns from mixtures of two recordings that the teacher scores
as they are (:mod:`trainer.distill_augment`).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from daemon.audio.files import AUDIO_SUFFIXES, find_audio_files, read_audio_blocks
from daemon.constants import SAMPLE_RATE, WINDOW_SECONDS
from daemon.errors import AudioError, DatasetError
from daemon.model.bundle import write_bundle
from daemon.model.loader import Species, build_manifest
from daemon.model.stsg import NAME as STSG
from daemon.model.teacher_evidence import named, never_found
from daemon.model.windows import WindowGrid
from daemon.pipeline.species_list import read_species_list, species_index
from trainer.audio_spill import AudioSpill, Samples, SpilledSamples
from trainer.distill_augment import Scorer, augmented_windows
from trainer.distill_recipe import ALL_CLASSES_FLOOR, DistillRecipe, TeacherParams
from trainer.review_labels import apply_review_labels, read_review_labels
from trainer.synthesis import mixed_windows
from trainer.teacher import Teacher
from trainer.train import FittedSTSG, WindowSource, fit_stsg_on, stage, stsg_backend_params

log = logging.getLogger(__name__)


@dataclass
class ScoredAudio:
    """One decoded file (:data:`STORED_AUDIO` samples, spilled to disk or an array) and its per-window targets
    on the teacher's grid (window ``w`` starts at ``grid.start(w)``)."""

    path: Path
    samples: Samples
    targets: np.ndarray


def teacher_grid(params: TeacherParams) -> WindowGrid:
    """The 5-s window grid the teacher scores on."""
    return WindowGrid.with_hop_seconds(params.hop_s)


STORED_AUDIO = np.float16
"""how the decoded audio is held (on disk, :mod:`trainer.audio_spill`) while distilling: half of float32's size
(230 MB per hour), rounding error 2^-11 of each sample (-66 dB), far below what the log-mel front end or the
teacher can hear"""


def decode_stored(path: Path) -> np.ndarray:
    """``path`` decoded block by block into :data:`STORED_AUDIO` (no float32 copy of the whole file)."""
    limit = float(np.finfo(STORED_AUDIO).max)
    return np.concatenate([np.clip(block, -limit, limit).astype(STORED_AUDIO) for block in read_audio_blocks(path)])


def decode_files(paths: list[Path], spill: AudioSpill, progress: bool
                 ) -> tuple[list[tuple[Path, SpilledSamples]], list[str]]:
    """Every readable file decoded (:func:`decode_stored`) into ``spill``, one file in memory at a time, and the
    unreadable ones (logged, skipped)."""
    decoded, failed = [], []
    for path in tqdm(paths, desc="decode", unit="file", disable=not progress):
        try:
            decoded.append((path, spill.append(decode_stored(path))))
        except AudioError as exc:
            log.warning("skipped: %s", exc)
            failed.append(str(path))
    return decoded, failed


def teacher_logits(teacher: Teacher, decoded: list[tuple[Path, Samples]], progress: bool) -> list[np.ndarray]:
    """The teacher's logits of every window of every file (cached), one file's samples read at a time."""
    logits = [teacher.logits(samples[:]) for _, samples in tqdm(decoded, desc="teacher", unit="file",
                                                                 disable=not progress)]
    if teacher.cache is not None:
        log.info("teacher score cache %s: %d hits, %d misses", teacher.cache.root, teacher.cache.hits,
                 teacher.cache.misses)
    return logits


def probabilities(logits: np.ndarray) -> np.ndarray:
    """Element-wise sigmoid."""
    return 0.5 * (1.0 + np.tanh(0.5 * logits))


FOUND = 0.5
"""a learnt species is "found" in the audio when the teacher's probability for it reaches this in some window"""

EVIDENCE_ROWS = 4096
"""windows of a file's logits looked at together (a day-long file of a 6522-class teacher is 2 GB as a whole)"""


def audio_peaks(logits: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per teacher column: its highest probability anywhere in the audio, and how many windows reach
    :data:`FOUND`; a block of windows at a time (no copy of all the logits)."""
    n_columns = logits[0].shape[1]
    peak = np.full(n_columns, -np.inf, np.float32)
    found = np.zeros(n_columns, np.int64)
    at = np.float32(np.log(FOUND / (1 - FOUND)))  # the logit of FOUND: compared before any sigmoid
    for z in logits:
        for start in range(0, len(z), EVIDENCE_ROWS):
            block = z[start: start + EVIDENCE_ROWS]
            peak = np.maximum(peak, block.max(axis=0))
            found += (block >= at).sum(axis=0)
    return probabilities(peak), found


def teacher_evidence(peaks: tuple[np.ndarray, np.ndarray], columns: list[int], species: list[Species]
                     ) -> dict[str, dict]:
    """Per learnt species, from :func:`audio_peaks`: the teacher's highest probability in the audio (rounded
    down to 4 places) and how many windows reach :data:`FOUND` (docs/distill.md, "Species the audio barely
    holds")."""
    peak, found = peaks
    return {s.code: {"peak": math.floor(float(peak[c]) * 1e4) / 1e4, "windows": int(found[c])}
            for s, c in zip(species, columns, strict=True)}


def log_evidence(evidence: dict[str, dict]) -> None:
    """Tell the user how many species the teacher found in the audio, and name those it never did."""
    missing = never_found(evidence)
    log.info("teacher evidence: %d of %d learnt species reach %.1f in some window", len(evidence) - len(missing),
             len(evidence), FOUND)
    if missing:
        log.warning("%d learnt species never reach %.1f in this audio, so the student will know them poorly "
                    "(lowest first: %s); more recordings with them help (the manifest's "
                    "distillation.teacher_evidence lists every species)", len(missing), FOUND, named(missing))


@dataclass(frozen=True)
class RangePlace:
    """A place and week for BirdNET's range model (``birdd species``'s options)."""

    latitude: float
    longitude: float
    week: int = -1
    threshold: float = 0.03


@dataclass(frozen=True)
class SpeciesChoice:
    """Which teacher species the student learns: those of a species list file, those BirdNET's range model
    expects at a place, or (neither given) those whose teacher probability reaches a floor in the audio."""

    include: Path | None = None
    place: RangePlace | None = None

    def columns(self, teacher: Teacher, peak: np.ndarray, floor: float) -> list[int]:
        """The chosen teacher columns (``peak``: each column's highest probability in the audio,
        :func:`audio_peaks`; ``floor`` as :func:`species_floor` resolves it)."""
        if self.include is not None:
            return include_columns(self.include, teacher.species)
        if self.place is not None:
            from daemon.model.range_filter import RangeFilter, StationRange

            place = self.place
            station = StationRange(RangeFilter.open(teacher.model.path), teacher.species, place.latitude,
                                   place.longitude, place.threshold)
            return [int(i) for i in np.flatnonzero(station.for_week(place.week))]
        return [int(i) for i in np.flatnonzero(peak >= floor)]

    def describe(self, floor: float) -> dict:
        """The manifest's record of the choice."""
        if self.include is not None:
            return {"include_file": str(self.include)}
        if self.place is not None:
            return {"range": asdict(self.place)}
        return {"species_floor": floor}


def species_floor(params: TeacherParams, teacher: Teacher) -> float:
    """The floor the default species choice applies: the recipe's when it sets one (0 or more); otherwise 0 (every
    species) for a teacher over a species list, :data:`ALL_CLASSES_FLOOR` for one over all its model's classes."""
    if params.species_floor >= 0:
        return params.species_floor
    return ALL_CLASSES_FLOOR if teacher.model.manifest.get("zero_shot", {}).get("all_classes") else 0.0


def include_columns(path: Path, teacher_species: list[Species]) -> list[int]:
    """Teacher columns of a species list file (the forms ``detection.include`` takes: codes, scientific names,
    BirdNET labels, ``birdd species`` output); an entry the teacher does not know raises DatasetError."""
    columns: list[int] = []
    for entry in read_species_list(path, "--include"):
        column = species_index(entry, teacher_species)
        if column is None:
            raise DatasetError(f"{path}: species {entry!r} is not one of the teacher's species")
        if column not in columns:
            columns.append(column)
    if not columns:
        raise DatasetError(f"{path}: no species in the list")
    return columns


def neighbour_mean(logits: np.ndarray, neighbours: int) -> np.ndarray:
    """Each row averaged with up to ``neighbours`` rows on each side (those that exist at the ends)."""
    if neighbours == 0 or len(logits) < 2:
        return logits
    total, count = logits.astype(np.float32), np.ones(len(logits), np.float32)
    for k in range(1, min(neighbours, len(logits) - 1) + 1):
        total[k:] += logits[:-k]
        total[:-k] += logits[k:]
        count[k:] += 1
        count[:-k] += 1
    total /= count[:, None]
    return total


def soft_targets(logits: np.ndarray, params: TeacherParams) -> np.ndarray:
    """The student's targets from the teacher's logits of a file's windows: averaged over ``neighbours``
    windows each side, then tempered probabilities, or 0/1 above a threshold."""
    logits = neighbour_mean(logits, params.neighbours)
    if params.hard_threshold > 0:
        return (probabilities(logits) >= params.hard_threshold).astype(np.float32)
    return probabilities(logits / params.temperature).astype(np.float32)


class WindowSpans(Sequence):
    """Window-long spans of files at ``(file, grid window)`` positions, read when indexed (a long archive's
    calls are never all in memory)."""

    def __init__(self, audio: list[Samples], positions: list[tuple[int, int]], grid: WindowGrid) -> None:
        self.audio, self.positions, self.grid = audio, positions, grid

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, k: int) -> np.ndarray:
        i, w = self.positions[k]
        start = self.grid.start(w)
        return self.audio[i][start: start + self.grid.length]


def student_windows(scored: list[ScoredAudio], grid: WindowGrid, recipe: DistillRecipe) -> tuple[WindowSource, int]:
    """The student's training windows and how many calls are mixed: ``background_windows`` real windows
    (full teacher windows of files at least one window long, with their targets), and every call (a window
    whose top target reaches ``call_threshold``; a short file's window is its whole audio) mixed
    ``windows_per_recording`` times into real windows. Windows are read from the audio as they are made."""
    params, synthesis = recipe.teacher, recipe.student.synthesis
    calls, call_targets, backgrounds = [], [], []
    for i, item in enumerate(scored):
        for w, target in enumerate(item.targets):
            if grid.start(w) + grid.length <= item.samples.size:
                backgrounds.append((i, w))
            if target.size and target.max() >= params.call_threshold:
                calls.append((i, w))
                call_targets.append(target)
    if len(calls) > params.max_calls:
        keep = np.sort(np.random.default_rng(recipe.student.seed + 2).choice(len(calls), params.max_calls,
                                                                              replace=False))
        calls, call_targets = [calls[k] for k in keep], [call_targets[k] for k in keep]
    audio = [item.samples for item in scored]
    call_audio, real_audio = WindowSpans(audio, calls, grid), WindowSpans(audio, backgrounds, grid)

    def real_window(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        k = rng.integers(len(backgrounds))
        i, w = backgrounds[k]
        return real_audio[k].astype(np.float32), scored[i].targets[w].copy()

    def make():
        rng = np.random.default_rng(recipe.student.seed + 1)
        return mixed_windows(call_audio, call_targets, real_window, synthesis, rng)

    count = len(calls) * synthesis.windows_per_recording + synthesis.background_windows
    return WindowSource(make, count), len(calls)


def audio_summary(decoded: list[tuple[Path, Samples]], failed: list[str]) -> dict:
    """What the student's manifest records about the audio it saw."""
    listing = "\n".join(str(path.resolve()) for path, _ in decoded)
    return {"files": len(decoded), "hours": round(sum(x.size for _, x in decoded) / SAMPLE_RATE / 3600, 3),
            "file_list_sha256": hashlib.sha256(listing.encode()).hexdigest(), "skipped_files": failed}


def require_long_audio(decoded: list[tuple[Path, Samples]], needed: int = 1) -> list[int]:
    """The indices of the files at least one window long. The student needs field audio: refuse a corpus of
    short clips only (and, to hold recordings out for a check, fewer than ``needed`` long ones)."""
    window = WINDOW_SECONDS * SAMPLE_RATE
    long_enough = [i for i, (_, samples) in enumerate(decoded) if samples.size >= window]
    if not long_enough:
        path, samples = max(decoded, key=lambda item: item[1].size)
        raise DatasetError(f"{path}: {samples.size / SAMPLE_RATE:.1f} s, and no file is as long as one "
                           f"{WINDOW_SECONDS}-s window: distillation needs recordings of at least {WINDOW_SECONDS} s")
    if len(long_enough) < needed:
        raise DatasetError(f"{decoded[long_enough[0]][0]}: the only recording of at least {WINDOW_SECONDS} s; holding "
                           f"recordings out (--check) needs {needed} or more")
    return long_enough


@dataclass
class TeacherPass:
    """Decoded audio (spilled to disk) and the teacher's logits of every window of it."""

    teacher: Teacher
    decoded: list[tuple[Path, Samples]]
    failed: list[str]
    logits: list[np.ndarray]

    def scored(self, columns: list[int], params: TeacherParams) -> list[ScoredAudio]:
        """Every file with its targets for the teacher's ``columns``."""
        return [ScoredAudio(path, samples, soft_targets(z[:, columns], params))
                for (path, samples), z in zip(self.decoded, self.logits, strict=True)]

    def scorer(self, columns: list[int]) -> Scorer:
        """The teacher's logits for ``columns`` of any signal (the augmented windows'; cached as the pass's)."""
        return lambda samples: self.teacher.logits(samples)[:, columns]


def run_teacher(paths: list[str | Path], teacher_dir: str | Path, params: TeacherParams,
                cache_dir: str | Path | None, progress: bool, long_needed: int = 1,
                spill_dir: str | Path | None = None) -> TeacherPass:
    """Find and decode the audio at ``paths`` into a temporary file in ``spill_dir`` (None: the system's
    temporary folder) and score it with the teacher (cached under ``cache_dir``); refuse it before the teacher
    runs unless ``long_needed`` files are at least one window long."""
    files = find_audio_files(list(paths))
    if not files:
        raise DatasetError(f"{', '.join(map(str, paths))}: no audio files to distil on (looked for "
                           f"{', '.join(AUDIO_SUFFIXES)})")
    teacher = Teacher(teacher_dir, teacher_grid(params), cache_dir)
    with stage("decode audio"):
        decoded, failed = decode_files(files, AudioSpill(STORED_AUDIO, spill_dir), progress)
    if not decoded:
        raise DatasetError(f"{files[0]}: none of the {len(files)} audio files could be read")
    require_long_audio(decoded, long_needed)
    with stage("teacher scores"):
        logits = teacher_logits(teacher, decoded, progress)
    return TeacherPass(teacher, decoded, failed, logits)


def student_inputs(scored: list[ScoredAudio], recipe: DistillRecipe) -> tuple[list[Samples], WindowSource, int]:
    """What the student's features and head are fitted on: the streams (files at least one window long), the
    training windows (:func:`student_windows`), and how many calls are mixed."""
    grid = teacher_grid(recipe.teacher)
    windows, n_calls = student_windows(scored, grid, recipe)
    streams = [item.samples for item in scored if item.samples.size >= grid.length]
    return streams, windows, n_calls


def augmentation(scored: list[ScoredAudio], recipe: DistillRecipe, score: Scorer, progress: bool,
                 at_most: int) -> WindowSource | None:
    """The head's ``teacher.augment_windows`` augmented windows of the scored audio, but never more than
    ``at_most`` (the real training windows: a few minutes of audio are not outweighed by mixtures of
    themselves), which the teacher scores with ``score`` (:mod:`trainer.distill_augment`); None for none."""
    params = dataclasses.replace(recipe.teacher, augment_windows=min(recipe.teacher.augment_windows, at_most))
    if not params.augment_windows:
        return None
    with stage("augmented windows"):
        augmented = augmented_windows([item.samples for item in scored], teacher_grid(params),
                                      params, recipe.student.seed, score,
                                      functools.partial(soft_targets, params=recipe.teacher), progress)
    log.info("augmented windows: %d, each scored by the teacher", augmented.count)
    return augmented


def fit_student(scored: list[ScoredAudio], recipe: DistillRecipe, score: Scorer, progress: bool
                ) -> tuple[FittedSTSG, int]:
    """The student fitted on the scored audio (``score``: the teacher, for augmented windows, which the head
    alone learns from: the codebook is fitted as without them), and how many calls were mixed."""
    streams, windows, n_calls = student_inputs(scored, recipe)
    log.info("training windows: %d calls mixed %d times each, %d real windows", n_calls,
             recipe.student.synthesis.windows_per_recording, recipe.student.synthesis.background_windows)
    extra = augmentation(scored, recipe, score, progress, at_most=windows.count)
    return fit_stsg_on(streams, windows, recipe.student, progress, head_only=extra), n_calls


def write_student(out_dir: str | Path, run: TeacherPass, species: list[Species], fitted: FittedSTSG, n_calls: int,
                  recipe: DistillRecipe, selection: dict, evidence: dict[str, dict], check: dict | None = None) -> Path:
    """Write the student bundle; its manifest records the teacher, the audio, the species selection, the
    teacher's evidence per species, the recipe and the held-out check when one was run."""
    summary = audio_summary(run.decoded, run.failed)
    training_data = {**summary, "training_windows": fitted.n_windows, "calls": n_calls}
    distillation = {"teacher": {**run.teacher.describe(), "invocations": run.teacher.invocations},
                    "species_selection": selection, "teacher_evidence": {"found_at": FOUND, "species": evidence},
                    "recipe": recipe.to_dict()["teacher"], **({"check": check} if check else {})}
    manifest = build_manifest(Path(out_dir).name, STSG, stsg_backend_params(recipe.student), species,
                              recipe=recipe.student.to_dict(), training_data=training_data, distillation=distillation)
    path = write_bundle(out_dir, manifest, fitted.arrays)
    log.info("student written to %s: %d species, %d files (%.2f h of audio)", path, len(species), summary["files"],
             summary["hours"])
    return path


def distill(paths: list[str | Path], teacher_dir: str | Path, out_dir: str | Path,
            recipe: DistillRecipe | None = None, choice: SpeciesChoice | None = None,
            cache_dir: str | Path | None = None, progress: bool = True, check: float = 0.0,
            reviews: Path | None = None) -> Path:
    """Distil the teacher bundle at ``teacher_dir`` into an STSG student on the audio at ``paths`` (files
    or folders, recursive); write the student bundle to ``out_dir``. ``choice``: which species (default:
    :func:`species_floor`). ``cache_dir`` None: no teacher score
    cache. ``check`` > 0: first measure a student's fidelity to the teacher on that share of the recordings
    held out (:mod:`trainer.distill_check`). ``reviews``: a ``reviews.csv`` of ``birdd export-reviews`` whose
    verdicts replace the teacher's targets of the reviewed species in the reviewed clips
    (:mod:`trainer.review_labels`)."""
    labels = read_review_labels(reviews) if reviews is not None else []  # a bad file fails before the teacher runs
    recipe = recipe or DistillRecipe()
    started = time.perf_counter()
    spill_dir = Path(out_dir).resolve().parent  # the decoded audio waits beside the student, not in memory
    spill_dir.mkdir(parents=True, exist_ok=True)
    run = run_teacher(paths, teacher_dir, recipe.teacher, cache_dir, progress, 2 if check else 1, spill_dir)
    teacher, choice = run.teacher, choice or SpeciesChoice()
    floor = species_floor(recipe.teacher, teacher)
    peaks = audio_peaks(run.logits)  # one pass over every window's logits, for the species and their evidence
    columns = choice.columns(teacher, peaks[0], floor)
    if not columns:
        raise DatasetError(f"{teacher.model.path}: no species to learn (the teacher's probability reaches the "
                           f"species floor {floor} for none in this audio, or the range list is empty)")
    species = [teacher.species[i] for i in columns]
    selection = {**choice.describe(floor), "species": len(species)}
    log.info("student species: %d of the teacher's %d (%s)", len(species), len(teacher.species), selection)
    evidence = teacher_evidence(peaks, columns, species)
    log_evidence(evidence)
    scored = run.scored(columns, recipe.teacher)
    if reviews is not None:
        selection["reviews"] = {"file": str(reviews), "applied": apply_review_labels(scored, species, labels)}
    report = None
    if check:
        from trainer.distill_check import check_student  # it fits students with this module's functions

        with stage("held-out check"):
            report = check_student(run, scored, columns, recipe, check, progress)
    fitted, n_calls = fit_student(scored, recipe, run.scorer(columns), progress)
    path = write_student(out_dir, run, species, fitted, n_calls, recipe, selection, evidence, report)
    log.info("distillation done in %.1f s", time.perf_counter() - started)
    return path
