"""On-disk cache of window vectors, so re-fitting a head on a pretrained model's embeddings is fast.

An entry is keyed by what determines its value: the model file (its sha256), the spec, the tensor
read, the window grid, and the exact float32 samples fed in (a decoded file, or a mixed training
window, which is deterministic for a given seed). Entries are plain ``.npy`` files, written atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from daemon.atomic import AtomicWriter


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/birdd/embeddings`` (``~/.cache/birdd/embeddings``)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "birdd" / "embeddings"


class EmbeddingCache:
    """Window vectors of signals, by content; ``hits`` and ``misses`` count lookups."""

    def __init__(self, root: str | Path, identity: dict) -> None:
        """``identity``: everything besides the samples that the vectors depend on (JSON-serialisable)."""
        self.root = Path(root)
        self._namespace = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).digest()
        self.hits = 0
        self.misses = 0

    def path(self, samples: np.ndarray) -> Path:
        """Where the vectors of ``samples`` are stored."""
        digest = hashlib.sha256(self._namespace)
        digest.update(np.ascontiguousarray(samples, dtype=np.float32).tobytes())
        key = digest.hexdigest()
        return self.root / key[:2] / f"{key}.npy"

    def vectors(self, samples: np.ndarray, compute: Callable[[], np.ndarray]) -> np.ndarray:
        """The cached vectors of ``samples``, or ``compute()``'s result, stored for next time."""
        path = self.path(samples)
        try:
            value = np.load(path, allow_pickle=False)
            self.hits += 1
            return value
        except (OSError, ValueError):  # absent, or a damaged entry: recompute and overwrite
            pass
        self.misses += 1
        value = compute()
        with AtomicWriter(path, binary=True) as out:
            np.save(out.file, value, allow_pickle=False)
        return value
