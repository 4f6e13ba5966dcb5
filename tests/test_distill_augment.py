"""Augmented distillation windows: mixtures of two recordings, each scored by the teacher as it is."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from daemon.constants import SAMPLE_RATE
from trainer.distill import ScoredAudio, augmentation, soft_targets, teacher_grid
from trainer.distill_augment import augmented_pieces, augmented_windows
from trainer.distill_recipe import DistillRecipe, TeacherParams

PARAMS = TeacherParams(augment_windows=12)
GRID = teacher_grid(PARAMS)


TONES_HZ = (500, 2000, 6000)


def recordings() -> list[np.ndarray]:
    """Two long recordings and a short clip, each a tone of its own over a little noise, float16 as
    distillation holds them."""
    rng = np.random.default_rng(0)
    return [(0.2 * np.sin(2 * np.pi * hz * np.arange(seconds * SAMPLE_RATE) / SAMPLE_RATE)
             + 0.01 * rng.standard_normal(seconds * SAMPLE_RATE)).astype(np.float16)
            for hz, seconds in zip(TONES_HZ, (14, 12, 2), strict=True)]


def energy_teacher(signal: np.ndarray) -> np.ndarray:
    """A stand-in teacher with one "species": the log energy of each grid window of ``signal``."""
    starts = range(0, signal.size - GRID.length + 1, GRID.hop)
    return np.array([[np.log(np.mean(signal[s: s + GRID.length] ** 2) + 1e-9)] for s in starts], np.float32)


def test_the_pieces_are_the_same_for_a_seed_and_differ_for_another():
    first = list(augmented_pieces(recordings(), GRID, PARAMS, seed=0))
    again = list(augmented_pieces(recordings(), GRID, PARAMS, seed=0))
    other = list(augmented_pieces(recordings(), GRID, PARAMS, seed=1))
    assert len(first) == PARAMS.augment_windows
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not any(np.array_equal(a, b) for a, b in zip(first, other, strict=True))


def test_each_is_a_window_mixed_from_two_recordings_within_full_scale():
    audio = recordings()
    pieces = list(augmented_pieces(audio, GRID, PARAMS, seed=0))
    assert {p.size for p in pieces} == {GRID.length}
    assert all(p.dtype == np.float32 and np.abs(p).max() <= 1.0 for p in pieces)
    # each piece mixes two of the recordings: two of the tones stand out of its spectrum
    for piece in pieces:
        spectrum = np.abs(np.fft.rfft(piece))
        tones = [spectrum[hz * piece.size // SAMPLE_RATE] > 100 * np.median(spectrum) for hz in TONES_HZ]
        assert sum(tones) == 2


def test_nothing_is_augmented_from_a_single_recording_or_without_one_long_enough():
    audio = recordings()
    assert list(augmented_pieces(audio[:1], GRID, PARAMS, seed=0)) == []
    assert list(augmented_pieces([audio[2], audio[2]], GRID, PARAMS, seed=0)) == []  # 2 s: shorter than a window


def test_targets_are_the_teachers_of_the_mixture_and_the_windows_stream():
    audio = recordings()
    source = augmented_windows(audio, GRID, PARAMS, 0, energy_teacher,
                               lambda z: soft_targets(z, PARAMS), progress=False)
    assert source.count == PARAMS.augment_windows
    pieces = list(augmented_pieces(audio, GRID, PARAMS, seed=0))
    for (window, target), piece in zip(source.make(), pieces, strict=True):
        assert np.array_equal(window, piece)
        assert target == pytest.approx(soft_targets(energy_teacher(piece), PARAMS)[0], abs=1e-6)
    # the same windows on every read, and one piece at a time in memory while they are read
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(source.make(), source.make(), strict=True))


def read_peak_bytes(count: int) -> int:
    """Peak traced memory while reading ``count`` augmented windows (their targets already computed)."""
    source = augmented_windows(recordings(), GRID, TeacherParams(augment_windows=count), 0, energy_teacher,
                               lambda z: soft_targets(z, PARAMS), progress=False)
    tracemalloc.start()
    for _ in source.make():
        pass
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def test_reading_the_windows_holds_a_few_at_a_time_however_many_there_are():
    few, many = read_peak_bytes(4), read_peak_bytes(40)
    assert many < few + 40 * 1000  # the 36 more windows' targets (a few bytes each), not their 36 x 640 kB of audio
    assert few < 10 * GRID.length * 4


def test_the_augmented_windows_use_the_audio_only_not_the_targets_nor_any_label(tmp_path):
    recipe = DistillRecipe().with_override("teacher.augment_windows", "6")
    audio = recordings()
    rng = np.random.default_rng(1)
    outputs = []
    for targets in (np.zeros, lambda shape: rng.random(shape).astype(np.float32)):
        scored = [ScoredAudio(tmp_path / f"{i}.wav", x, targets((3, 2))) for i, x in enumerate(audio)]
        source = augmentation(scored, recipe, energy_teacher, progress=False, at_most=100)
        outputs.append(list(source.make()))
    assert all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) for a, b in zip(*outputs, strict=True))
    assert len(outputs[0]) == 6 and all(t.shape == (1,) for _, t in outputs[0])  # the teacher's one column
    off = DistillRecipe().with_override("teacher.augment_windows", "0")
    assert augmentation(scored, off, energy_teacher, progress=False, at_most=100) is None


def test_the_default_adds_12000_augmented_windows_but_never_more_than_the_real_ones(tmp_path):
    scored = [ScoredAudio(tmp_path / f"{i}.wav", x, np.zeros((3, 2))) for i, x in enumerate(recordings())]
    assert DistillRecipe().teacher.augment_windows == 12000  # chosen by cross-validation (docs/accuracy.md)
    capped = augmentation(scored, DistillRecipe(), energy_teacher, progress=False, at_most=5)
    first = augmentation(scored, DistillRecipe().with_override("teacher.augment_windows", "5"), energy_teacher,
                         progress=False, at_most=100)
    assert capped.count == 5 and all(np.array_equal(a[0], b[0]) for a, b in zip(capped.make(), first.make(),
                                                                                   strict=True))


@pytest.mark.parametrize("value", ["-1", "2.5"])
def test_a_bad_augmented_window_count_is_refused_naming_the_key(value):
    with pytest.raises(ValueError, match=rf"teacher.augment_windows={value}: "):
        DistillRecipe().with_override("teacher.augment_windows", value)
