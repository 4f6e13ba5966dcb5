"""How ``birdd distill`` holds its decoded audio: half precision, close to the float32 decode."""

from __future__ import annotations

import numpy as np
import soundfile as sf

from daemon.audio.files import read_audio
from daemon.constants import SAMPLE_RATE
from trainer.distill import STORED_AUDIO, decode_stored


def test_stored_audio_is_half_precision_within_its_rounding_of_the_float32_decode(tmp_path):
    rng = np.random.default_rng(0)
    samples = (0.3 * rng.standard_normal(7 * SAMPLE_RATE + 123)).astype(np.float32)
    samples[:SAMPLE_RATE] *= 1e-3  # a quiet second keeps its own relative precision
    path = tmp_path / "a.flac"
    sf.write(path, np.clip(samples, -1, 1), SAMPLE_RATE, subtype="PCM_24")
    reference, stored = read_audio(path), decode_stored(path)
    assert stored.dtype == STORED_AUDIO and stored.shape == reference.shape
    error = np.abs(stored.astype(np.float32) - reference)
    assert np.all(error <= np.abs(reference) * 2.0**-11 + 1e-7)


def test_samples_beyond_half_precision_are_clipped_not_infinite(tmp_path):
    path = tmp_path / "loud.wav"
    sf.write(path, np.full(SAMPLE_RATE, 9e4, np.float32), SAMPLE_RATE, subtype="FLOAT")
    stored = decode_stored(path)
    assert np.isfinite(stored).all() and stored.max() == np.finfo(np.float16).max
