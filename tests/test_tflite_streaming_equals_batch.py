"""The TFLite backend's stages give the same window vectors whatever the input chunking, at the right places.

Exact equality holds: the soxr stream resampler returns the same samples for any chunking, and each
chunk goes through the interpreter alone, so nothing depends on how audio arrived.
"""

from __future__ import annotations

import numpy as np
import pytest
import soxr
from tflite_fixtures import BIRDNET_LIKE, PERCH_LIKE, write_tiny_model

from daemon.constants import SAMPLE_RATE
from daemon.model.loader import embed_signal
from daemon.model.tflite_backend import ModelRateResampler
from daemon.model.windows import WindowGrid
from trainer.tflite_train import open_model


@pytest.fixture(scope="module", params=[BIRDNET_LIKE, PERCH_LIKE], ids=lambda s: s.name)
def backend(request, tmp_path_factory):
    spec = request.param
    model = write_tiny_model(tmp_path_factory.mktemp("tflite") / "tiny.tflite", spec.chunk_samples, dim=6, seed=4)
    return open_model(spec, model.path), model


def streamed(backend, samples, grid, rng):
    encoder, pooler = backend.encoder(), backend.pooler(grid)
    windows, i = [], 0
    while i < samples.size:
        n = int(rng.integers(1, 40_000))
        for block in encoder.push(samples[i:i + n]):
            windows += pooler.push(block)
        i += n
    for block in encoder.flush():
        windows += pooler.push(block)
    return windows + pooler.flush()


@pytest.mark.parametrize("seconds, hop", [(23.0, 5), (17.4, 1), (12.6, 2), (1.2, 5)])
def test_random_chunkings_give_the_batch_windows(backend, rng, seconds, hop):
    backend, _ = backend
    samples = (0.1 * rng.standard_normal(int(seconds * SAMPLE_RATE))).astype(np.float32)
    grid = WindowGrid.with_hop_seconds(hop)
    batch = embed_signal(backend, samples, grid)
    assert batch, "at least one window"
    for _ in range(3):
        stream = streamed(backend, samples, grid, rng)
        assert [(w.index, w.start_sample, w.end_sample) for w in stream] == \
               [(w.index, w.start_sample, w.end_sample) for w in batch]
        for a, b in zip(stream, batch, strict=True):
            np.testing.assert_array_equal(a.vector, b.vector)


def test_resampler_is_chunking_invariant_and_time_aligned(rng):
    samples = rng.standard_normal(3 * SAMPLE_RATE).astype(np.float32)
    whole = ModelRateResampler(48_000)
    expected = np.concatenate(whole.push(samples) + whole.flush())
    pieces = ModelRateResampler(48_000)
    out, i = [], 0
    while i < samples.size:
        n = int(rng.integers(1, 5_000))
        out += pieces.push(samples[i:i + n])
        i += n
    got = np.concatenate(out + pieces.flush())
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(expected, soxr.resample(samples, SAMPLE_RATE, 48_000, quality="HQ"))
    click = np.zeros(SAMPLE_RATE, np.float32)
    click[10_000] = 1.0
    again = ModelRateResampler(48_000)
    assert int(np.argmax(np.concatenate(again.push(click) + again.flush()))) == 15_000


def test_windows_average_the_chunks_at_the_spec_offsets(backend, rng):
    backend, model = backend
    spec = backend.spec
    samples = (0.1 * rng.standard_normal(11 * SAMPLE_RATE)).astype(np.float32)
    at_rate = samples if spec.sample_rate == SAMPLE_RATE else soxr.resample(samples, SAMPLE_RATE, spec.sample_rate,
                                                                             quality="HQ")
    windows = embed_signal(backend, samples, WindowGrid())
    assert [w.end_sample for w in windows] == [5 * SAMPLE_RATE, 10 * SAMPLE_RATE]  # 1-s tail dropped
    for w in windows:
        start = w.start_sample * spec.sample_rate // SAMPLE_RATE
        chunks = [at_rate[start + o: start + o + spec.chunk_samples] for o in spec.offset_samples()]
        expected = np.mean([model.embedding(c.astype(np.float64)) for c in chunks], axis=0)
        np.testing.assert_allclose(w.vector, expected, rtol=1e-4, atol=1e-3)


def test_overlapping_windows_share_chunks(backend, rng):
    backend, _ = backend
    samples = (0.1 * rng.standard_normal(20 * SAMPLE_RATE)).astype(np.float32)
    before = backend.embedder.invocations
    windows = embed_signal(backend, samples, WindowGrid.with_hop_seconds(1))
    starts = {w.start_sample * backend.spec.sample_rate // SAMPLE_RATE + o
              for w in windows for o in backend.spec.offset_samples()}
    assert len(windows) == 16  # full windows only: the 4-s and 3-s tails lie inside the last full window
    assert backend.embedder.invocations - before == len(starts)  # one invoke per distinct chunk
    if len(backend.spec.offset_samples()) > 1:
        assert len(starts) < len(windows) * len(backend.spec.offset_samples())


def test_short_tail_window_is_zero_padded(backend):
    backend, model = backend
    spec = backend.spec
    samples = np.full(int(1.5 * SAMPLE_RATE), 0.05, np.float32)  # shorter than a chunk: the stream's only window
    (window,) = embed_signal(backend, samples, WindowGrid())
    at_rate = samples if spec.sample_rate == SAMPLE_RATE else soxr.resample(samples, SAMPLE_RATE, spec.sample_rate,
                                                                             quality="HQ")
    chunk = np.pad(at_rate, (0, spec.chunk_samples - at_rate.size))
    np.testing.assert_allclose(window.vector, model.embedding(chunk.astype(np.float64)), rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("seconds, pooled", [(2.4, [0]), (3.4, [0]), (3.5, [0, 1])])
def test_short_clip_pools_only_chunks_half_full_of_audio(backend, seconds, pooled):
    """A 2.4-s clip is the 0-3 s chunk alone (the 2-5 s chunk would hold 0.4 s of audio); the second chunk
    counts from 3.5 s on, when it holds half of its 3 s."""
    backend, model = backend
    spec = backend.spec
    if len(spec.offset_samples()) < 2:
        pytest.skip("one chunk per window")
    samples = np.full(int(seconds * SAMPLE_RATE), 0.05, np.float32)
    (window,) = embed_signal(backend, samples, WindowGrid())
    at_rate = samples if spec.sample_rate == SAMPLE_RATE else soxr.resample(samples, SAMPLE_RATE, spec.sample_rate,
                                                                             quality="HQ")
    padded = np.pad(at_rate, (0, spec.offset_samples()[-1] + spec.chunk_samples))
    chunks = [padded[spec.offset_samples()[k]: spec.offset_samples()[k] + spec.chunk_samples] for k in pooled]
    expected = np.mean([model.embedding(c.astype(np.float64)) for c in chunks], axis=0)  # the fixture's pooling
    np.testing.assert_allclose(window.vector, expected, rtol=1e-4, atol=1e-3)


def test_a_files_tail_window_leaves_out_a_chunk_mostly_past_the_end(backend, rng):
    """A 23-s file's last window (20-25 s) is its 20-23 s chunk alone: the 22-25 s chunk holds 1 s of audio."""
    backend, model = backend
    spec = backend.spec
    if len(spec.offset_samples()) < 2:
        pytest.skip("one chunk per window")
    samples = (0.1 * rng.standard_normal(23 * SAMPLE_RATE)).astype(np.float32)
    last = embed_signal(backend, samples, WindowGrid())[-1]
    assert last.start_sample == 20 * SAMPLE_RATE
    at_rate = soxr.resample(samples, SAMPLE_RATE, spec.sample_rate, quality="HQ")
    chunk = at_rate[20 * spec.sample_rate: 20 * spec.sample_rate + spec.chunk_samples]
    np.testing.assert_allclose(last.vector, model.embedding(chunk.astype(np.float64)), rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("seconds, hop, min_first, ends", [
    (23.0, 5, 1, [5, 10, 15, 20, 25]),  # a 3-s tail is kept
    (22.0, 5, 1, [5, 10, 15, 20]),  # a 2-s tail is not
    (7.0, 1, 1, [5, 6, 7]),  # tails at a 1-s hop stop once a window reaches the end
    (1.2, 5, 1, [5]),  # a short file still gets its window
    (1.2, 5, 2 * SAMPLE_RATE, []),  # ...unless the grid asks for more (the daemon, between gaps)
])
def test_trailing_windows_follow_the_grid(backend, seconds, hop, min_first, ends):
    backend, _ = backend
    samples = np.zeros(int(seconds * SAMPLE_RATE), np.float32)
    windows = embed_signal(backend, samples, WindowGrid.with_hop_seconds(hop, min_first=min_first))
    assert [w.end_sample // SAMPLE_RATE for w in windows] == ends
