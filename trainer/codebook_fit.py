"""Fit the token codebook: optional PCA of normalised frames, then Faiss k-means."""

from __future__ import annotations

import logging

import faiss
import numpy as np

from daemon.errors import DatasetError
from daemon.model.tokenizer import Codebook, TokenizerParams, project_frames

log = logging.getLogger(__name__)


class FrameSample:
    """Up to ``n_frames`` of ``total`` frames that arrive set by set (file by file), the same share drawn at
    random from every set: only the drawn rows are kept, so memory is bounded by ``n_frames`` however many
    hours the sets hold."""

    def __init__(self, total: int, n_frames: int, rng: np.random.Generator) -> None:
        self.share = min(1.0, n_frames / max(total, 1))
        self._total, self._seen, self._rng = total, 0, rng
        self._picked: list[np.ndarray] = []

    def add(self, frames: np.ndarray) -> None:
        """Draw this set's share of ``frames`` (every row while the share is 1)."""
        self._seen += frames.shape[0]
        if self._seen > self._total:
            raise ValueError(f"frame sample: more than the {self._total} frames announced")
        if self.share < 1:
            frames = frames[np.sort(self._rng.choice(frames.shape[0], round(self.share * frames.shape[0]),
                                                     replace=False))]
        self._picked.append(frames)

    def frames(self) -> np.ndarray:
        """The drawn rows of every set, in order, as one float32 array."""
        if self._seen != self._total:
            raise ValueError(f"frame sample: {self._seen} frames added, {self._total} announced")
        return np.ascontiguousarray(np.concatenate(self._picked), dtype=np.float32)


def fit_codebook(frames: np.ndarray, params: TokenizerParams, iterations: int, seed: int
                 ) -> tuple[Codebook, dict[str, np.ndarray]]:
    """Fit PCA (if ``params.pca_dim``) and k-means on normalised frames; return the codebook and its arrays."""
    arrays: dict[str, np.ndarray] = {}
    pca_mean = pca_components = None
    if params.pca_dim:
        pca_mean = frames.mean(axis=0)
        _, singular, vt = np.linalg.svd(frames - pca_mean, full_matrices=False)
        scale = singular[: params.pca_dim] / np.sqrt(frames.shape[0])
        pca_components = (vt[: params.pca_dim].T / (scale + 1e-6)).astype(np.float32)  # whitening
        arrays.update(pca_mean=pca_mean.astype(np.float32), pca_components=pca_components)
    projected = project_frames(frames, params, pca_mean, pca_components)
    if projected.shape[0] < params.codebook_size:
        raise DatasetError(f"--codebook-size {params.codebook_size}: only {projected.shape[0]} frames to cluster; "
                           "use a smaller codebook, a larger codebook_frames or more audio")
    kmeans = faiss.Kmeans(projected.shape[1], params.codebook_size, niter=iterations, seed=seed,
                          spherical=params.l2, max_points_per_centroid=1 << 30, verbose=False)
    kmeans.train(projected)
    log.info("k-means: %d tokens from %d frames of dimension %d, objective %.1f", params.codebook_size,
             projected.shape[0], projected.shape[1], kmeans.obj[-1])
    arrays["codebook"] = kmeans.centroids.astype(np.float32)
    return Codebook(params, arrays["codebook"], pca_mean, pca_components), arrays

