"""``birdd replay`` with ``[filters]`` (``--config``, ``--filter``, ``--quiet-hours``) runs the daemon's filter chain
on files: quiet hours against the recording's start from its name, none for a recording whose start is unknown;
the counters are logged at the end (and kept by a resumed run); what it cannot do is refused in one line. (The
privacy filter on rendered speech, replay against a real daemon run:
``tests/test_privacy_filter_keeps_no_speech.py``.)"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner
from daemon_process import write_config
from speech_fixtures import soundscape

from daemon.batch.formats import FileScores
from daemon.batch.journal import ResumeJournal
from daemon.cli import cli
from daemon.constants import SAMPLE_RATE
from daemon.filters.stats import FilterStats
from daemon.model.loader import load_model

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
BIRDD = str(Path(sys.executable).with_name("birdd"))


def replay(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([BIRDD, "replay", *args, "-j", "1"], capture_output=True, text=True, env=env, timeout=300)


def windows(table: Path, name: str) -> list[float]:
    return sorted({float(row["start_s"]) for row in csv.DictReader(table.open()) if Path(row["file"]).name == name})


def test_quiet_hours_follow_each_recordings_start(trained_model, rng, tmp_path):
    audio = soundscape(rng, 30)
    timed, untimed = tmp_path / "20240501_055950.wav", tmp_path / "garden.wav"  # AudioMoth's name: 05:59:50 UTC
    for path in (timed, untimed):
        sf.write(path, audio, SAMPLE_RATE)
    birds = [s.code for s in load_model(trained_model).species if not s.non_bird]
    config = write_config(tmp_path / "c.toml", {  # the daemon's [detection]: every species but one in every window
        "model": {"path": str(trained_model)}, "detection": {"threshold": 0.0, "species_thresholds": {birds[0]: 1.0}},
        "filters": {"quiet_timezone": "UTC"}})
    out = tmp_path / "out.csv"
    proc = replay(str(timed), str(untimed), "-m", str(trained_model), "-o", str(out), "--format", "detections",
                  "-c", str(config), "--quiet-hours", "06:00-07:00")
    assert proc.returncode == 0, proc.stderr
    assert windows(out, timed.name) == [0.0]  # the first window ends at 05:59:55; the others in quiet hours
    assert windows(out, untimed.name) == [0.0, 5.0, 10.0, 15.0, 20.0, 25.0]  # no start known: no quiet hours
    listed = [row["species_code"] for row in csv.DictReader(out.open()) if Path(row["file"]).name == untimed.name]
    assert sorted(listed) == sorted(birds[1:] * 6)  # the config's threshold and species threshold, not --min-conf's
    counters = next(line for line in proc.stderr.splitlines() if "filters: " in line)
    assert "quiet_audio_s=20" in counters and "quiet_dropped=0" not in counters, counters

    unfiltered = tmp_path / "all.csv"
    assert replay(str(timed), "-m", str(trained_model), "-o", str(unfiltered), "--format", "detections",
                  "--min-conf", "0").returncode == 0
    assert windows(unfiltered, timed.name) == [0.0, 5.0, 10.0, 15.0, 20.0, 25.0]


def test_what_replay_cannot_filter_is_one_line(trained_model, rng, tmp_path):
    song = tmp_path / "song.wav"
    sf.write(song, soundscape(rng, 6), SAMPLE_RATE)
    bad = write_config(tmp_path / "bad.toml", {"filters": {"confirm_windows": 0}})
    unknown = write_config(tmp_path / "unknown.toml", {"detection": {"species_thresholds": {"zzz": 0.5}},
                                                       "filters": {"confirm": True}})
    for args, message in (
            (["--filter", "confirm"], "filters: a submission lists every probability"),
            (["--format", "detections", "--filter", "noise", "--parts"], "--parts: the filters are not applied"),
            (["--format", "detections", "--quiet-hours", "25:00-06:00"], "filters.quiet_hours[0]"),
            (["--format", "detections", "-c", str(bad)], "filters.confirm_windows: must be within 1..60"),
            (["--format", "detections", "-c", str(unknown)], "detection.species_thresholds: species not in the model")):
        result = CliRunner().invoke(cli, ["replay", str(song), "-m", str(trained_model), "-o", str(tmp_path / "o"),
                                          "-j", "1", *args])  # in this process: the refusal comes before any scoring
        assert isinstance(result.exception, SystemExit) and result.exit_code != 0, result.output
        errors = [line for line in result.stderr.splitlines() if line.startswith("birdd: error: ")]
        assert len(errors) == 1 and message in errors[0], (args, result.stderr)


def test_a_resumed_run_keeps_the_filters_counters(tmp_path):
    journal = ResumeJournal(tmp_path / "out.csv", {"run": 1})
    scores = np.array([[0.9, np.nan]], dtype=np.float32)
    stats = FilterStats(privacy_voices=3, confirm_dropped=2, quiet_audio_s=12.5)
    journal.save(0, FileScores(tmp_path / "a.wav", np.array([0]), np.array([160_000]), scores, filter_stats=stats))
    loaded = journal.load(0, tmp_path / "a.wav")
    assert loaded.filter_stats == stats and np.array_equal(loaded.scores, scores, equal_nan=True)
