"""``birdd eval``: the BirdCLEF score of a submission against a label file."""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from daemon.errors import BirddError, SubmissionError


@dataclass(frozen=True)
class Table:
    """A submission-format CSV: row ids, species columns, values ``(rows, columns)``."""

    row_ids: list[str]
    columns: list[str]
    values: np.ndarray


def macro_roc_auc(labels: np.ndarray, scores: np.ndarray, columns: list[str]) -> tuple[float, dict[str, float]]:
    """BirdCLEF metric: mean of scikit-learn's ``roc_auc_score`` over columns with a positive (and a negative)
    label, as the competition's own metric computes it; also the per-column AUCs."""
    try:
        from sklearn.metrics import roc_auc_score
    except ImportError:
        raise BirddError("birdd eval needs scikit-learn: pip install 'birdd[train]'") from None
    per_species = {}
    for j, name in enumerate(columns):
        positives = labels[:, j] > 0.5
        if positives.any() and not positives.all():
            per_species[name] = float(roc_auc_score(positives, scores[:, j]))
    if not per_species:
        raise SubmissionError("no species column has a positive label: the score is undefined")
    return float(np.mean(list(per_species.values()))), per_species


def read_table(path: str | Path) -> Table:
    """Read a submission-format CSV (``row_id`` then one numeric column per species)."""
    path = Path(path)
    if not path.is_file():
        raise SubmissionError(f"{path}: {'not a regular file' if path.exists() else 'no such file'}")
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:  # -sig: a spreadsheet's byte-order mark is fine
            header, row_ids, values = _read_rows(path, csv.reader(fh))
    except UnicodeDecodeError as exc:
        raise SubmissionError(f"{path}: not UTF-8 text ({exc.reason})") from None
    except csv.Error as exc:
        raise SubmissionError(f"{path}: not a CSV file ({exc})") from None
    if len(set(header)) != len(header):
        raise SubmissionError(f"{path}: duplicate column names in the header")
    if len(set(row_ids)) != len(row_ids):
        raise SubmissionError(f"{path}: duplicate row_id values")
    array = np.array(values, dtype=np.float64).reshape(len(row_ids), len(header) - 1)
    return Table(row_ids, header[1:], array)


def _read_rows(path: Path, reader: Iterator[list[str]]) -> tuple[list[str], list[str], list[list[float]]]:
    header = next(reader, None)
    if not header or header[0] != "row_id":
        raise SubmissionError(f"{path}: the first column must be row_id")
    row_ids, values = [], []
    for line, row in enumerate(reader, start=2):
        if len(row) != len(header):
            raise SubmissionError(f"{path}:{line}: {len(row)} fields, header has {len(header)}")
        row_ids.append(row[0])
        try:
            numbers = [float(v) for v in row[1:]]
        except ValueError:
            raise SubmissionError(f"{path}:{line}: non-numeric value in row {row[0]!r}") from None
        if not all(map(math.isfinite, numbers)):
            raise SubmissionError(f"{path}:{line}: NaN or infinite value in row {row[0]!r}")
        values.append(numbers)
    return header, row_ids, values


def score_submission(submission: str | Path, labels: str | Path) -> tuple[float, dict[str, float]]:
    """Macro ROC-AUC of ``submission`` against ``labels``; rows and columns must match (order may differ)."""
    sub, truth = read_table(submission), read_table(labels)
    _require_same(sub.columns, truth.columns, "species column", submission, labels)
    _require_same(sub.row_ids, truth.row_ids, "row_id", submission, labels)
    rows = {r: i for i, r in enumerate(sub.row_ids)}
    cols = {c: j for j, c in enumerate(sub.columns)}
    aligned = sub.values[[rows[r] for r in truth.row_ids]][:, [cols[c] for c in truth.columns]]
    try:
        return macro_roc_auc(truth.values, aligned, truth.columns)
    except SubmissionError as exc:
        raise SubmissionError(f"{labels}: {exc}") from None


def _require_same(got: list[str], want: list[str], what: str, submission: Path | str, labels: Path | str) -> None:
    missing = [x for x in want if x not in set(got)]
    extra = [x for x in got if x not in set(want)]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"{len(missing)} {what}(s) missing from {submission} (e.g. {', '.join(missing[:3])})")
        if extra:
            parts.append(f"{len(extra)} {what}(s) not in {labels} (e.g. {', '.join(extra[:3])})")
        shared = len(set(got) & set(want))
        raise SubmissionError(f"the {what}s differ ({len(got)} in {submission}, {len(want)} in {labels}, "
                              f"{shared} shared): " + "; ".join(parts))
