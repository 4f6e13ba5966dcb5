"""How closely a student follows its teacher on audio it did not learn from (``birdd distill --check SHARE``).

A seeded share of the recordings (those at least one window long) is held out; a student is fitted on the
rest with the same recipe, then scored on test-like windows of the held-out recordings: their real 5-s
windows, and each held-out call (a window where the teacher's probability for a learnt species reaches
:data:`VERDICT`) mixed :data:`MIXTURES_PER_CALL` times into a real held-out window at -5..15 dB, plus
:data:`BACKGROUND_SHARE` more real windows, each as the teacher scores it. The **fidelity** is the macro
ROC-AUC of the student's scores against the teacher's verdicts (probability >= ``VERDICT``) on those
windows: 1 when the student ranks every window as its teacher does, 0.5 for chance. It is the check that
chose the distillation recipe (docs/accuracy.md); the student that is written is then fitted on all the
audio.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np

from daemon.batch.evaluate import macro_roc_auc
from daemon.constants import SAMPLE_RATE
from daemon.errors import DatasetError
from daemon.model.loader import embed_signal
from daemon.model.windows import WindowGrid
from trainer.distill import TeacherPass, fit_student, probabilities
from trainer.distill_recipe import DistillRecipe
from trainer.synthesis import place_call

log = logging.getLogger(__name__)

VERDICT = 0.1
"""teacher probability that counts as "present" in the check's reference (and makes a held-out window a call)"""
MIXTURES_PER_CALL = 2
BACKGROUND_SHARE = 0.3


def held_out_files(run: TeacherPass, share: float, seed: int) -> list[int]:
    """Indices of a seeded ``share`` of the window-long recordings (at least one), leaving at least one."""
    length = WindowGrid().length
    long_enough = [i for i, (_, samples) in enumerate(run.decoded) if samples.size >= length]
    if len(long_enough) < 2:
        raise DatasetError(f"{run.decoded[0][0]}: --check holds recordings out, and there are {len(long_enough)} of "
                           f"at least one window: it needs two or more")
    count = min(len(long_enough) - 1, max(1, round(share * len(long_enough))))
    return sorted(np.random.default_rng(seed).choice(long_enough, count, replace=False).tolist())


def held_out_windows(run: TeacherPass, held: list[int], columns: list[int],
                     rng: np.random.Generator) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Test-like windows of the ``held`` recordings (module docstring), each with the teacher's probabilities
    for all its species: real windows as the teacher scored them in its pass, mixtures scored afresh."""
    grid, teacher_grid = WindowGrid(), run.teacher.grid
    calls, backgrounds = [], []
    for i in held:
        samples, logits = run.decoded[i][1], run.logits[i]
        for w, z in enumerate(logits):
            start = teacher_grid.start(w)
            window = samples[start: start + grid.length]
            if probabilities(z[columns]).max() >= VERDICT:
                calls.append(window)
            if start % grid.length == 0 and start + grid.length <= samples.size:
                backgrounds.append((window, probabilities(z)))
    for window, reference in backgrounds:
        yield window.astype(np.float32), reference
    for call in calls:
        for _ in range(MIXTURES_PER_CALL):
            mixed = backgrounds[rng.integers(len(backgrounds))][0].astype(np.float32)
            place_call(mixed, call, rng.uniform(-5, 15), rng)
            yield mixed, probabilities(run.teacher.logits_of_window(mixed))
    for _ in range(int(len(calls) * BACKGROUND_SHARE)):
        window, reference = backgrounds[rng.integers(len(backgrounds))]
        yield window.astype(np.float32), reference


def check_student(run: TeacherPass, columns: list[int], recipe: DistillRecipe, share: float,
                  progress: bool) -> dict:
    """Fit a student on all but a held-out ``share`` of the recordings and measure its fidelity to the
    teacher on the held-out ones; what the manifest records (``distillation.check``)."""
    seed = recipe.student.seed
    held = held_out_files(run, share, seed + 3)
    return {"share": share, **fidelity_on(run, columns, recipe, held, np.random.default_rng(seed + 4), progress)}


def fidelity_on(run: TeacherPass, columns: list[int], recipe: DistillRecipe, held: list[int],
                rng: np.random.Generator, progress: bool) -> dict:
    """A student fitted on the recordings not in ``held``, scored on test-like windows of those in it: the
    held-out audio, the fidelity (None when the teacher hears no learnt species there) and, per species heard,
    its fidelity and the number of windows the teacher hears it in."""
    scored = run.scored(columns, recipe.teacher)
    held_set = set(held)
    kept = [item for i, item in enumerate(scored) if i not in held_set]
    log.info("check: a student fitted on %d recordings, scored on %d held out", len(kept), len(held))
    fitted, _ = fit_student(kept, recipe, progress)
    vectors, reference = [], []
    for window, teacher in held_out_windows(run, held, columns, rng):
        vectors.append(embed_signal(fitted.backend, window, WindowGrid())[0].vector)
        reference.append(teacher[columns])
    student = fitted.head().probabilities(np.stack(vectors))
    verdicts = (np.stack(reference) >= VERDICT).astype(np.float32)
    heard = verdicts.sum(axis=0)
    report = {"held_out_files": len(held),
              "held_out_hours": round(sum(run.decoded[i][1].size for i in held) / SAMPLE_RATE / 3600, 3),
              "windows": len(student), "verdict": VERDICT, "fidelity": None, "species": {}}
    if not np.any((heard > 0) & (heard < len(verdicts))):  # no species with a positive and a negative window
        log.warning("check: the teacher hears none of the learnt species in the held-out audio: no fidelity")
        return report
    codes = [run.teacher.species[i].code for i in columns]
    fidelity, per_species = macro_roc_auc(verdicts, student, codes)
    log.info("check: fidelity to the teacher %.4f on %d held-out windows (%d species heard there)", fidelity,
             len(student), len(per_species))
    positives = dict(zip(codes, heard.astype(int).tolist(), strict=True))
    return report | {"fidelity": round(fidelity, 4),
                     "species": {c: {"fidelity": round(a, 4), "windows": positives[c]} for c, a in per_species.items()}}
