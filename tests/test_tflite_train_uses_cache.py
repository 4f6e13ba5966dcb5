"""``train_tflite`` fits a head on a TFLite model's embeddings; a second run reads every embedding from the cache."""

from __future__ import annotations

import numpy as np
import pytest
from tflite_fixtures import PERCH_LIKE, write_tiny_model

from daemon.constants import SAMPLE_RATE
from daemon.model.loader import embed_signal, load_model
from daemon.model.windows import WindowGrid
from trainer.embedding_cache import EmbeddingCache
from trainer.recipe import HeadParams, SynthesisParams, TFLiteRecipe
from trainer.tflite_train import train_tflite

RECIPE = TFLiteRecipe(synthesis=SynthesisParams(windows_per_recording=2, background_windows=10),
                head=HeadParams(max_iter=50))


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return write_tiny_model(tmp_path_factory.mktemp("tflite") / "tiny.tflite", PERCH_LIKE.chunk_samples, dim=8)


def test_second_training_run_reads_the_cache(synthetic_corpus, tiny_model, tmp_path):
    cache = tmp_path / "cache"
    first = train_tflite(synthetic_corpus, tmp_path / "first", tiny_model.path, PERCH_LIKE, RECIPE, cache,
                         progress=False)
    second = train_tflite(synthetic_corpus, tmp_path / "second", tiny_model.path, PERCH_LIKE, RECIPE, cache,
                          progress=False)
    one, two = load_model(first), load_model(second)
    windows = one.manifest["training_data"]["training_windows"]
    assert windows == 6 * 4 * 2 + 10
    assert one.manifest["training_data"]["model_invocations"] == windows  # one 5-s chunk per window
    assert two.manifest["training_data"]["model_invocations"] == 0
    assert len(list(cache.rglob("*.npy"))) == windows
    np.testing.assert_array_equal(one.head.weights, two.head.weights)
    assert one.backend.name == "tflite" and one.head.input_dim == 8 and len(one.species) == 6
    signal = np.zeros(7 * SAMPLE_RATE, np.float32)
    vectors = np.stack([w.vector for w in embed_signal(one.backend, signal, WindowGrid())])
    assert one.head.probabilities(vectors).shape == (1, 6)


def test_cache_is_keyed_by_samples_and_identity(tmp_path, rng):
    samples = rng.standard_normal(1000).astype(np.float32)
    calls = []

    def compute():
        calls.append(1)
        return np.arange(4, dtype=np.float32)[None, :]

    cache = EmbeddingCache(tmp_path, {"model_sha256": "a"})
    np.testing.assert_array_equal(cache.vectors(samples, compute), compute())
    calls.clear()
    cache.vectors(samples, compute)
    assert not calls and cache.hits == 1
    EmbeddingCache(tmp_path, {"model_sha256": "b"}).vectors(samples, compute)
    assert len(calls) == 1
    changed = samples.copy()
    changed[500] += 1e-3
    cache.vectors(changed, compute)
    assert len(calls) == 2
    cache.path(samples).write_bytes(b"damaged")
    np.testing.assert_array_equal(cache.vectors(samples, compute), compute())
    assert np.load(cache.path(samples)).shape == (1, 4)
