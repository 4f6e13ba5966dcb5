"""The classes of a pretrained model as its labels file names them, and matching them to bundle species.

BirdNET's labels file has one ``Scientific name_Common name`` per line (``Turdus migratorius_American
Robin``); Perch-style models list one eBird code per line. Both the zero-shot trainer (model classes
-> taxonomy species) and the range filter (meta-model classes -> bundle species) match names here.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from daemon.errors import BundleError
from daemon.model.loader import Species
from daemon.model.tflite_spec import TFLiteSpec

MATCH_FIELDS = ("code", "scientific_name", "common_name")
"""the fields a species is matched by, in this order"""


@dataclass(frozen=True)
class ModelLabel:
    """One class of the model, as its labels file names it."""

    code: str = ""
    scientific_name: str = ""
    common_name: str = ""

    @property
    def is_named_by_one_name(self) -> bool:
        """True when the scientific and common parts are the same name (BirdNET's "Dog_Dog", "Human vocal_...")."""
        return bool(self.scientific_name) and self.scientific_name == self.common_name


def read_labels(path: Path, spec: TFLiteSpec) -> list[ModelLabel]:
    """The classes of ``path``, one per line (after ``spec.labels_header_lines``), in logit order."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()[spec.labels_header_lines:]
    except (OSError, UnicodeDecodeError) as exc:
        raise BundleError(f"{path}: cannot read the labels file ({exc})") from None
    if spec.labels_format == "code":
        return [ModelLabel(code=line.split(",")[0].strip()) for line in lines]
    labels = []
    for line in lines:
        scientific, _, common = line.strip().partition("_")
        labels.append(ModelLabel(scientific_name=scientific, common_name=common))
    return labels


def normalise_name(name: str) -> str:
    """Letters and digits only, case-folded: "Le Conte's Thrasher" == "LeConte's Thrasher"."""
    return re.sub(r"[\W_]", "", name.casefold())


def _names(name: str) -> list[str]:
    """A name, then without a trailing group in brackets: "Fox Sparrow (Red)" falls back to "Fox Sparrow"."""
    base = re.sub(r"\s*\([^)]*\)\s*$", "", name)
    return [name, base] if base and base != name else [name]


def match_species(labels: list[ModelLabel], species: list[Species]) -> tuple[list[int | None], Counter]:
    """For each species, the index of its model class (or None), and how many matched by which field.

    Fields are tried in the order code, scientific name, common name, each as given and then without a
    trailing bracketed group (a subspecies or form falls back to its species).
    """
    indices: dict[str, dict[str, int]] = {field: {} for field in MATCH_FIELDS}
    for i, label in enumerate(labels):
        for field, index in indices.items():
            key = normalise_name(getattr(label, field))
            if key:
                index.setdefault(key, i)
    matches: list[int | None] = []
    by = Counter()
    for sp in species:
        found = _find(indices, sp)
        if found is not None:
            by[found[0]] += 1
        matches.append(None if found is None else found[1])
    return matches, by


def _find(indices: dict[str, dict[str, int]], sp: Species) -> tuple[str, int] | None:
    for field in MATCH_FIELDS:
        for name in _names(getattr(sp, field)):
            index = indices[field].get(normalise_name(name))
            if name and index is not None:
                return field, index
    return None
