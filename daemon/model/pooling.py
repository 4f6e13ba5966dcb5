"""Tokens to window vectors: per-block token statistics summed over each window, then featurised.

Each :class:`~daemon.tokenizer.TokenBlock` is reduced to a :class:`BlockStats` (token counts and
frame moments). A window's statistics are the sum of its blocks' in block order, and the window
vector is a pure function of those statistics, so overlapping windows cost one addition per block
and a streamed window equals the batch window exactly.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from daemon.errors import BundleError
from daemon.model.tokenizer import TokenBlock
from daemon.model.windows import WindowGrid, WindowVector

FEATURE_BLOCKS = ("emb_mean", "emb_std", "emb_max", "tfidf", "mel_mean", "mel_std", "mel_max")
"""Named parts a window vector can be built from, in the order given by the manifest."""


@dataclass
class BlockStats:
    """Sufficient statistics of a run of frames."""

    n_frames: int
    counts: np.ndarray  # (k,) token counts
    frame_sum: np.ndarray  # (n_mels,) sums of normalised log-mel
    frame_sqsum: np.ndarray
    frame_max: np.ndarray

    @classmethod
    def of(cls, block: TokenBlock, codebook_size: int) -> BlockStats:
        """Statistics of one token block."""
        frames = block.frames.astype(np.float64)
        return cls(len(block.tokens), np.bincount(block.tokens, minlength=codebook_size).astype(np.float64),
                   frames.sum(axis=0), (frames * frames).sum(axis=0), block.frames.max(axis=0).astype(np.float64))

    def __iadd__(self, other: BlockStats) -> BlockStats:
        self.n_frames += other.n_frames
        self.counts = self.counts + other.counts
        self.frame_sum = self.frame_sum + other.frame_sum
        self.frame_sqsum = self.frame_sqsum + other.frame_sqsum
        self.frame_max = np.maximum(self.frame_max, other.frame_max)
        return self


class WindowFeaturizer:
    """Window statistics -> window vector, from the parts named in ``blocks``."""

    def __init__(self, blocks: list[str], token_vectors: np.ndarray | None, idf: np.ndarray | None) -> None:
        unknown = [b for b in blocks if b not in FEATURE_BLOCKS]
        if unknown or not blocks:
            raise BundleError(f"pooling: unknown or empty feature blocks {unknown or blocks} (known: {FEATURE_BLOCKS})")
        if any(b.startswith("emb_") for b in blocks) and token_vectors is None:
            raise BundleError("pooling: embedding features need token_vectors")
        if "tfidf" in blocks and idf is None:
            raise BundleError("pooling: tfidf needs idf weights")
        self.blocks = list(blocks)
        self.token_vectors = None if token_vectors is None else token_vectors.astype(np.float64)
        self._token_vectors_sq = None if token_vectors is None else self.token_vectors**2
        self.idf = idf

    def __call__(self, stats: BlockStats) -> np.ndarray:
        """The window vector (float32)."""
        n = max(stats.n_frames, 1)
        parts = []
        for name in self.blocks:
            if name == "emb_mean":
                parts.append(stats.counts @ self.token_vectors / n)
            elif name == "emb_std":
                mean = stats.counts @ self.token_vectors / n
                parts.append(np.sqrt(np.maximum(stats.counts @ self._token_vectors_sq / n - mean**2, 0.0)))
            elif name == "emb_max":
                present = stats.counts > 0
                parts.append(self.token_vectors[present].max(axis=0) if present.any()
                             else np.zeros(self.token_vectors.shape[1]))
            elif name == "tfidf":
                weights = np.log1p(stats.counts) * self.idf
                parts.append(weights / (np.linalg.norm(weights) + 1e-12))
            elif name == "mel_mean":
                parts.append(stats.frame_sum / n)
            elif name == "mel_std":
                parts.append(np.sqrt(np.maximum(stats.frame_sqsum / n - (stats.frame_sum / n) ** 2, 0.0)))
            else:  # mel_max
                parts.append(stats.frame_max)
        return np.concatenate(parts).astype(np.float32)


class TokenWindowPooler:
    """:class:`TokenBlock` s in, :class:`WindowVector` s out, on a :class:`WindowGrid`.

    Frame ``i`` (which ends at sample ``(i + 1) * hop``, see :mod:`daemon.model.features`) belongs to the
    window that holds its last sample: a 5-s window at a 10 ms hop holds frames ``500 w`` to ``500 w + 499``.
    """

    def __init__(self, grid: WindowGrid, frame_hop: int, block_frames: int, codebook_size: int,
                 featurize: WindowFeaturizer) -> None:
        if grid.hop % (frame_hop * block_frames) or grid.length % (frame_hop * block_frames):
            raise BundleError(f"pooling: window hop {grid.hop} and length {grid.length} samples must be multiples "
                              f"of a frame block ({block_frames} frames of {frame_hop} samples)")
        self.grid = grid
        self._frame_hop = frame_hop
        self._window_frames = grid.length // frame_hop
        self._hop_frames = grid.hop // frame_hop
        self._k = codebook_size
        self._featurize = featurize
        self._blocks: deque[tuple[int, BlockStats]] = deque()  # (first_frame, stats) of blocks still needed
        self._next_window = 0
        self._frames_seen = 0

    def push(self, block: TokenBlock) -> list[WindowVector]:
        """Add one token block; return the windows it completes."""
        self._blocks.append((block.first_frame, BlockStats.of(block, self._k)))
        self._frames_seen = block.first_frame + len(block.tokens)
        out = []
        while self._first_frame(self._next_window) + self._window_frames <= self._frames_seen:
            out.append(self._emit())
        return out

    def flush(self) -> list[WindowVector]:
        """End of stream: emit the trailing windows the grid keeps (see :class:`WindowGrid`), then reset."""
        out = []
        frames = self._frames_seen
        while self.grid.keeps_at_end(self._next_window, frames, self._to_frames):
            out.append(self._emit())
        self.reset()
        return out

    def _to_frames(self, samples: int) -> int:
        return -(-samples // self._frame_hop)

    def reset(self) -> None:
        """A new stream."""
        self._blocks.clear()
        self._next_window = 0
        self._frames_seen = 0

    def _first_frame(self, window: int) -> int:
        return window * self._hop_frames

    def _emit(self) -> WindowVector:
        w = self._next_window
        start, stop = self._first_frame(w), self._first_frame(w) + self._window_frames
        total: BlockStats | None = None
        for first, stats in self._blocks:
            if start <= first < stop:
                if total is None:
                    total = BlockStats(0, np.zeros_like(stats.counts), np.zeros_like(stats.frame_sum),
                                       np.zeros_like(stats.frame_sqsum), np.full_like(stats.frame_max, -np.inf))
                total += stats
        self._next_window += 1
        next_start = self._first_frame(self._next_window)
        while self._blocks and self._blocks[0][0] < next_start:
            self._blocks.popleft()
        return WindowVector(w, self.grid.start(w), self.grid.end(w), self._featurize(total))
