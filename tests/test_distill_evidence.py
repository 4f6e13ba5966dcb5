"""What a student's manifest and ``birdd distill`` say about how much its teacher heard each species."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from daemon.cli import _describe_distillation
from daemon.model.loader import Species
from daemon.model.teacher_evidence import never_found
from trainer.distill import FOUND, audio_peaks, log_evidence, teacher_evidence


def logit(p: float) -> float:
    return float(np.log(p / (1 - p)))


def test_evidence_is_the_peak_and_the_windows_at_or_above_found_per_learnt_species():
    species = [Species(code, code, code) for code in ("a", "c")]
    files = [np.array([[logit(0.9), logit(0.5), logit(0.2)],
                       [logit(0.1), logit(0.5), logit(0.4)]], np.float32),
             np.zeros((0, 3), np.float32),  # a file too short for a window
             np.array([[logit(0.5), logit(0.01), logit(0.49996)]], np.float32)]
    evidence = teacher_evidence(audio_peaks(files), [0, 2], species)  # the middle column is not learnt
    assert FOUND == 0.5
    assert evidence["a"]["windows"] == 2 and evidence["a"]["peak"] == pytest.approx(0.9, abs=1e-4)
    assert evidence["c"] == {"peak": 0.4999, "windows": 0}  # rounded down: below FOUND stays below it


def test_the_warning_names_the_species_never_found_lowest_peak_first(caplog):
    evidence = {f"s{i:02d}": {"peak": round(0.3 - 0.02 * i, 2), "windows": 0} for i in range(12)}
    evidence["loud"] = {"peak": 0.97, "windows": 40}
    with caplog.at_level(logging.INFO, logger="trainer.distill"):
        log_evidence(evidence)
    assert "1 of 13 learnt species reach 0.5" in caplog.text
    lowest = ", ".join(f"s{i:02d}" for i in range(11, 1, -1))
    assert "12 learnt species never reach 0.5" in caplog.text and f"(lowest first: {lowest}, ...)" in caplog.text


@pytest.mark.parametrize("distillation", [
    {}, {"teacher": "x", "teacher_evidence": None}, {"teacher_evidence": {"species": ["a"]}},
    {"teacher_evidence": {"found_at": 0.5, "species": {"a": "x", "b": {"peak": None}, "c": {"peak": 0.1}}}},
    {"check": "x"}, {"check": {"fidelity": "high"}}, {"check": {"fidelity": None, "species": {}}},
    {"check": {"fidelity": 0.9, "species": ["a"]}}, {"check": {"fidelity": 0.9, "windows": None}},
])
def test_info_describes_odd_distillation_sections_without_failing(distillation, capsys):
    _describe_distillation(distillation)
    assert "Traceback" not in capsys.readouterr().out


def test_never_found_skips_malformed_entries():
    assert never_found({"a": "x", "b": {"peak": None}, "c": {"peak": 0.1, "windows": 0}, "d": {"windows": 3}}) \
        == ["b", "c"]
