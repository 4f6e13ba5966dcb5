"""Window scores -> detections: global and per-species thresholds, include and exclude lists."""

from __future__ import annotations

import numpy as np

from daemon.config import DetectionConfig
from daemon.errors import ConfigError
from daemon.model.loader import Species


class DetectionPolicy:
    """Which species of a scored window are reported."""

    def __init__(self, config: DetectionConfig, species: list[Species]) -> None:
        codes = [s.code for s in species]
        known = set(codes)
        for key, names in (("detection.include", config.include), ("detection.exclude", config.exclude),
                           ("detection.species_thresholds", list(config.species_thresholds))):
            unknown = [c for c in names if c not in known]
            if unknown:
                raise ConfigError(f"{key}: species code(s) not in the model: {', '.join(unknown[:5])}")
        self.thresholds = np.array([config.species_thresholds.get(c, config.threshold) for c in codes],
                                   dtype=np.float32)
        allowed = np.ones(len(codes), dtype=bool)
        if config.include:
            allowed[:] = False
            allowed[[codes.index(c) for c in config.include]] = True
        if config.exclude:
            allowed[[codes.index(c) for c in config.exclude]] = False
        self.thresholds[~allowed] = np.inf

    def select(self, scores: np.ndarray) -> list[tuple[int, float]]:
        """``(species index, confidence)`` pairs at or above their threshold, best first."""
        hits = np.flatnonzero(scores >= self.thresholds)
        return [(int(j), float(scores[j])) for j in hits[np.argsort(-scores[hits])]]
