"""The held-out check of ``birdd distill --check``: which recordings it holds out, and when it has no fidelity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from daemon.constants import SAMPLE_RATE
from daemon.errors import DatasetError
from trainer.distill import TeacherPass
from trainer.distill_check import VERDICT, fidelity, held_out_files


def held_out_pass(*seconds: float) -> TeacherPass:
    """A teacher pass over silent files of these lengths (no teacher: only the split reads it)."""
    return TeacherPass(None, [(Path(f"f{i}.wav"), np.zeros(int(s * SAMPLE_RATE), np.float16))
                              for i, s in enumerate(seconds)], [], [])


def test_the_check_holds_out_a_share_of_the_long_recordings_the_same_for_every_call():
    run = held_out_pass(*[20.0] * 13, 2.0, 3.0, 4.9)
    held = held_out_files(run, 0.2)
    assert len(held) == 3 and set(held) <= set(range(13)) and held == held_out_files(run, 0.2)  # 2.6: 3
    assert len(held_out_files(held_out_pass(20.0, 20.0, 1.0), 0.5)) == 1  # one held, one left
    assert len(held_out_files(held_out_pass(*[20.0] * 5), 0.5)) == 3  # 2.5 rounds up
    assert len(held_out_files(held_out_pass(*[20.0] * 4), 0.01)) == 1  # at least one
    with pytest.raises(DatasetError, match=r"f0.wav: the only recording of at least 5 s; holding recordings out"):
        held_out_files(held_out_pass(20.0, 4.0), 0.5)


def test_fidelity_needs_a_species_heard_in_some_windows_and_not_others():
    scores = np.array([[0.9, 0.1], [0.2, 0.3], [0.1, 0.8]])
    assert fidelity(np.full((3, 2), VERDICT / 2), scores, ["a", "b"]) is None  # heard nowhere
    assert fidelity(np.full((3, 2), VERDICT), scores, ["a", "b"]) is None  # heard everywhere
    value, per_species = fidelity(np.array([[0.5, 0.0], [0.0, 0.0], [0.0, 0.0]]), scores, ["a", "b"])
    assert value == 1.0 and per_species == {"a": 1.0}  # the student ranks a's one window first
