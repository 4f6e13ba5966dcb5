"""A teacher for distillation: a TFLite bundle's per-window species logits, cached on disk by content.

The teacher scores a whole signal on a window grid with the runtime's own stages (``embed_signal`` and
the bundle's head), so its scores are exactly what ``birdd replay`` would give on that grid. Scores are
cached like TFLite embeddings (:class:`~trainer.embedding_cache.EmbeddingCache`): keyed by what the teacher
computes (its manifest without the time it was made and its folder's name: the manifest holds the sha256 of
the model file and of every array), the grid, and the decoded samples, so a second distillation of the same
audio does not run the teacher, also with a teacher made again from the same model and species.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from dataclasses import asdict
from pathlib import Path

import numpy as np

from daemon.constants import SAMPLE_RATE
from daemon.errors import BundleError
from daemon.model.bundle import MANIFEST, read_bundle, sha256_file
from daemon.model.loader import Model, Species, load_model
from daemon.model.tflite_backend import NAME as TFLITE
from daemon.model.tflite_backend import TRAILING_CHUNK_MIN_FILL
from daemon.model.windows import WindowGrid
from trainer.embedding_cache import EmbeddingCache, default_cache_dir
from trainer.tflite_train import window_vectors

log = logging.getLogger(__name__)


def default_teacher_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/birdd/teacher_scores`` (``~/.cache/birdd/teacher_scores``), beside the embedding cache."""
    return default_cache_dir().with_name("teacher_scores")


UNSCORED_MANIFEST_KEYS = ("created", "name")
"""manifest entries that do not change a teacher's scores (a bundle made again gets a new ``created``)"""


def scores_identity(manifest: dict) -> str:
    """The sha256 of what determines a teacher's scores: its manifest without :data:`UNSCORED_MANIFEST_KEYS`."""
    kept = {key: value for key, value in manifest.items() if key not in UNSCORED_MANIFEST_KEYS}
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()


class Teacher:
    """A TFLite model bundle that scores windows of unlabelled audio; ``invocations`` counts uncached signals."""

    def __init__(self, bundle_dir: str | Path, grid: WindowGrid, cache_dir: str | Path | None) -> None:
        """Load ``bundle_dir`` (refused unless it is a TFLite bundle); ``cache_dir`` None: no cache."""
        path = Path(bundle_dir)
        manifest, _ = read_bundle(path)
        if manifest.get("backend") != TFLITE:
            raise BundleError(f"{path}: the teacher must be a TFLite bundle (`birdd train --backend tflite "
                              f"[--zero-shot]`), this one's backend is {manifest.get('backend')!r}")
        self.model: Model = load_model(path)
        self.grid = grid
        self.sha256 = sha256_file(path / MANIFEST)
        identity = {"teacher_sha256": scores_identity(manifest), "grid": asdict(grid), "sample_rate": SAMPLE_RATE,
                    "trailing_chunk_min_fill": TRAILING_CHUNK_MIN_FILL}
        self.cache = None if cache_dir is None else EmbeddingCache(cache_dir, identity)
        self.invocations = 0

    @property
    def species(self) -> list[Species]:
        """The teacher's species, in its column order."""
        return self.model.species

    def describe(self) -> dict:
        """What the student's manifest records about its teacher."""
        params = self.model.manifest.get("backend_params", {})
        return {"name": self.model.manifest.get("name", self.model.path.name), "path": str(self.model.path.resolve()),
                "manifest_sha256": self.sha256, "model_file": params.get("model_file"),
                "model_sha256": params.get("model_sha256"), "zero_shot": "zero_shot" in self.model.manifest,
                "grid_hop_s": self.grid.hop / SAMPLE_RATE, "trailing_chunk_min_fill": TRAILING_CHUNK_MIN_FILL}

    def logits(self, samples: np.ndarray) -> np.ndarray:
        """Logits ``(n_windows, n_species)`` of every window of ``samples`` on the grid (window ``w`` starts
        at ``grid.start(w)``); ``samples`` of any float type, scored as float32."""
        samples = np.asarray(samples, dtype=np.float32)
        compute = functools.partial(self._compute, samples)
        return compute() if self.cache is None else self.cache.vectors(samples, compute)

    def logits_of_window(self, window: np.ndarray) -> np.ndarray:
        """Logits ``(n_species,)`` of one window-long signal, neither cached nor counted (a check's mixture)."""
        return self._score(np.asarray(window, dtype=np.float32))[0]

    def _compute(self, samples: np.ndarray) -> np.ndarray:
        self.invocations += 1
        return self._score(samples)

    def _score(self, samples: np.ndarray) -> np.ndarray:
        return self.model.head.logits(window_vectors(self.model.backend, samples, self.grid)).astype(np.float32)
