"""FileSource: exact samples when fast, wall-clock pacing when real time, bad inputs skipped, looping."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from daemon.audio.file_source import BLOCK_SAMPLES, FileSource
from daemon.audio.ring import RingBuffer
from daemon.config import AudioConfig
from daemon.constants import SAMPLE_RATE
from daemon.errors import AudioError


def write_wav(path: Path, rng: np.random.Generator, seconds: float) -> np.ndarray:
    """A noise file of ``seconds`` at the model rate; returns the float32 samples a reader gets back."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pcm = (rng.standard_normal(round(seconds * SAMPLE_RATE)) * 3000).astype(np.int16)
    sf.write(path, pcm, SAMPLE_RATE, subtype="PCM_16")
    return pcm.astype(np.float32) / 32768


def drain(ring: RingBuffer, pause_s: float = 0.0) -> tuple[np.ndarray, list[int]]:
    """Read until end of stream, checking that indices are contiguous; returns samples and read starts."""
    blocks, starts, expected = [], [], 0
    while (item := ring.read(5000, timeout=10)) is not None:
        start, block = item
        assert start == expected
        expected += block.size
        blocks.append(block)
        starts.append(start)
        time.sleep(pause_s)
    return np.concatenate(blocks), starts


def test_fast_replay_of_a_folder_yields_exactly_its_samples_without_loss(tmp_path, rng):
    second = write_wav(tmp_path / "in" / "b" / "x.wav", rng, 0.7)
    first = write_wav(tmp_path / "in" / "a.wav", rng, 1.3)
    (tmp_path / "in" / "notes.txt").write_text("not audio")
    ring = RingBuffer(2 * BLOCK_SAMPLES)  # far smaller than the input: the source must wait for space
    source = FileSource(AudioConfig(source="file", files=[str(tmp_path / "in")], realtime=False), ring)
    source.start()
    samples, _ = drain(ring, pause_s=0.001)
    source.stop()
    np.testing.assert_array_equal(samples, np.concatenate([first, second]))
    assert (ring.overruns, ring.lost_samples) == (0, 0)
    assert source.status().state == "finished"
    assert source.source_at(0).endswith("a.wav")
    assert source.source_at(first.size - 1).endswith("a.wav")
    assert source.source_at(first.size).endswith("x.wav")
    assert source.status().detail == str(tmp_path / "in" / "b" / "x.wav")


def test_realtime_replay_of_a_two_second_file_takes_two_seconds(tmp_path, rng):
    audio = write_wav(tmp_path / "two.wav", rng, 2.0)
    ring = RingBuffer(10 * SAMPLE_RATE)
    source = FileSource(AudioConfig(source="file", files=[str(tmp_path / "two.wav")], realtime=True), ring)
    started = time.monotonic()
    source.start()
    time.sleep(1.0)
    at, written = time.monotonic() - started, ring.written
    samples, _ = drain(ring)
    elapsed = time.monotonic() - started
    source.stop()
    assert 1.95 <= elapsed <= 2.4
    assert (at - 0.25) * SAMPLE_RATE <= written <= at * SAMPLE_RATE  # never ahead of the clock, never far behind
    np.testing.assert_array_equal(samples, audio)


def test_unreadable_and_missing_inputs_are_logged_and_skipped(tmp_path, rng, caplog):
    (tmp_path / "a_broken.wav").write_bytes(b"RIFF this is not a wave file")
    good = write_wav(tmp_path / "b_good.flac", rng, 0.5)
    ring = RingBuffer(10 * SAMPLE_RATE)
    config = AudioConfig(source="file", files=[str(tmp_path / "gone.wav"), str(tmp_path)], realtime=False)
    source = FileSource(config, ring)
    with caplog.at_level(logging.WARNING, logger="daemon.audio.file_source"):
        source.start()
        samples, _ = drain(ring)
    source.stop()
    np.testing.assert_array_equal(samples, good)
    assert source.status().skipped_files == 2
    assert "gone.wav" in caplog.text and "a_broken.wav" in caplog.text


def test_loop_restarts_the_input_until_stopped(tmp_path, rng):
    audio = write_wav(tmp_path / "short.wav", rng, 0.3)
    ring = RingBuffer(10 * SAMPLE_RATE)
    source = FileSource(AudioConfig(source="file", files=[str(tmp_path)], realtime=False, loop=True), ring)
    source.start()
    got = np.zeros(0, np.float32)
    while got.size < 3 * audio.size:
        start, block = ring.read(5000, timeout=5)
        assert start == got.size
        got = np.concatenate([got, block])
    source.stop()
    assert not source.is_alive()
    np.testing.assert_array_equal(got[:3 * audio.size], np.tile(audio, 3))
    assert source.status().state == "stopped"


def test_no_audio_at_all_is_an_error_naming_the_inputs(tmp_path):
    with pytest.raises(AudioError, match=str(tmp_path)):
        FileSource(AudioConfig(source="file", files=[str(tmp_path)]), RingBuffer(SAMPLE_RATE))
