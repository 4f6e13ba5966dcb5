"""Cross-validation on the TRAINING data only: how settings are chosen without looking at the test set.

Folds split both the focal recordings (per species) and the unlabelled soundscapes. A fold's model
is trained on the other folds; its validation windows are held-out recordings mixed into 5-s crops
of held-out soundscapes (unseen calls over unseen backgrounds, like the hidden test set), plus
background-only windows. Prints the macro ROC-AUC per fold and the mean.

usage: python bench/crossval.py [--data ../shared/bench206] [--folds 3] [--set KEY=VALUE ...]
  KEY is a Recipe field path, e.g. tokenizer.band_ema_frames=200, pooling=emb_mean,tfidf,
  word2vec.vector_size=128, synthesis.windows_per_recording=8, head.l2=0.01
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from pathlib import Path

import numpy as np

from daemon.batch.evaluate import macro_roc_auc
from daemon.model.loader import embed_signal
from daemon.model.windows import WindowGrid
from trainer.cli import set_changes, with_changes
from trainer.dataset import load_dataset
from trainer.recipe import Recipe
from trainer.synthesis import background_crop, place_call
from trainer.train import DecodedAudio, decode_dataset, fit_stsg

VALIDATION_WINDOWS_PER_CLIP = 2
BACKGROUND_SHARE = 0.3


def split(audio: DecodedAudio, folds: int, fold: int) -> tuple[DecodedAudio, DecodedAudio]:
    """(training part, held-out part): every species' recordings and the soundscapes, by index modulo folds."""
    seen: dict[int, int] = {}
    train, held = DecodedAudio([], [], [], []), DecodedAudio([], [], [], [])
    for clip, label in zip(audio.clips, audio.labels, strict=True):
        k = seen.get(label, 0)
        seen[label] = k + 1
        part = held if k % folds == fold else train
        part.clips.append(clip)
        part.labels.append(label)
    for i, soundscape in enumerate(audio.soundscapes):
        (held if i % folds == fold else train).soundscapes.append(soundscape)
    return train, held


def validation_set(held: DecodedAudio, n_species: int, rng: np.random.Generator):
    windows, labels = [], []
    for clip, label in zip(held.clips, held.labels, strict=True):
        for _ in range(VALIDATION_WINDOWS_PER_CLIP):
            window = background_crop(held.soundscapes, rng)
            place_call(window, clip, rng.uniform(-5, 15), rng)
            target = np.zeros(n_species, np.float32)
            target[label] = 1
            windows.append(window)
            labels.append(target)
    for _ in range(int(len(windows) * BACKGROUND_SHARE)):
        windows.append(background_crop(held.soundscapes, rng))
        labels.append(np.zeros(n_species, np.float32))
    return windows, np.stack(labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/bench206"))
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    recipe = with_changes(Recipe(), set_changes(tuple(args.set)))  # the same parsing as `birdd train --set`
    dataset = load_dataset(args.data)
    audio = decode_dataset(dataset, progress=False)
    n_species = len(dataset.species)
    scores = []
    for fold in range(args.folds):
        started = time.perf_counter()
        train, held = split(audio, args.folds, fold)
        fitted = fit_stsg(train, n_species, recipe)
        windows, labels = validation_set(held, n_species, np.random.default_rng(100 + fold))
        grid = WindowGrid()
        vectors = np.stack([embed_signal(fitted.backend, w, grid)[0].vector for w in windows])
        head = fitted.head()
        score, _ = macro_roc_auc(labels, head.probabilities(vectors), dataset.codes)
        scores.append(score)
        print(f"fold {fold}: macro ROC-AUC {score:.4f} ({len(windows)} windows, {time.perf_counter() - started:.0f} s)",
              flush=True)
    print(f"cv {' '.join(args.set) or 'default'}: mean {statistics.mean(scores):.4f}")


if __name__ == "__main__":
    main()
