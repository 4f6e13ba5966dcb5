"""Zero-shot bundles: a pretrained model's own class scores, without training.

The bundle's window vector is the model's logits (pooled over the window's chunks as the spec says:
BirdNET's max) and its head is a selection (:class:`daemon.model.head.SelectionHead`), so a species'
probability is ``sigmoid(logit)`` of its model class. Two kinds:

- over a taxonomy (``zero_shot_bundle``): each ``taxonomy.csv`` species takes the model class with the
  same eBird code, scientific name or common name (tried in that order); a species the model does not
  know gets the constant logit :data:`UNMATCHED_LOGIT`;
- over every class of the model (``all_classes_bundle``): one species per line of the labels file.

Useful as a station's first model, as a sanity check and as a teacher.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np

from daemon.errors import BundleError, DatasetError
from daemon.model.bundle import write_bundle
from daemon.model.labels import ModelLabel, match_species, normalise_name, read_labels
from daemon.model.loader import Species
from daemon.model.tflite_backend import TFLiteBackend
from daemon.model.tflite_runtime import labels_path
from daemon.model.tflite_spec import TFLiteSpec
from trainer.dataset import read_taxonomy
from trainer.tflite_model import DEFAULT_SPEC, bundle_manifest, open_model

log = logging.getLogger(__name__)

UNMATCHED_LOGIT = -20.0
"""logit of a species the model has no class for (probability about 2e-9)"""


def selection_head(matches: list[int | None]) -> dict[str, np.ndarray]:
    """Head arrays that copy class ``matches[s]``'s logit to species ``s`` (or give UNMATCHED_LOGIT)."""
    columns = np.array([-1 if m is None else m for m in matches], dtype=np.int32)
    bias = np.where(columns < 0, UNMATCHED_LOGIT, 0.0).astype(np.float32)
    return {"head_columns": columns, "head_bias": bias}


def _model_labels(backend: TFLiteBackend) -> tuple[Path, list[ModelLabel]]:
    labels_file = labels_path(backend.spec, backend.model_path)
    labels = read_labels(labels_file, backend.spec)
    if len(labels) != backend.dim:
        raise BundleError(f"{labels_file}: {len(labels)} labels but tensor {backend.spec.logits_tensor!r} "
                          f"has {backend.dim} classes")
    return labels_file, labels


def zero_shot_bundle(taxonomy: str | Path, out_dir: str | Path, model_path: str | Path | None = None,
                     spec: TFLiteSpec | str = DEFAULT_SPEC, threads: int = 1) -> Path:
    """Write a zero-shot bundle for the species of ``taxonomy`` (a ``taxonomy.csv`` or a dataset folder)."""
    taxonomy = Path(taxonomy)
    species = read_taxonomy(taxonomy / "taxonomy.csv" if taxonomy.is_dir() else taxonomy)
    backend = open_model(spec, model_path, "logits", threads)
    labels_file, labels = _model_labels(backend)
    matches, by = match_species(labels, species)
    unmatched = [sp.code for sp, m in zip(species, matches, strict=True) if m is None]
    log.info("zero-shot: %d of %d species matched a %s class (%s); unmatched: %s", len(species) - len(unmatched),
             len(species), backend.spec.name, ", ".join(f"{n} by {f}" for f, n in by.items()) or "none",
             ", ".join(unmatched) or "none")
    manifest = bundle_manifest(out_dir, backend, species, zero_shot={
        "labels_file": labels_file.name, "matched": dict(by), "unmatched": unmatched,
        "unmatched_logit": UNMATCHED_LOGIT,
    })
    return write_bundle(out_dir, manifest, selection_head(matches))


def slug(scientific_name: str) -> str:
    """The species code of a class no taxonomy names: its name in lower case, words joined by ``_``.

    ``Turdus migratorius`` -> ``turdus_migratorius``, ``Human vocal`` -> ``human_vocal``.
    """
    return re.sub(r"[^a-z0-9]+", "_", scientific_name.casefold()).strip("_")


def class_species(labels: list[ModelLabel], taxonomy: list[Species] | None = None) -> list[Species]:
    """One species per model class, in class order.

    Code: the taxonomy's code of the same scientific name, else the label's own code (Perch-style
    labels), else :func:`slug` of the scientific name. ``non_bird``: BirdNET names its classes that
    are not a species by one name twice (``Dog_Dog``, ``Human vocal_Human vocal``, ``Siren_Siren``).
    """
    by_name = {normalise_name(s.scientific_name): s for s in taxonomy or () if s.scientific_name}
    species = []
    for label in labels:
        known = by_name.get(normalise_name(label.scientific_name)) if label.scientific_name else None
        code = known.code if known else label.code or slug(label.scientific_name)
        common = label.common_name or (known.common_name if known else "") or code
        species.append(Species(code, common, label.scientific_name, non_bird=label.is_named_by_one_name))
    seen: dict[str, str] = {}
    for sp in species:
        if sp.code in seen:
            raise BundleError(f"two model classes get the species code {sp.code!r} ({seen[sp.code]!r} and "
                              f"{sp.scientific_name or sp.common_name!r})")
        seen[sp.code] = sp.scientific_name or sp.common_name
    return species


def all_classes_bundle(out_dir: str | Path, model_path: str | Path | None = None,
                       spec: TFLiteSpec | str = DEFAULT_SPEC, taxonomy: str | Path | None = None,
                       threads: int = 1) -> Path:
    """Write a zero-shot bundle over every class of the model (BirdNET V2.4: 6522).

    ``taxonomy`` (a ``taxonomy.csv`` with ``scientific_name``) supplies eBird codes for the classes it names.
    """
    backend = open_model(spec, model_path, "logits", threads)
    labels_file, labels = _model_labels(backend)
    known = read_taxonomy(Path(taxonomy)) if taxonomy is not None else None
    if known is not None and not any(s.scientific_name for s in known):
        raise DatasetError(f"{taxonomy}: no scientific_name values, so no class can take its code")
    species = class_species(labels, known)
    taxonomy_codes = {s.code for s in known or ()}
    by_taxonomy = sum(1 for s in species if s.code in taxonomy_codes)
    non_bird = [s.common_name for s in species if s.non_bird]
    log.info("all-classes bundle: %d %s classes (%d coded by the taxonomy); non-bird: %s", len(species),
             backend.spec.name, by_taxonomy, ", ".join(non_bird) or "none")
    manifest = bundle_manifest(out_dir, backend, species, zero_shot={
        "labels_file": labels_file.name, "all_classes": True, "coded_by_taxonomy": by_taxonomy,
        "non_bird": len(non_bird),
    })
    return write_bundle(out_dir, manifest, selection_head(list(range(len(species)))))
