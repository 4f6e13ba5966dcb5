"""Per-species threshold suggestions from reviewed detections.

For each species with enough verdicts, the suggestion is the lowest threshold that keeps the precision of
the reviewed detections at or above it at the target: ``correct / (correct + false_positive)`` over those
with ``confidence >= threshold``. Candidates are the reviewed confidences rounded down to
:data:`DECIMALS` places (so each keeps its own detection), and, when no candidate reaches the target,
just above the most confident false positive (the species' reviewed detections were all wrong at these
confidences: nothing reviewed would be kept). Reviews only cover what was detected: a suggestion never
knows about windows below the threshold in force when they were heard.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

DECIMALS = 3
STEP = 10**-DECIMALS


@dataclass(frozen=True)
class Verdict:
    """One reviewed detection: its species, confidence and whether the reviewer found it correct."""

    species_code: str
    confidence: float
    correct: bool


@dataclass(frozen=True)
class Suggestion:
    """A species' reviewed counts and, with enough of them, the suggested threshold and its precision and
    how many correct detections it keeps (``threshold`` None: too few reviews)."""

    species_code: str
    correct: int
    false_positive: int
    threshold: float | None
    precision: float | None
    kept_correct: int


def suggest(verdicts: list[Verdict], target_precision: float, min_reviews: int) -> list[Suggestion]:
    """One :class:`Suggestion` per reviewed species, by species code."""
    by_species: dict[str, list[Verdict]] = {}
    for verdict in verdicts:
        by_species.setdefault(verdict.species_code, []).append(verdict)
    return [_species_suggestion(code, reviews, target_precision, min_reviews)
            for code, reviews in sorted(by_species.items())]


def _species_suggestion(code: str, reviews: list[Verdict], target: float, min_reviews: int) -> Suggestion:
    correct = sum(v.correct for v in reviews)
    wrong = len(reviews) - correct
    if len(reviews) < min_reviews:
        return Suggestion(code, correct, wrong, None, None, 0)
    candidates = sorted({_floor(v.confidence) for v in reviews})
    for threshold in candidates:  # lowest first: the first that reaches the target keeps the most
        kept = [v for v in reviews if v.confidence >= threshold]
        precision = sum(v.correct for v in kept) / len(kept)
        if precision >= target:
            return Suggestion(code, correct, wrong, threshold, round(precision, 4), sum(v.correct for v in kept))
    above = min(1.0, _floor(max(v.confidence for v in reviews if not v.correct)) + STEP)
    kept = [v for v in reviews if v.confidence >= above]
    precision = round(sum(v.correct for v in kept) / len(kept), 4) if kept else None
    return Suggestion(code, correct, wrong, round(above, DECIMALS), precision, sum(v.correct for v in kept))


def _floor(confidence: float) -> float:
    """``confidence`` rounded down to :data:`DECIMALS` places (a tiny tolerance for binary fractions)."""
    return round(math.floor(confidence / STEP + 1e-9) * STEP, DECIMALS)
