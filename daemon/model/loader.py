"""A loaded model: backend (audio -> window vectors) + linear head + species, from a bundle."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from daemon.constants import SAMPLE_RATE, WINDOW_SECONDS
from daemon.errors import BundleError
from daemon.model.bundle import MANIFEST, manifest_digest, read_bundle
from daemon.model.head import LinearHead, SelectionHead
from daemon.model.windows import Stage, WindowGrid, WindowVector


@dataclass(frozen=True)
class Species:
    """One output column."""

    code: str
    common_name: str
    scientific_name: str = ""
    non_bird: bool = False
    """a class that is not a bird (BirdNET's "Human vocal", "Dog", "Siren", ...): scored, never a detection"""

    def to_manifest(self) -> dict[str, Any]:
        """The species entry of a bundle manifest (``non_bird`` only when true)."""
        entry: dict[str, Any] = {"code": self.code, "common_name": self.common_name,
                                 "scientific_name": self.scientific_name}
        return entry | {"non_bird": True} if self.non_bird else entry

    @classmethod
    def from_manifest(cls, entry: dict[str, Any]) -> Species:
        """A species from its manifest entry (``scientific_name`` and ``non_bird`` optional)."""
        return cls(entry["code"], entry["common_name"], entry.get("scientific_name", ""),
                   bool(entry.get("non_bird", False)))


class Backend(Protocol):
    """What every backend provides: streaming stages from audio to one vector per window."""

    name: str

    def context_samples(self) -> int:
        """Samples a stream started mid-recording needs before its first window to equal the unsplit stream."""
        ...

    def encoder(self) -> Stage:
        """A new stage: float32 samples at the model rate -> backend units (tokens, chunk embeddings)."""
        ...

    def pooler(self, grid: WindowGrid) -> Stage:
        """A new stage: backend units -> :class:`WindowVector` s on ``grid``."""
        ...


def _backend_from_bundle(name: str, params: dict, arrays: dict[str, np.ndarray], path: Path,
                         threads: int = 1) -> Backend:
    if name == "stsg":
        from daemon.model.stsg import STSGBackend

        return STSGBackend.from_bundle(params, arrays)
    if name == "tflite":
        from daemon.model.tflite_backend import TFLiteBackend

        return TFLiteBackend.from_bundle(params, path, threads)
    raise BundleError(f"{path / 'manifest.json'}: unknown backend {name!r}")


@dataclass
class Model:
    """Everything needed to score audio."""

    path: Path
    manifest: dict[str, Any]
    digest: str
    species: list[Species]
    backend: Backend
    head: LinearHead | SelectionHead

    @property
    def codes(self) -> list[str]:
        """Species codes in column order."""
        return [s.code for s in self.species]

    @property
    def identity(self) -> dict[str, str]:
        """Name and version of the model, as published with every detection."""
        return {"name": self.manifest.get("name", self.path.name), "backend": self.backend.name,
                "version": self.digest}


def build_manifest(name: str, backend: str, backend_params: dict, species: list[Species], **sections: Any) -> dict:
    """The manifest every trainer writes (``write_bundle`` adds the format and checksums): what the runtime
    depends on (sample rate, window length, backend and its parameters, species in column order), checked by
    :func:`load_model`, plus free-form ``sections`` (recipe, training data, teacher, ...)."""
    return {"name": name, "created": datetime.now(UTC).isoformat(timespec="seconds"), "backend": backend,
            "sample_rate": SAMPLE_RATE, "window_seconds": WINDOW_SECONDS, "species": [s.to_manifest() for s in species],
            "backend_params": backend_params, **sections}


def _check_runtime_fields(manifest: dict, where: Path) -> None:
    """Refuse a bundle made for another sample rate or window length than this runtime's."""
    for key, expected in (("sample_rate", SAMPLE_RATE), ("window_seconds", WINDOW_SECONDS)):
        if manifest.get(key) != expected:
            raise BundleError(f"{where}: {key} is {manifest.get(key)!r}, this birdd runs at {expected}")


def load_model(path: str | Path, threads: int = 1) -> Model:
    """Load and verify a bundle made by ``birdd train``; raises BundleError naming what is wrong.

    Beyond the checksums, the model is tried once on 5 s of silence, so a bundle whose parts do not
    fit together (vector size vs head) is refused here rather than on the first window.
    ``threads`` is the backend's inference thread count (TFLite).
    """
    path = Path(path)
    manifest, arrays = read_bundle(path)
    where = path / MANIFEST
    _check_runtime_fields(manifest, where)
    try:
        return _assemble(path, manifest, arrays, threads)
    except BundleError as exc:
        if str(path) in str(exc):
            raise
        raise BundleError(f"{where}: {exc}") from None
    except Exception as exc:  # whatever a malformed field or array makes a backend or the head raise
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())
        raise BundleError(f"{where}: malformed model ({reason})") from None


def _assemble(path: Path, manifest: dict[str, Any], arrays: dict[str, np.ndarray], threads: int) -> Model:
    where = path / MANIFEST
    try:
        species = [Species.from_manifest(s) for s in manifest["species"]]
        backend = _backend_from_bundle(manifest["backend"], manifest["backend_params"], arrays, path, threads)
        head = load_head(arrays)
    except KeyError as exc:
        raise BundleError(f"{where}: missing field or array {exc}") from None
    if head.n_species != len(species):
        raise BundleError(f"{path}: head scores {head.n_species} species but the manifest lists {len(species)}")
    probe = embed_signal(backend, np.zeros(WINDOW_SECONDS * SAMPLE_RATE, np.float32), WindowGrid())
    if not probe or probe[0].vector.ndim != 1 or not head.fits(probe[0].vector.size):
        got = probe[0].vector.shape if probe else "no window"
        raise BundleError(f"{where}: the backend makes window vectors of shape {got}, the head expects "
                          f"{head.expects}")
    return Model(path, manifest, manifest_digest(path), species, backend, head)


def load_head(arrays: dict[str, np.ndarray]) -> LinearHead | SelectionHead:
    """The bundle's head: a selection head when it has ``head_columns``, else the linear head."""
    if "head_columns" in arrays:
        return SelectionHead(arrays["head_columns"], arrays["head_bias"])
    return LinearHead(arrays["head_mean"], arrays["head_scale"], arrays["head_weights"], arrays["head_bias"])


def embed_signal(backend: Backend, samples: np.ndarray, grid: WindowGrid) -> list[WindowVector]:
    """All window vectors of a whole signal: the streaming stages, pushed once and flushed."""
    encoder, pooler = backend.encoder(), backend.pooler(grid)
    windows: list[WindowVector] = []
    for unit in encoder.push(samples) + encoder.flush():
        windows.extend(pooler.push(unit))
    return windows + pooler.flush()
