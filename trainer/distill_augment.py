"""Augmented training windows with a consistent teacher ("function matching", Beyer et al. 2022, "Knowledge
distillation: a good teacher is patient and consistent").

Each augmented window is a window of one recording (at any sample offset: a time shift against the
teacher's grid) mixed with a piece of another recording (a random level between them, a random
placement), at a random overall gain. The teacher scores the mixture as it is, so the student's target is
what the teacher hears in exactly that audio (not the maximum of its parts' targets, as the call mixtures
of :func:`trainer.distill.student_windows` take): the teacher and the student see the same input. One
teacher window per item (the neighbour ensemble of the real windows' targets would cost 2n+1).

Everything is label-free (audio only) and seeded by the student's seed. The teacher runs once per item
(cached by content like any teacher score: a seeded recipe gives the same samples); only the items'
targets are kept (items x species float32), the audio is mixed again, item by item, whenever the
training windows are read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
from tqdm import tqdm

from daemon.model.windows import WindowGrid
from trainer.audio_spill import Samples
from trainer.distill_recipe import TeacherParams
from trainer.synthesis import place_call
from trainer.train import WindowSource

Scorer = Callable[[np.ndarray], np.ndarray]
"""the teacher's logits ``(n_windows, n_learnt_species)`` of a signal on its grid"""

SEED_OFFSET = 5
"""the items' random stream is seeded by the student's seed plus this (the call mixtures take +1 and +2)"""


def augmented_pieces(recordings: Sequence[Samples], grid: WindowGrid, params: TeacherParams,
                     seed: int) -> Iterator[np.ndarray]:
    """``params.augment_windows`` float32 windows (the same sequence for a seed): a window of a recording at
    least one window long, a random other recording (or a random piece of it) added at ``augment_snr_db``
    relative to it at a random offset, the sum at ``augment_gain_db``, peaks limited to 1. Nothing when no
    recording is a window long or there is only one recording."""
    length = grid.length
    bases = [i for i, x in enumerate(recordings) if x.size >= length]
    if not bases or len(recordings) < 2:
        return
    rng = np.random.default_rng(seed + SEED_OFFSET)
    for _ in range(params.augment_windows):
        base = bases[rng.integers(len(bases))]
        other = int(rng.integers(len(recordings) - 1))
        other += other >= base
        start = int(rng.integers(recordings[base].size - length + 1))
        piece = recordings[base][start: start + length].astype(np.float32)
        clip = recordings[other]
        if clip.size <= length:  # place_call crops a longer one itself; a spilled file is read as an array
            clip = np.asarray(clip[0: clip.size])
        place_call(piece, clip, rng.uniform(*params.augment_snr_db), rng)
        piece *= np.float32(10 ** (rng.uniform(*params.augment_gain_db) / 20))
        peak = float(np.abs(piece).max())
        yield piece / peak if peak > 1.0 else piece


def augmented_windows(recordings: Sequence[Samples], grid: WindowGrid, params: TeacherParams, seed: int,
                      score: Scorer, targets_of: Callable[[np.ndarray], np.ndarray], progress: bool) -> WindowSource:
    """The augmented training windows (:func:`augmented_pieces`), each with ``targets_of`` (the recipe's soft
    targets of logits) the teacher's logits of it (``score``). The teacher runs here, once per window; only
    the targets are kept, ``make()`` mixes the windows again."""
    pieces = augmented_pieces(recordings, grid, params, seed)
    targets = [targets_of(score(piece))[0] for piece in
               tqdm(pieces, desc="teacher (augmented)", unit="window", total=params.augment_windows,
                    disable=not progress)]

    def make() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        yield from zip(augmented_pieces(recordings, grid, params, seed), targets, strict=True)

    return WindowSource(make, len(targets))

