"""A loaded model: backend (audio -> window vectors) + linear head + species, from a bundle."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from daemon.bundle import manifest_digest, read_bundle
from daemon.errors import BundleError
from daemon.head import LinearHead
from daemon.windows import Stage, WindowGrid, WindowVector


@dataclass(frozen=True)
class Species:
    """One output column."""

    code: str
    common_name: str
    scientific_name: str = ""


class Backend(Protocol):
    """What every backend provides: streaming stages from audio to one vector per window."""

    name: str

    def encoder(self) -> Stage:
        """A new stage: float32 samples at the model rate -> backend units (tokens, chunk embeddings)."""
        ...

    def pooler(self, grid: WindowGrid) -> Stage:
        """A new stage: backend units -> :class:`WindowVector` s on ``grid``."""
        ...


def _backend_from_bundle(name: str, params: dict, arrays: dict[str, np.ndarray], path: Path,
                         threads: int = 1) -> Backend:
    if name == "stsg":
        from daemon.stsg import STSGBackend

        return STSGBackend.from_bundle(params, arrays)
    if name == "tflite":
        from daemon.tflite_backend import TFLiteBackend

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
    head: LinearHead

    @property
    def codes(self) -> list[str]:
        """Species codes in column order."""
        return [s.code for s in self.species]

    @property
    def identity(self) -> dict[str, str]:
        """Name and version of the model, as published with every detection."""
        return {"name": self.manifest.get("name", self.path.name), "backend": self.backend.name,
                "version": self.digest}


def load_model(path: str | Path) -> Model:
    """Load and verify a bundle made by ``birdd train``; raises BundleError naming what is wrong."""
    path = Path(path)
    manifest, arrays = read_bundle(path)
    try:
        species = [Species(s["code"], s["common_name"], s.get("scientific_name", "")) for s in manifest["species"]]
        backend = _backend_from_bundle(manifest["backend"], manifest["backend_params"], arrays, path)
        head = LinearHead(arrays["head_mean"], arrays["head_scale"], arrays["head_weights"], arrays["head_bias"])
    except KeyError as exc:
        raise BundleError(f"{path / 'manifest.json'}: missing field or array {exc}") from None
    if head.n_species != len(species):
        raise BundleError(f"{path}: head scores {head.n_species} species but the manifest lists {len(species)}")
    return Model(path, manifest, manifest_digest(path), species, backend, head)


def embed_signal(backend: Backend, samples: np.ndarray, grid: WindowGrid) -> list[WindowVector]:
    """All window vectors of a whole signal: the streaming stages, pushed once and flushed."""
    encoder, pooler = backend.encoder(), backend.pooler(grid)
    windows: list[WindowVector] = []
    for unit in encoder.push(samples) + encoder.flush():
        windows.extend(pooler.push(unit))
    return windows + pooler.flush()
