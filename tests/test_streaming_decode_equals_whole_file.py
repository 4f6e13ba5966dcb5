"""Block-wise decoding equals decoding the whole file, and scoring a streamed file equals the whole-signal path."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import soxr

from daemon.audio.files import read_audio, read_audio_blocks
from daemon.batch.replay import score_file, score_samples
from daemon.constants import SAMPLE_RATE
from daemon.model.loader import load_model
from daemon.model.windows import WindowGrid


def whole_file_reference(path) -> np.ndarray:
    """What decoding the whole file at once gives: one read, one downmix, one soxr call."""
    data, rate = sf.read(path, dtype="float32", always_2d=True)
    mono = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    return mono if rate == SAMPLE_RATE else soxr.resample(mono, rate, SAMPLE_RATE, quality="HQ").astype(np.float32)


@pytest.mark.parametrize(("rate", "channels", "seconds"), [(32_000, 1, 13.37), (48_000, 2, 11.01), (44_100, 1, 7.3)])
def test_random_block_sizes_give_the_whole_file(tmp_path, rng, rate, channels, seconds):
    path = tmp_path / f"x{rate}.flac"
    sf.write(path, (rng.standard_normal((round(rate * seconds), channels)) * 0.2).astype(np.float32), rate)
    whole = whole_file_reference(path)
    for block_seconds in rng.uniform(0.01, 3.0, size=4):
        blocks = list(read_audio_blocks(path, block_seconds=float(block_seconds)))
        assert max(b.size for b in blocks) <= block_seconds * SAMPLE_RATE + 4 * SAMPLE_RATE // 100
        np.testing.assert_array_equal(np.concatenate(blocks), whole)
    np.testing.assert_array_equal(read_audio(path), whole)


def test_a_span_decoded_from_the_middle_equals_the_slice(tmp_path, rng):
    path = tmp_path / "x.flac"
    sf.write(path, (rng.standard_normal(SAMPLE_RATE * 9 + 123) * 0.2).astype(np.float32), SAMPLE_RATE)
    whole = read_audio(path)
    span = np.concatenate(list(read_audio_blocks(path, 3 * SAMPLE_RATE, 7 * SAMPLE_RATE + 5, block_seconds=0.7)))
    np.testing.assert_array_equal(span, whole[3 * SAMPLE_RATE: 7 * SAMPLE_RATE + 5])


@pytest.mark.parametrize(("seconds", "hop"), [(23.3, 5), (17.07, 2), (2.2, 5)])
def test_streamed_file_scores_equal_the_whole_signal(trained_model, tmp_path, rng, seconds, hop):
    """Lengths that are not a multiple of the hop: the same windows and scores, bit for bit, as the pipeline
    given the whole decoded array at once."""
    model = load_model(trained_model)
    path = tmp_path / "x.wav"
    sf.write(path, (rng.standard_normal(round(SAMPLE_RATE * seconds)) * 0.2).astype(np.float32), SAMPLE_RATE)
    grid = WindowGrid.with_hop_seconds(hop)
    whole = score_samples(model, read_audio(path), path, grid)
    streamed = score_file(model, path, grid)
    assert len(whole.ends) == (1 if seconds < 5 else int((seconds - 5 + 2.5) // hop) + 1)
    np.testing.assert_array_equal(streamed.starts, whole.starts)
    np.testing.assert_array_equal(streamed.ends, whole.ends)
    np.testing.assert_array_equal(streamed.scores, whole.scores)
