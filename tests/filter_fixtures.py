"""Window results made by hand for the filter tests: a species list with BirdNET's non-bird classes, and scores."""

from __future__ import annotations

import numpy as np

from daemon.config import DetectionConfig
from daemon.constants import SAMPLE_RATE
from daemon.model.loader import Species
from daemon.pipeline.detection import StreamClock
from daemon.pipeline.policy import DetectionMaker
from daemon.pipeline.scoring import WindowResult

SPECIES = [Species("eurbla", "Eurasian Blackbird", "Turdus merula"), Species("tawowl1", "Tawny Owl", "Strix aluco"),
           Species("human_vocal", "Human vocal", "Human vocal", non_bird=True),
           Species("dog", "Dog", "Dog", non_bird=True)]
HOP = 5 * SAMPLE_RATE


class Model:
    """What :class:`DetectionMaker` reads of a model."""

    def __init__(self) -> None:
        self.species = SPECIES
        self.identity = {"name": "test", "digest": "0"}


def windows(scores: list[dict[str, float]], clock: StreamClock | None = None,
            threshold: float = 0.5) -> list[WindowResult]:
    """Window ``i`` is ``[5 i, 5 i + 5)`` s with the given scores (others 0), its detections made as the daemon's."""
    maker = DetectionMaker(DetectionConfig(threshold=threshold), "test", Model(), clock or StreamClock(0.0))
    codes = [s.code for s in SPECIES]
    out = []
    for i, table in enumerate(scores):
        vector = np.zeros(len(SPECIES), dtype=np.float32)
        for code, value in table.items():
            vector[codes.index(code)] = value
        start, end = i * HOP, (i + 1) * HOP
        out.append(WindowResult("mic", 0, start, end, vector, SPECIES, 0.0,
                                maker.detect("mic", start, end, vector)))
    return out


def run(chain, results: list[WindowResult]) -> list[WindowResult]:
    """Push results one at a time (as the pipeline does), then flush; every result comes out once, in order."""
    out = [r for result in results for r in chain.push([result])] + chain.flush()
    assert [r.start_sample for r in out] == [r.start_sample for r in results]
    return out


def reported(results: list[WindowResult]) -> list[tuple[int, str]]:
    """``(window index, species code)`` of every detection left."""
    return [(r.start_sample // HOP, d.species_code) for r in results for d in r.detections]
