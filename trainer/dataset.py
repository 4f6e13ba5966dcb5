"""Read a BirdCLEF-style dataset: ``taxonomy.csv``, ``train.csv``, ``train_audio/``, ``train_soundscapes/``."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from daemon.audio.files import find_audio_files
from daemon.errors import DatasetError
from daemon.model.loader import Species


@dataclass(frozen=True)
class Recording:
    """One focal training recording and its species code."""

    path: Path
    label: str


@dataclass(frozen=True)
class Dataset:
    """What training reads: species in column order, labelled recordings, unlabelled soundscapes."""

    root: Path
    species: list[Species]
    recordings: list[Recording]
    soundscapes: list[Path]

    @property
    def codes(self) -> list[str]:
        """Species codes in column order."""
        return [s.code for s in self.species]


def read_csv_rows(path: Path, required: tuple[str, ...]) -> list[dict[str, str]]:
    """Rows of a CSV file as dicts; a missing file or column raises DatasetError naming it."""
    if not path.is_file():
        raise DatasetError(f"{path}: no such file")
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise DatasetError(f"{path}: missing column(s) {', '.join(missing)}")
        return list(reader)


def read_taxonomy(path: Path) -> list[Species]:
    """Species from ``taxonomy.csv`` (``primary_label``, ``common_name``, optional ``scientific_name``)."""
    species, seen = [], set()
    for line, row in enumerate(read_csv_rows(path, ("primary_label", "common_name")), start=2):
        code = row["primary_label"].strip()
        if not code:
            raise DatasetError(f"{path}:{line}: empty primary_label")
        if code in seen:
            raise DatasetError(f"{path}:{line}: duplicate primary_label {code!r}")
        seen.add(code)
        species.append(Species(code, row["common_name"].strip(), (row.get("scientific_name") or "").strip()))
    if not species:
        raise DatasetError(f"{path}: no species")
    return species


def load_dataset(root: str | Path) -> Dataset:
    """Read the dataset layout under ``root``; unknown labels and missing files raise DatasetError."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder")
    species = read_taxonomy(root / "taxonomy.csv")
    codes = {s.code for s in species}
    train_csv = root / "train.csv"
    recordings = []
    for line, row in enumerate(read_csv_rows(train_csv, ("primary_label", "filename")), start=2):
        label = row["primary_label"].strip()
        if label not in codes:
            raise DatasetError(f"{train_csv}:{line}: primary_label {label!r} is not in taxonomy.csv")
        path = root / "train_audio" / row["filename"].strip()
        if not path.is_file():
            raise DatasetError(f"{train_csv}:{line}: filename {row['filename']!r} not found under train_audio/")
        recordings.append(Recording(path, label))
    if not recordings:
        raise DatasetError(f"{train_csv}: no training recordings")
    soundscape_dir = root / "train_soundscapes"
    soundscapes = find_audio_files([soundscape_dir]) if soundscape_dir.is_dir() else []
    return Dataset(root, species, recordings, soundscapes)
