"""Synthetic training windows: calls mixed into backgrounds, extra calls labelled, background-only windows."""

import numpy as np

from trainer.recipe import SynthesisParams
from trainer.synthesis import WINDOW_SAMPLES, training_windows, window_count


def windows(params: SynthesisParams, seed: int = 0):
    rng = np.random.default_rng(seed)
    clips = [np.sin(np.arange(8000) * f).astype(np.float32) for f in (0.1, 0.2, 0.3)]
    backgrounds = [0.01 * rng.standard_normal(3 * WINDOW_SAMPLES).astype(np.float32)]
    return list(training_windows(clips, [0, 1, 2], backgrounds, 4, params, rng))


def test_counts_labels_and_levels():
    params = SynthesisParams(windows_per_recording=3, extra_call_probability=(), background_windows=5)
    made = windows(params)
    assert len(made) == window_count(3, params) == 14
    labels = np.stack([t for _, t in made])
    np.testing.assert_array_equal(labels[:9].sum(axis=1), 1)
    np.testing.assert_array_equal(labels[:9].argmax(axis=1), np.repeat([0, 1, 2], 3))
    assert labels[9:].sum() == 0 and labels[:, 3].sum() == 0  # species 3 has no clip
    for samples, _ in made:
        assert samples.shape == (WINDOW_SAMPLES,) and samples.dtype == np.float32
        assert np.abs(samples).max() <= 1.0


def test_extra_calls_are_labelled():
    always = windows(SynthesisParams(windows_per_recording=20, extra_call_probability=(1.0, 1.0),
                                     background_windows=0))
    counts = np.array([t.sum() for _, t in always])
    assert counts.min() >= 1 and counts.max() == 3  # three calls; fewer labels when a species repeats
    assert (counts >= 2).mean() > 0.5
    never = windows(SynthesisParams(windows_per_recording=20, extra_call_probability=(0.0, 1.0),
                                    background_windows=0))
    assert all(t.sum() == 1 for _, t in never)  # no 3rd call without a 2nd


def test_deterministic_for_a_seed():
    params = SynthesisParams(windows_per_recording=2, background_windows=2)
    for (a, la), (b, lb) in zip(windows(params, seed=4), windows(params, seed=4), strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(la, lb)
