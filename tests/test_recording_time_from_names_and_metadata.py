"""Recording start times from recorder file names, --time-pattern, GUANO and AudioMoth comments."""

from __future__ import annotations

import struct
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from daemon.batch.recording_time import TimePattern, iso_time, recording_start
from daemon.errors import ConfigError


@pytest.mark.parametrize(("name", "expected"), [
    ("20240501_053000.WAV", datetime(2024, 5, 1, 5, 30, tzinfo=UTC)),  # AudioMoth
    ("SMU01234_20230612_221500.wav", datetime(2023, 6, 12, 22, 15, tzinfo=UTC)),  # Song Meter
    ("S4A01234_0+1_20230612_221500.wav", datetime(2023, 6, 12, 22, 15, tzinfo=UTC)),  # Song Meter, 2 channels
    ("soundscape_007.ogg", None),
    ("20241340_053000.WAV", None),  # month 13: not a time
])
def test_recorder_file_names(tmp_path, name, expected):
    assert recording_start(tmp_path / name) == expected


def test_time_pattern_finds_the_time_anywhere_in_the_name(tmp_path):
    pattern = TimePattern("%Y-%m-%dT%H%M%z")
    assert recording_start(tmp_path / "site3_2024-05-01T0530+0200_left.flac", pattern) == \
        datetime(2024, 5, 1, 5, 30, tzinfo=timezone(timedelta(hours=2)))
    assert recording_start(tmp_path / "no_time_here.flac", pattern) is None
    assert recording_start(tmp_path / "x_24123_0810.wav", TimePattern("%y%j_%H%M")) == \
        datetime(2024, 5, 2, 8, 10, tzinfo=UTC)


def test_a_name_the_pattern_does_not_match_falls_back_to_the_other_sources(tmp_path):
    pattern = TimePattern("site3-%Y-%m-%d_%H%M")
    assert recording_start(tmp_path / "site3-2024-06-01_2355.flac", pattern) == datetime(2024, 6, 1, 23, 55, tzinfo=UTC)
    assert recording_start(tmp_path / "20240601_235500.flac", pattern) == datetime(2024, 6, 1, 23, 55, tzinfo=UTC)


@pytest.mark.parametrize("pattern", ["%Y%m%d_%Q", "%H%M%S", "site-%d"])
def test_bad_patterns_are_refused(pattern):
    with pytest.raises(ConfigError, match="--time-pattern"):
        TimePattern(pattern)


def test_a_bad_pattern_is_one_line_from_the_cli(tmp_path):
    birdd = Path(sys.executable).with_name("birdd")
    proc = subprocess.run([str(birdd), "replay", str(tmp_path), "-m", str(tmp_path / "none"), "-o",
                           str(tmp_path / "o.csv"), "--time-pattern", "%Y%m%d_%Q"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "birdd: error: --time-pattern '%Y%m%d_%Q': unsupported directive %Q (use %Y %y %m %d %j %H %M %S %f %z)"]


def write_wav_with_chunk(path: Path, chunk_id: bytes, payload: bytes) -> None:
    """A short WAV with one extra RIFF chunk after the audio."""
    sf.write(path, np.zeros(3200, np.float32), 32_000, subtype="PCM_16")
    data = path.read_bytes()
    extra = chunk_id + struct.pack("<I", len(payload)) + payload + b"\0" * (len(payload) & 1)
    path.write_bytes(b"RIFF" + struct.pack("<I", len(data) - 8 + len(extra)) + data[8:] + extra)
    assert sf.info(str(path)).frames == 3200


def test_guano_timestamp_wins_over_the_file_name(tmp_path):
    path = tmp_path / "20240501_053000.wav"
    write_wav_with_chunk(path, b"guan", b"GUANO|Version: 1.0\nMake: Wildlife Acoustics\n"
                                        b"Timestamp: 2024-05-01T05:30:00-04:00\n")
    assert recording_start(path) == datetime(2024, 5, 1, 5, 30, tzinfo=timezone(timedelta(hours=-4)))


def test_audiomoth_comment(tmp_path):
    path = tmp_path / "recording.wav"
    with sf.SoundFile(path, "w", 32_000, 1, "PCM_16") as fh:
        fh.comment = ("Recorded at 21:00:00 24/02/2019 (UTC+1) by AudioMoth 0FE081F80FE081F0 at medium gain "
                      "setting while battery state was 4.5V.")
        fh.write(np.zeros(3200, np.float32))
    assert recording_start(path) == datetime(2019, 2, 24, 21, 0, tzinfo=timezone(timedelta(hours=1)))


def test_iso_times_carry_the_offset():
    start = datetime(2024, 5, 1, 23, 59, 58, tzinfo=timezone(timedelta(hours=-4)))
    assert iso_time(start, 7.5) == "2024-05-02T00:00:05.500-04:00"
