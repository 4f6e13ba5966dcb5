"""Zero-shot bundles: a pretrained model's own class scores, mapped onto the taxonomy, without training.

The bundle's window vector is the model's logits (pooled over the window's chunks as the spec says:
BirdNET's max) and its head is a 0/1 selection, so a species' probability is ``sigmoid(logit)`` of the
model class with the same eBird code, scientific name or common name (tried in that order). A species
the model does not know gets the constant logit :data:`UNMATCHED_LOGIT`. Useful as a sanity check and
as a teacher.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from daemon.errors import BundleError
from daemon.model.bundle import write_bundle
from daemon.model.loader import Species
from daemon.model.tflite_runtime import labels_path
from daemon.model.tflite_spec import TFLiteSpec
from trainer.dataset import read_taxonomy
from trainer.tflite_train import DEFAULT_SPEC, bundle_manifest, open_model

log = logging.getLogger(__name__)

UNMATCHED_LOGIT = -20.0
"""logit of a species the model has no class for (probability about 2e-9)"""


@dataclass(frozen=True)
class ModelLabel:
    """One class of the model, as its labels file names it."""

    code: str = ""
    scientific_name: str = ""
    common_name: str = ""


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
    indices: dict[str, dict[str, int]] = {field: {} for field in ("code", "scientific_name", "common_name")}
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
    for field in ("code", "scientific_name", "common_name"):
        for name in _names(getattr(sp, field)):
            index = indices[field].get(normalise_name(name))
            if name and index is not None:
                return field, index
    return None


def selection_head(matches: list[int | None], n_classes: int) -> dict[str, np.ndarray]:
    """Head arrays that copy class ``matches[s]``'s logit to species ``s`` (or give UNMATCHED_LOGIT)."""
    weights = np.zeros((n_classes, len(matches)), dtype=np.float32)
    bias = np.zeros(len(matches), dtype=np.float32)
    for column, row in enumerate(matches):
        if row is None:
            bias[column] = UNMATCHED_LOGIT
        else:
            weights[row, column] = 1.0
    return {"head_mean": np.zeros(n_classes, np.float32), "head_scale": np.ones(n_classes, np.float32),
            "head_weights": weights, "head_bias": bias}


def zero_shot_bundle(taxonomy: str | Path, out_dir: str | Path, model_path: str | Path | None = None,
                     spec: TFLiteSpec | str = DEFAULT_SPEC, threads: int = 1) -> Path:
    """Write a zero-shot bundle for the species of ``taxonomy`` (a ``taxonomy.csv`` or a dataset folder)."""
    taxonomy = Path(taxonomy)
    species = read_taxonomy(taxonomy / "taxonomy.csv" if taxonomy.is_dir() else taxonomy)
    backend = open_model(spec, model_path, "logits", threads)
    labels_file = labels_path(backend.spec, backend.model_path)
    labels = read_labels(labels_file, backend.spec)
    if len(labels) != backend.dim:
        raise BundleError(f"{labels_file}: {len(labels)} labels but tensor {backend.spec.logits_tensor!r} "
                          f"has {backend.dim} classes")
    matches, by = match_species(labels, species)
    unmatched = [sp.code for sp, m in zip(species, matches, strict=True) if m is None]
    log.info("zero-shot: %d of %d species matched a %s class (%s); unmatched: %s", len(species) - len(unmatched),
             len(species), backend.spec.name, ", ".join(f"{n} by {f}" for f, n in by.items()) or "none",
             ", ".join(unmatched) or "none")
    manifest = bundle_manifest(out_dir, backend, species, zero_shot={
        "labels_file": labels_file.name, "matched": dict(by), "unmatched": unmatched,
        "unmatched_logit": UNMATCHED_LOGIT,
    })
    return write_bundle(out_dir, manifest, selection_head(matches, backend.dim))
