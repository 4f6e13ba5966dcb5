"""A long recording cut into segments scores exactly as the unsplit stream (context decoded before each cut)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from tflite_fixtures import BIRDNET_LIKE, write_tiny_bundle, write_tiny_model

from daemon.audio.files import audio_length
from daemon.batch.formats import FileScores
from daemon.batch.replay import score_file
from daemon.batch.segments import score_segment, split_recording
from daemon.constants import SAMPLE_RATE
from daemon.model.loader import load_model
from daemon.model.windows import WindowGrid


def split_and_join(model, path, grid, segment_seconds) -> FileScores:
    segments = split_recording(path, audio_length(path), grid, segment_seconds * SAMPLE_RATE)
    assert len(segments) > 2
    parts = [score_segment(model, s, grid) for s in segments]
    return FileScores(path, *(np.concatenate([getattr(p, field) for p in parts]) for field in ("starts", "ends",
                                                                                               "scores")))


@pytest.mark.parametrize(("seconds", "hop", "segment_seconds"), [(95.3, 5, 20), (61.7, 2, 10), (47.9, 1, 7)])
def test_stsg_segments_join_into_the_unsplit_result(trained_model, tmp_path, rng, seconds, hop, segment_seconds):
    model = load_model(trained_model)
    path = tmp_path / "long.flac"
    sf.write(path, (rng.standard_normal(round(SAMPLE_RATE * seconds)) * 0.2).astype(np.float32), SAMPLE_RATE)
    grid = WindowGrid.with_hop_seconds(hop)
    unsplit, joined = score_file(model, path, grid), split_and_join(model, path, grid, segment_seconds)
    np.testing.assert_array_equal(joined.starts, unsplit.starts)
    np.testing.assert_array_equal(joined.ends, unsplit.ends)
    np.testing.assert_array_equal(joined.scores, unsplit.scores)


def test_tflite_segments_join_into_the_unsplit_result(tmp_path, rng):
    """The 48 kHz model rate: the resampler restarts at each cut and settles within its context."""
    tiny = write_tiny_model(tmp_path / "tiny.tflite", BIRDNET_LIKE.chunk_samples, dim=6, seed=4)
    model = load_model(write_tiny_bundle(tmp_path / "bundle", tiny, BIRDNET_LIKE, n_species=3))
    path = tmp_path / "long.wav"
    sf.write(path, (rng.standard_normal(round(SAMPLE_RATE * 41.3)) * 0.2).astype(np.float32), SAMPLE_RATE)
    grid = WindowGrid.with_hop_seconds(3)
    unsplit, joined = score_file(model, path, grid), split_and_join(model, path, grid, 9)
    np.testing.assert_array_equal(joined.starts, unsplit.starts)
    np.testing.assert_array_equal(joined.ends, unsplit.ends)
    np.testing.assert_allclose(joined.scores, unsplit.scores, rtol=0, atol=1e-6)


def test_segments_own_whole_windows_and_cover_the_file():
    grid = WindowGrid.with_hop_seconds(2)
    length = SAMPLE_RATE * 65 + 17
    segments = split_recording(None, length, grid, SAMPLE_RATE * 15)
    assert [s.start for s in segments] == [k * 14 * SAMPLE_RATE for k in range(5)]  # whole multiples of the 2-s hop
    assert [s.stop for s in segments[:-1]] == [s.start for s in segments[1:]] and segments[-1].is_last
    assert all(s.start + grid.length <= length for s in segments)
    assert len(split_recording(None, SAMPLE_RATE * 4, grid, SAMPLE_RATE * 15)) == 1
