"""The station workflow end to end: ``birdd run`` with the teacher and ``[archive]`` on keeps the audio it heard,
and ``birdd distill`` on the archive folder makes a student from it."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import soundfile as sf
from daemon_process import Daemon, write_config
from test_distill_cli import distill, manifest, teacher  # noqa: F401  (teacher: a fixture)

from daemon.archive.minutes import SECONDS_PER_MINUTE
from daemon.audio.files import read_audio
from daemon.batch.recording_time import recording_start
from daemon.constants import SAMPLE_RATE, WINDOW_SECONDS

pytestmark = [pytest.mark.integration,
              pytest.mark.filterwarnings("ignore:Warning. Enabling `experimental_preserve_all_tensors`")]

STATION_SECONDS = 150
"""the replayed recording: long enough to cross two minute boundaries"""


def station_recording(corpus, path):
    """The synthetic corpus's recordings back to back, :data:`STATION_SECONDS` long, as one 32-kHz WAV file."""
    parts = [read_audio(p) for p in sorted((corpus / "train_soundscapes").glob("*.ogg"))]
    parts += [read_audio(p) for p in sorted((corpus / "train_audio").rglob("*.ogg"))]
    audio = np.concatenate(parts * 3)[: STATION_SECONDS * SAMPLE_RATE]
    assert audio.size == STATION_SECONDS * SAMPLE_RATE
    sf.write(path, audio, SAMPLE_RATE, subtype="PCM_16")
    return sf.read(path, dtype="float32")[0]


def test_the_daemon_archives_what_it_hears_and_distill_learns_from_it(synthetic_corpus, teacher, tmp_path):  # noqa: F811
    heard = station_recording(synthetic_corpus, tmp_path / "station.wav")
    archive = tmp_path / "archive"
    config = write_config(tmp_path / "birdd.toml", {
        "station": {"name": "test"},
        "audio": {"source": "file", "files": [str(tmp_path / "station.wav")], "realtime": False},
        "model": {"path": str(teacher)},
        "mqtt": {"enabled": False},
        "outbox": {"path": str(tmp_path / "outbox.sqlite")},
        "archive": {"enabled": True, "dir": str(archive), "minutes_per_hour": 60},
    })
    daemon = Daemon(config, tmp_path / "daemon.log")
    try:
        assert daemon.wait(120) == 0, (tmp_path / "daemon.log").read_text()
    finally:
        daemon.close()

    files = sorted(archive.rglob("*.flac"), key=recording_start)
    starts = [recording_start(path).timestamp() for path in files]
    kept = [sf.read(path, dtype="float32") for path in files]
    assert all(rate == SAMPLE_RATE for _, rate in kept) and all(path.stem.startswith("station_") for path in files)
    assert 3 <= len(files) <= 4  # 150 s cut at the (stream clock's) minute boundaries
    assert all(audio.size <= SECONDS_PER_MINUTE * SAMPLE_RATE for audio, _ in kept)
    assert all(b - a == pytest.approx(SECONDS_PER_MINUTE, abs=1) for a, b in itertools.pairwise(starts[1:]))
    together = np.concatenate([audio for audio, _ in kept])
    dropped = heard.size - together.size  # pieces shorter than a window at the start and the end are not kept
    assert 0 <= dropped < 2 * WINDOW_SECONDS * SAMPLE_RATE
    first = next(offset for offset in range(dropped + 1) if np.array_equal(heard[offset: offset + 256], together[:256]))
    assert np.array_equal(heard[first: first + together.size], together)  # every sample kept, bit for bit (16-bit)
    assert not [path for path in archive.rglob(".*")]  # no temporary file left

    distill([archive], teacher, tmp_path / "student", "--no-cache")
    made = manifest(tmp_path / "student")
    assert made["distillation"]["teacher"]["name"] == teacher.name
    assert made["training_data"]["files"] == len(files)
    assert made["training_data"]["hours"] == round(together.size / SAMPLE_RATE / 3600, 3)
