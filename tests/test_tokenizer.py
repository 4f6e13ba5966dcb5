"""Frames become the token of their nearest centroid; normalisation streams block by block."""

import numpy as np
import pytest

from daemon.errors import BundleError
from daemon.model.tokenizer import Codebook, FrameNormaliser, TokenizerParams, project_frames


def test_assign_is_the_nearest_centroid(rng):
    params = TokenizerParams(codebook_size=50, frame_norm="none")
    centroids = rng.standard_normal((50, 8)).astype(np.float32)
    frames = rng.standard_normal((300, 8)).astype(np.float32)
    tokens = Codebook(params, centroids).assign(frames)
    brute = ((frames[:, None, :] - centroids[None]) ** 2).sum(-1).argmin(1)
    assert np.array_equal(tokens, brute)


def test_projection_whitens_and_normalises(rng):
    params = TokenizerParams(codebook_size=4, pca_dim=3, l2=True)
    components = rng.standard_normal((8, 3)).astype(np.float32)
    projected = project_frames(rng.standard_normal((10, 8)).astype(np.float32), params, np.zeros(8, np.float32),
                               components)
    assert projected.shape == (10, 3)
    np.testing.assert_allclose(np.linalg.norm(projected, axis=1), 1.0, rtol=1e-4)


def test_standardized_frames_have_zero_mean_unit_std(rng):
    normaliser = FrameNormaliser(TokenizerParams(), n_mels=16)
    out = normaliser(rng.standard_normal((20, 16)).astype(np.float32) * 5 + 3)
    np.testing.assert_allclose(out.mean(axis=1), 0, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=1), 1, atol=1e-3)


def test_background_subtraction_streams_like_one_block(rng):
    params = TokenizerParams(band_ema_frames=50.0, frame_norm="none")
    frames = rng.standard_normal((400, 16)).astype(np.float32) + np.linspace(0, 5, 400)[:, None].astype(np.float32)
    whole = FrameNormaliser(params, 16)(frames)
    streamed = FrameNormaliser(params, 16)
    parts = np.concatenate([streamed(frames[i: i + 100]) for i in range(0, 400, 100)])
    np.testing.assert_allclose(parts, whole, atol=1e-5)
    assert abs(whole[-100:].mean()) < 0.2 * frames[-100:].mean()  # the slow drift is (mostly) removed


def test_bad_parameters_are_refused():
    with pytest.raises(BundleError, match="frame_norm"):
        TokenizerParams(frame_norm="loud")
    with pytest.raises(BundleError, match="centroids shape"):
        Codebook(TokenizerParams(codebook_size=8), np.zeros((4, 2), np.float32))
