"""Reviewed detections as corrections of the teacher: ``birdd distill --reviews reviews.csv``.

``reviews.csv`` is what ``birdd export-reviews`` writes beside the clips (``filename`` relative to the CSV's
folder, ``species_code``, ``verified``). In every window of a reviewed clip the student's target for the
reviewed species becomes 1 (``correct``: a person heard it) or 0 (``false_positive``: whatever the teacher
says), so a false positive the teacher shares is not taught to the student, and a quiet call it missed is.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from daemon.errors import DatasetError
from daemon.model.loader import Species
from trainer.dataset import read_csv_rows

log = logging.getLogger(__name__)

TARGET = {"correct": 1.0, "false_positive": 0.0}


@dataclass(frozen=True)
class ReviewLabel:
    """One reviewed clip: its file, species and target."""

    path: Path
    species_code: str
    target: float


def read_review_labels(path: Path) -> list[ReviewLabel]:
    """The rows of ``reviews.csv``; a missing file or column, an unknown verdict or a missing clip raises
    DatasetError naming the file and line."""
    labels = []
    for line, row in enumerate(read_csv_rows(path, ("filename", "species_code", "verified")), start=2):
        verdict = row["verified"].strip()
        if verdict not in TARGET:
            raise DatasetError(f"{path}:{line}: verified {verdict!r} is not correct or false_positive")
        clip = path.parent / row["filename"].strip()
        if not clip.is_file():
            raise DatasetError(f"{path}:{line}: filename {row['filename']!r} not found")
        labels.append(ReviewLabel(clip.resolve(), row["species_code"].strip(), TARGET[verdict]))
    return labels


def apply_review_labels(scored: list, species: list[Species], labels: list[ReviewLabel]) -> int:
    """Set the targets of the reviewed species in every window of each reviewed file among ``scored``
    (:class:`trainer.distill.ScoredAudio`, in place); returns how many reviews applied. Reviews of a species
    the student does not learn, or of a file not among the audio, are counted in the log and left out."""
    column = {s.code: i for i, s in enumerate(species)}
    by_path = {item.path.resolve(): item for item in scored}
    applied = not_learnt = not_given = 0
    for label in labels:
        item = by_path.get(label.path)
        if item is None:
            not_given += 1
        elif label.species_code not in column:
            not_learnt += 1
        else:
            item.targets[:, column[label.species_code]] = label.target
            applied += 1
    log.info("reviews: %d applied to the teacher's targets, %d of species the student does not learn, %d of "
             "files not among the audio", applied, not_learnt, not_given)
    return applied
