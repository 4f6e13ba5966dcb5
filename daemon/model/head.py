"""The linear classifier head shared by every backend: window vectors -> species probabilities."""

from __future__ import annotations

import numpy as np

from daemon.errors import BundleError


class LinearHead:
    """``sigmoid(((x - mean) / scale) @ weights + bias)``, with the standardisation folded in at load."""

    def __init__(self, mean: np.ndarray, scale: np.ndarray, weights: np.ndarray, bias: np.ndarray) -> None:
        dim, n_species = weights.shape
        if mean.shape != (dim,) or scale.shape != (dim,) or bias.shape != (n_species,):
            raise BundleError(f"head: inconsistent shapes mean {mean.shape}, scale {scale.shape}, "
                              f"weights {weights.shape}, bias {bias.shape}")
        folded = weights / scale[:, None]
        self.weights = np.ascontiguousarray(folded, dtype=np.float32)
        self.bias = (bias - (mean / scale) @ weights).astype(np.float32)
        self.input_dim = dim
        self.n_species = n_species

    def logits(self, vectors: np.ndarray) -> np.ndarray:
        """Raw scores, shape ``(n_windows, n_species)``."""
        if vectors.ndim != 2 or vectors.shape[1] != self.input_dim:
            raise BundleError(f"head: expects vectors of dimension {self.input_dim}, got shape {vectors.shape}")
        return vectors.astype(np.float32, copy=False) @ self.weights + self.bias

    def probabilities(self, vectors: np.ndarray) -> np.ndarray:
        """Per-species probabilities in 0..1, shape ``(n_windows, n_species)``."""
        z = self.logits(vectors)
        return (0.5 * (1.0 + np.tanh(0.5 * z))).astype(np.float32)
