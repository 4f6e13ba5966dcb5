"""What a student's manifest says about how much its teacher found each species in the audio."""

from __future__ import annotations

import numpy as np

from daemon.model.loader import Species
from trainer.distill import FOUND, teacher_evidence


def logit(p: float) -> float:
    return float(np.log(p / (1 - p)))


def test_evidence_is_the_peak_and_the_windows_at_or_above_found_per_learnt_species():
    species = [Species(code, code, code) for code in ("a", "c")]
    files = [np.array([[logit(0.9), logit(0.5), logit(0.2)],
                       [logit(0.1), logit(0.5), logit(0.4)]], np.float32),
             np.zeros((0, 3), np.float32),  # a file too short for a window
             np.array([[logit(0.7), logit(0.01), logit(0.49)]], np.float32)]
    evidence = teacher_evidence(files, [0, 2], species)  # the middle column is not learnt
    assert FOUND == 0.5
    assert evidence == {"a": {"peak": 0.9, "windows": 2}, "c": {"peak": 0.49, "windows": 0}}
