"""The privacy filter on rendered speech (espeak-ng) in a bird-like soundscape, through a real ``birdd run``:
detections around the voice are dropped, the others kept, and no clip or archive file on disk holds speech;
``birdd replay --config`` with the daemon's config drops the same windows."""

from __future__ import annotations

import csv
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf
from daemon_process import Daemon, write_config
from speech_fixtures import mix, render_speech, soundscape, speech_frames

from daemon.constants import SAMPLE_RATE

pytestmark = pytest.mark.integration

SPEECH_AT_S = 12.0


def test_no_detection_clip_or_archive_minute_keeps_the_voice(tmp_path, trained_model, rng):
    speech = render_speech(tmp_path / "speech.wav")
    audio = mix(soundscape(rng, 30), speech, SPEECH_AT_S)
    assert speech_frames(audio) > 20  # the probe hears the voice in the input
    sf.write(tmp_path / "garden.wav", audio, SAMPLE_RATE)
    config = write_config(tmp_path / "c.toml", {
        "audio": {"source": "file", "files": [str(tmp_path / "garden.wav")], "realtime": False},
        "model": {"path": str(trained_model)},
        "detection": {"threshold": 0.0},  # every species in every window: what is missing was filtered
        "filters": {"privacy": True, "privacy_threshold": 0.5, "privacy_margin_s": 1.0},
        "mqtt": {"enabled": False},
        "outbox": {"path": str(tmp_path / "outbox.sqlite")},
        "store": {"path": str(tmp_path / "store.sqlite")},
        "clips": {"dir": str(tmp_path / "clips"), "keep_per_species_per_day": 0},
        "archive": {"enabled": True, "dir": str(tmp_path / "archive"), "minutes_per_hour": 60, "min_free_mb": 0.0},
    })
    daemon = Daemon(config, tmp_path / "d.log")
    try:
        assert daemon.wait(90) == 0, (tmp_path / "d.log").read_text()[-2000:]
    finally:
        daemon.close()
    with sqlite3.connect(tmp_path / "store.sqlite") as db:
        rows = db.execute("SELECT start_epoch, clip FROM detections").fetchall()
    first = min(start for start, _ in rows)  # window 0 has detections (threshold 0): the stream's start
    windows = sorted({round(start - first) for start, _ in rows})
    speech_end = SPEECH_AT_S + speech.size / SAMPLE_RATE
    assert windows == [0, 5, 20, 25], f"speech {SPEECH_AT_S}..{speech_end:.1f} s"
    clips = [tmp_path / "clips" / clip for _, clip in rows if clip]
    assert len(clips) > len(rows) // 2
    for clip in clips:
        assert speech_frames(sf.read(clip, dtype="float32")[0]) == 0, clip.name
    archived = sorted((tmp_path / "archive").rglob("*.flac"))
    kept = [sf.read(path, dtype="float32")[0] for path in archived]
    assert kept and all(speech_frames(samples) == 0 for samples in kept)
    assert sum(samples.size for samples in kept) <= audio.size - speech.size  # the voice is not there at all

    out = tmp_path / "replay.csv"  # the same file and config through replay: the daemon's filter chain
    proc = subprocess.run([str(Path(sys.executable).with_name("birdd")), "replay", str(tmp_path / "garden.wav"),
                           "-m", str(trained_model), "-c", str(config), "--min-conf", "0", "--format", "detections",
                           "-o", str(out), "-j", "1"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
    assert proc.returncode == 0, proc.stderr
    replayed = list(csv.DictReader(out.open()))
    assert sorted({round(float(row["start_s"])) for row in replayed}) == windows
    assert len(replayed) == len(rows)
    assert "privacy_dropped=0 " not in next(line for line in proc.stderr.splitlines() if "filters: " in line)
