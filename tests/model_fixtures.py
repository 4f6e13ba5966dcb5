"""Session fixtures: a small synthetic corpus and an STSG model trained on it (shared by many tests)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from trainer.recipe import Recipe, SynthesisParams, Word2VecParams
from trainer.synthetic_corpus import write_corpus
from trainer.train import train

SMALL_RECIPE = Recipe(
    tokenizer=replace(Recipe().tokenizer, codebook_size=64),
    word2vec=Word2VecParams(vector_size=16, epochs=2),
    synthesis=SynthesisParams(windows_per_recording=2, background_windows=20),
    codebook_frames=20_000,
    kmeans_iterations=8,
)


@pytest.fixture(scope="session")
def synthetic_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A BirdCLEF-shaped synthetic dataset: 6 species, 20-s soundscapes."""
    return write_corpus(tmp_path_factory.mktemp("corpus"), n_species=6, clips_per_species=4, train_soundscapes=2,
                        test_soundscapes=2, soundscape_seconds=20, seed=3)


@pytest.fixture(scope="session")
def trained_model(synthetic_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An STSG bundle trained on :func:`synthetic_corpus` with a small recipe."""
    return train(synthetic_corpus, tmp_path_factory.mktemp("models") / "small", SMALL_RECIPE, progress=False)
