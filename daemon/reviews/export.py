"""``birdd export-reviews``: the reviewed detections of a store as a labelled dataset, and threshold suggestions.

The dataset is BirdCLEF-shaped, so ``birdd train`` reads it as it is and ``birdd distill`` takes its audio:

- ``taxonomy.csv``: the species with at least one detection reviewed correct (and its audio kept);
- ``train.csv`` and ``train_audio/<code>/<id>.<ext>``: each detection reviewed correct, its clip as a labelled
  recording (the detection's window and the clip margins);
- ``train_soundscapes/<code>_fp_<id>.<ext>``: each false positive's clip. ``birdd train`` takes soundscapes as
  holding no call of any species: they are its negative windows and the backgrounds its calls are mixed into,
  so the head learns that what fooled the detector is none of its species;
- ``reviews.csv``: every exported clip with its species and verdict, for ``birdd distill --reviews``: the
  student's target for that species is 0 in the windows of a false positive and 1 in those of a correct one;
- ``thresholds.toml``: per-species thresholds (:mod:`daemon.reviews.thresholds`), ``code = value`` lines that
  ``detection.species_thresholds`` may name as a file.

The audio comes from the reviews' own links (:func:`daemon.store.schema.review_audio_dir`), so it is there
even after the disk policy deleted the clip or retention the detection.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from daemon.errors import StorageError, StoreError
from daemon.reviews.thresholds import Suggestion, Verdict, suggest
from daemon.store.queries import verified_reviews
from daemon.store.schema import open_store, review_audio_dir

STORE_FILE = "detections.sqlite"
"""the store's file name in a folder given as ``--store``"""
BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass(frozen=True)
class ExportSummary:
    """What an export wrote."""

    correct: int
    false_positive: int
    without_audio: int
    species: int
    suggestions: list[Suggestion]


def store_file(path: Path) -> Path:
    """The store file of ``--store``: the file itself, or :data:`STORE_FILE` in a folder."""
    return path / STORE_FILE if path.is_dir() else path


def export_reviews(store: Path, out: Path, target_precision: float, min_reviews: int) -> ExportSummary:
    """Write the dataset and ``thresholds.toml`` into ``out`` (a new or empty folder)."""
    path = store_file(store)
    if not path.is_file():
        raise StoreError(f"{path}: no such detection store")
    conn = open_store(path, read_only=True)
    try:
        reviews = verified_reviews(conn)
    finally:
        conn.close()
    if not reviews:
        raise StoreError(f"{path}: no reviewed detections (review some on birdd web's page or through "
                         "POST /api/v2/detections/{id}/review first)")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise StorageError(f"{out}: exists and is not an empty folder (export-reviews writes a new dataset)")
    verdicts = [Verdict(r["snapshot"]["species_code"], float(r["snapshot"]["confidence"]),
                        r["verified"] == "correct") for r in reviews]
    suggestions = suggest(verdicts, target_precision, min_reviews)
    try:
        return _write(out, reviews, review_audio_dir(path), suggestions, target_precision)
    except OSError as exc:
        raise StorageError(f"{out}: cannot write ({exc.filename or out}: {exc.strerror or exc})") from None


def _write(out: Path, reviews: list[dict], audio_dir: Path, suggestions: list[Suggestion],
           target_precision: float) -> ExportSummary:
    out.mkdir(parents=True, exist_ok=True)
    species: dict[str, tuple[str, str]] = {}
    train_rows, review_rows = [], []
    without_audio = correct = wrong = 0
    for review in reviews:
        detection = review["snapshot"]
        source = audio_dir / review["audio"] if review["audio"] else None
        if source is None or not source.is_file():
            without_audio += 1
            continue
        code, row_id = detection["species_code"], review["detection"]
        if review["verified"] == "correct":
            name = f"{code}/{row_id}{source.suffix}"
            target = out / "train_audio" / name
            train_rows.append({"primary_label": code, "filename": name, "detection_id": row_id,
                               "confidence": detection["confidence"], "start_utc": detection["start_utc"]})
            species.setdefault(code, (detection["common_name"], detection["scientific_name"]))
            correct += 1
        else:
            target = out / "train_soundscapes" / f"{code}_fp_{row_id}{source.suffix}"
            wrong += 1
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        review_rows.append({"filename": target.relative_to(out).as_posix(), "species_code": code,
                            "verified": review["verified"], "confidence": detection["confidence"],
                            "detection_id": row_id, "start_utc": detection["start_utc"]})
    (out / "train_soundscapes").mkdir(exist_ok=True)
    _write_csv(out / "taxonomy.csv", ["primary_label", "common_name", "scientific_name"],
               [{"primary_label": c, "common_name": n[0], "scientific_name": n[1]} for c, n in sorted(species.items())])
    _write_csv(out / "train.csv", ["primary_label", "filename", "detection_id", "confidence", "start_utc"], train_rows)
    _write_csv(out / "reviews.csv", ["filename", "species_code", "verified", "confidence", "detection_id",
                                     "start_utc"], review_rows)
    (out / "thresholds.toml").write_text(thresholds_toml(suggestions, target_precision, len(reviews)),
                                         encoding="utf-8")
    return ExportSummary(correct, wrong, without_audio, len(species), suggestions)


def _write_csv(path: Path, columns: list[str], rows: list[dict]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, columns)
        writer.writeheader()
        writer.writerows(rows)


def thresholds_toml(suggestions: list[Suggestion], target_precision: float, n_reviews: int) -> str:
    """The suggestions as ``code = threshold`` lines with a comment of where they come from."""
    lines = [f"# per-species thresholds suggested by birdd export-reviews from {n_reviews} reviewed detections: the",
             f"# lowest that keeps precision >= {target_precision:g} on them; use as",
             '# [detection] species_thresholds = "<this file>"']
    for s in suggestions:
        if s.threshold is not None:
            key = s.species_code if BARE_KEY.match(s.species_code) else json.dumps(s.species_code)  # a TOML string
            lines.append(f"{key} = {s.threshold:g}  # {s.correct} correct, {s.false_positive} false positive(s)")
    return "\n".join(lines) + "\n"
