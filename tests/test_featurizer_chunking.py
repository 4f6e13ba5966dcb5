"""Streaming equals batch: any chunking of the audio gives the same frames, tokens and windows."""

import numpy as np
import pytest

from daemon.model.features import FrontEndParams, StreamingLogMel, logmel_frames, mel_filterbank
from daemon.model.loader import embed_signal, load_model
from daemon.model.windows import WindowGrid


def random_chunks(signal: np.ndarray, rng: np.random.Generator, largest: int) -> list[np.ndarray]:
    cuts = np.sort(rng.integers(0, signal.size, size=signal.size // max(largest // 2, 1) + 3))
    return np.split(signal, cuts)


def test_mel_filterbank_matches_librosa():
    librosa = pytest.importorskip("librosa")
    ours = mel_filterbank(32000, 512, 64, 300.0, 15000.0)
    theirs = librosa.filters.mel(sr=32000, n_fft=512, n_mels=64, fmin=300.0, fmax=15000.0).T
    np.testing.assert_allclose(ours, theirs, atol=1e-6)


def test_logmel_matches_librosa_on_a_left_padded_signal(rng):
    librosa = pytest.importorskip("librosa")
    signal = rng.standard_normal(32000).astype(np.float32) * 0.1
    params = FrontEndParams()
    ours = logmel_frames(signal, params)
    causal = np.concatenate([np.zeros(512 - 320, np.float32), signal])  # frame i ends at sample (i + 1) * hop
    power = librosa.feature.melspectrogram(y=causal, sr=32000, n_fft=512, hop_length=320, center=False, n_mels=64,
                                           fmin=300.0, fmax=15000.0, power=2.0).T
    assert ours.shape == power.shape
    np.testing.assert_allclose(ours, np.log(power + 1e-10), atol=2e-3)


def test_frame_count_and_alignment():
    params = FrontEndParams()
    signal = np.zeros(32000 * 2, dtype=np.float32)
    frames = logmel_frames(signal, params)
    assert frames.shape == (signal.size // params.hop, params.n_mels)  # frame i ends at sample (i + 1) * hop
    assert logmel_frames(signal[: params.hop - 1], params).shape == (0, params.n_mels)
    assert logmel_frames(signal[: params.hop], params).shape == (1, params.n_mels)


@pytest.mark.parametrize("largest", [1, 317, 4096, 50_000])
def test_random_chunkings_give_identical_frames(rng, largest):
    params = FrontEndParams()
    signal = rng.standard_normal(32000 * 3 + 123).astype(np.float32)
    whole = logmel_frames(signal, params)
    stream = StreamingLogMel(params)
    blocks = []
    for chunk in random_chunks(signal, rng, largest):
        blocks += stream.push(chunk)
    blocks += stream.flush()
    assert [b.first_frame for b in blocks] == list(range(0, whole.shape[0], params.block_frames))
    assert np.array_equal(np.concatenate([b.logmel for b in blocks]), whole)


@pytest.mark.integration
def test_streamed_tokens_and_windows_equal_whole_file(trained_model, rng):
    model = load_model(trained_model)
    signal = (rng.standard_normal(32000 * 12) * 0.05).astype(np.float32)
    grid = WindowGrid.with_hop_seconds(2)
    whole_blocks = model.backend.encoder().push(signal)
    encoder, pooler = model.backend.encoder(), model.backend.pooler(grid)
    blocks, windows = [], []
    for chunk in random_chunks(signal, rng, 7000):
        for block in encoder.push(chunk):
            blocks.append(block)
            windows += pooler.push(block)
    for block in encoder.flush():
        blocks.append(block)
        windows += pooler.push(block)
    windows += pooler.flush()
    for a, b in zip(whole_blocks, blocks, strict=False):
        assert np.array_equal(a.tokens, b.tokens)
    batch = embed_signal(model.backend, signal, grid)
    assert [w.end_sample for w in windows] == [w.end_sample for w in batch]
    assert all(np.array_equal(a.vector, b.vector) for a, b in zip(windows, batch, strict=True))
