"""Classifier heads: window vectors -> species probabilities (a linear head; a class selection for zero-shot)."""

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
        # einsum's own loop, not BLAS: a BLAS product's last bits depend on its thread count, and replay's workers
        # (one BLAS thread) must fold the same bias as a process with several
        shift = np.einsum("i,ij->j", (mean / scale).astype(np.float64), weights.astype(np.float64))
        self.bias = (bias - shift).astype(np.float32)
        self.input_dim = dim
        self.n_species = n_species

    def logits(self, vectors: np.ndarray) -> np.ndarray:
        """Raw scores, shape ``(n_windows, n_species)``."""
        if vectors.ndim != 2 or vectors.shape[1] != self.input_dim:
            raise BundleError(f"head: expects vectors of dimension {self.input_dim}, got shape {vectors.shape}")
        return vectors.astype(np.float32, copy=False) @ self.weights + self.bias

    def fits(self, dim: int) -> bool:
        """Whether vectors of ``dim`` values can be scored."""
        return dim == self.input_dim

    @property
    def expects(self) -> str:
        """The vectors it scores, for error messages."""
        return f"({self.input_dim},)"

    def probabilities(self, vectors: np.ndarray) -> np.ndarray:
        """Per-species probabilities in 0..1, shape ``(n_windows, n_species)``."""
        return sigmoid(self.logits(vectors))


class SelectionHead:
    """``sigmoid(x[columns] + bias)``: each species takes one input class's logit (zero-shot bundles).

    ``columns[s] == -1`` marks a species without a class: it scores ``sigmoid(bias[s])``. Costs one
    gather per window instead of a (classes x species) product, so a head over all of BirdNET's 6522
    classes stays a few kilobytes.
    """

    def __init__(self, columns: np.ndarray, bias: np.ndarray) -> None:
        if columns.ndim != 1 or bias.shape != columns.shape or not np.issubdtype(columns.dtype, np.integer):
            raise BundleError(f"head: selection columns {columns.dtype} {columns.shape} and bias {bias.shape} "
                              "must be integer and float vectors of one length")
        self.columns = np.where(columns < 0, 0, columns).astype(np.int64)
        self._unmatched = columns < 0
        self.bias = bias.astype(np.float32)
        self.n_species = columns.size
        self.min_input_dim = int(columns.max(initial=-1)) + 1

    def fits(self, dim: int) -> bool:
        """Whether vectors of ``dim`` values can be scored."""
        return dim >= self.min_input_dim

    @property
    def expects(self) -> str:
        """The vectors it scores, for error messages."""
        return f"at least {self.min_input_dim} classes"

    @property
    def unmatched(self) -> np.ndarray:
        """Bool per species: it has no class (a constant score)."""
        return self._unmatched.copy()

    def logits(self, vectors: np.ndarray) -> np.ndarray:
        """Raw scores, shape ``(n_windows, n_species)``."""
        if vectors.ndim != 2 or not self.fits(vectors.shape[1]):
            raise BundleError(f"head: expects vectors of {self.expects}, got shape {vectors.shape}")
        z = vectors[:, self.columns].astype(np.float32)
        z[:, self._unmatched] = 0.0
        return z + self.bias

    def probabilities(self, vectors: np.ndarray) -> np.ndarray:
        """Per-species probabilities in 0..1, shape ``(n_windows, n_species)``."""
        return sigmoid(self.logits(vectors))


def sigmoid(z: np.ndarray) -> np.ndarray:
    """The logistic function, float32, without overflow warnings."""
    return (0.5 * (1.0 + np.tanh(0.5 * z))).astype(np.float32)
