"""Frames to spectrogram tokens: normalise each log-mel frame, project, snap to the nearest centroid.

The tokenizer is streaming: it keeps the per-band background estimate across blocks, and works
block by block on the :class:`~daemon.features.FrameBlock` grid, so a stream tokenised in chunks
gives the same tokens as the whole file.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from daemon.errors import BundleError
from daemon.model.bundle import ManifestParams
from daemon.model.features import FrameBlock

FRAME_NORMS = ("none", "center", "standardize")


@dataclass(frozen=True)
class TokenizerParams(ManifestParams):
    """How frames become tokens; travels in the model manifest."""

    band_ema_frames: float = 0.0
    """time constant (frames) of the running per-band mean subtracted from log-mel (0 = off)"""
    frame_norm: str = "standardize"
    """per-frame normalisation across bands: "none", "center" (minus mean) or "standardize" (also / std)"""
    pca_dim: int = 0
    """PCA dimensions after normalisation (0 = no projection)"""
    l2: bool = False
    """scale each (projected) frame to unit length before quantisation"""
    codebook_size: int = 1024
    """number of tokens (k-means centroids)"""

    def __post_init__(self) -> None:
        if self.frame_norm not in FRAME_NORMS:
            raise BundleError(f"tokenizer: frame_norm must be one of {FRAME_NORMS}, not {self.frame_norm!r}")
        if self.band_ema_frames < 0 or self.pca_dim < 0 or self.codebook_size < 2:
            raise BundleError(f"tokenizer: invalid parameters {self}")


@dataclass(frozen=True)
class TokenBlock:
    """Tokens of consecutive frames, with the normalised frames they came from."""

    first_frame: int
    tokens: np.ndarray  # (n_frames,) int32
    frames: np.ndarray  # (n_frames, n_mels) float32, normalised log-mel


class FrameNormaliser:
    """Streaming per-band background removal and per-frame normalisation of log-mel frames."""

    def __init__(self, params: TokenizerParams, n_mels: int) -> None:
        self.params = params
        self._n_mels = n_mels
        self._state: np.ndarray | None = None
        alpha = 1.0 / params.band_ema_frames if params.band_ema_frames > 0 else 0.0
        self._b = np.array([alpha], dtype=np.float32)
        self._a = np.array([1.0, alpha - 1.0], dtype=np.float32)
        if params.band_ema_frames > 0:  # scipy.signal takes most of a second to import: only for bundles that use it
            from scipy.signal import lfilter

            self._lfilter = lfilter

    def __call__(self, logmel: np.ndarray) -> np.ndarray:
        """Normalise a block of frames ``(n, n_mels)``; keeps state for the next block."""
        x = logmel
        if self.params.band_ema_frames > 0:
            if self._state is None:  # start the running mean at the first frame
                self._state = (x[:1] * (1.0 - self._b[0])).astype(np.float32)
            background, self._state = self._lfilter(self._b, self._a, x, axis=0, zi=self._state)
            x = x - background.astype(np.float32)
        if self.params.frame_norm != "none":
            x = x - x.mean(axis=1, keepdims=True)
            if self.params.frame_norm == "standardize":
                x = x / (x.std(axis=1, keepdims=True) + 1e-3)
        return np.ascontiguousarray(x, dtype=np.float32)

    def reset(self) -> None:
        """Forget the running background (a new stream)."""
        self._state = None


class Codebook:
    """Projection plus k-means centroids: maps normalised frames to token ids."""

    def __init__(self, params: TokenizerParams, centroids: np.ndarray, pca_mean: np.ndarray | None = None,
                 pca_components: np.ndarray | None = None) -> None:
        if centroids.ndim != 2 or centroids.shape[0] != params.codebook_size:
            raise BundleError(f"codebook: centroids shape {centroids.shape} does not match k={params.codebook_size}")
        if params.pca_dim and (pca_components is None or pca_components.shape[1] != params.pca_dim):
            raise BundleError("codebook: PCA components missing or of the wrong shape")
        self.params = params
        self.centroids = np.ascontiguousarray(centroids, dtype=np.float32)
        self._half_sqnorm = 0.5 * np.einsum("ij,ij->i", self.centroids, self.centroids)
        self.pca_mean = pca_mean
        self.pca_components = pca_components

    def project(self, frames: np.ndarray) -> np.ndarray:
        """Normalised frames ``(n, n_mels)`` -> quantisation space ``(n, dim)``."""
        return project_frames(frames, self.params, self.pca_mean, self.pca_components)

    def assign(self, projected: np.ndarray) -> np.ndarray:
        """Nearest centroid (squared L2) for each row, int32."""
        scores = projected @ self.centroids.T
        scores -= self._half_sqnorm
        return scores.argmax(axis=1).astype(np.int32)


def project_frames(frames: np.ndarray, params: TokenizerParams, pca_mean: np.ndarray | None,
                   pca_components: np.ndarray | None) -> np.ndarray:
    """Optional PCA projection and L2 scaling of normalised frames, float32."""
    x = frames
    if params.pca_dim:
        x = (x - pca_mean) @ pca_components
    if params.l2:
        x = x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-6)
    return np.ascontiguousarray(x, dtype=np.float32)


class StreamingTokenizer:
    """:class:`FrameBlock` in, :class:`TokenBlock` out, one for one."""

    def __init__(self, codebook: Codebook, n_mels: int) -> None:
        self.codebook = codebook
        self.normaliser = FrameNormaliser(codebook.params, n_mels)

    def push(self, block: FrameBlock) -> TokenBlock:
        """Tokenise one block of frames."""
        frames = self.normaliser(block.logmel)
        return TokenBlock(block.first_frame, self.codebook.assign(self.codebook.project(frames)), frames)

    def reset(self) -> None:
        """A new stream."""
        self.normaliser.reset()
