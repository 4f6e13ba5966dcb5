"""Window vectors are the documented functions of the window's tokens and frames."""

import numpy as np
import pytest

from daemon.errors import BundleError
from daemon.model.pooling import BlockStats, WindowFeaturizer
from daemon.model.tokenizer import TokenBlock


def stats_of(tokens, frames, k):
    return BlockStats.of(TokenBlock(0, np.asarray(tokens, np.int32), np.asarray(frames, np.float32)), k)


def test_embedding_pools(rng):
    vectors = rng.standard_normal((5, 3)).astype(np.float32)
    tokens = [0, 0, 2, 4]
    stats = stats_of(tokens, np.zeros((4, 2)), 5)
    out = WindowFeaturizer(["emb_mean", "emb_std", "emb_max"], vectors, None)(stats)
    chosen = vectors[tokens].astype(np.float64)
    np.testing.assert_allclose(out[:3], chosen.mean(0), rtol=1e-5)
    np.testing.assert_allclose(out[3:6], chosen.std(0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(out[6:], chosen.max(0), rtol=1e-6)


def test_frame_statistics(rng):
    frames = rng.standard_normal((30, 4))
    out = WindowFeaturizer(["mel_mean", "mel_std", "mel_max"], None, None)(stats_of(np.zeros(30), frames, 2))
    np.testing.assert_allclose(out, np.concatenate([frames.mean(0), frames.std(0), frames.max(0)]), rtol=1e-4,
                               atol=1e-5)


def test_tfidf_is_unit_length_and_weighted():
    idf = np.array([1.0, 3.0, 1.0])
    out = WindowFeaturizer(["tfidf"], None, idf)(stats_of([0, 1], np.zeros((2, 1)), 3))
    assert out[1] == pytest.approx(3 * out[0])
    assert np.linalg.norm(out) == pytest.approx(1.0)
    assert out[2] == 0


def test_missing_arrays_are_bundle_errors():
    with pytest.raises(BundleError, match="token_vectors"):
        WindowFeaturizer(["emb_mean"], None, None)
    with pytest.raises(BundleError, match="unknown"):
        WindowFeaturizer(["bogus"], None, None)
