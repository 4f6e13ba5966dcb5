"""Head fitting: the hand-written joint L-BFGS head against scikit-learn's LogisticRegression, same features.

Builds the default STSG recipe's real training features on bench206 (codebook, skip-gram, idf and the
synthetic training windows, exactly as ``birdd train`` does) and the test soundscapes' window vectors from
the same backend, then fits the head both ways on the same standardised features, side by side:

- ``joint``: :func:`trainer.head_fit.fit_multilabel_logistic` (all species at once, scipy L-BFGS);
- ``sklearn``: one ``LogisticRegression(solver="lbfgs")`` per species with the same objective: the joint
  loss is, per species, ``sum_i c_i * BCE_i / n + l2 * |w|^2 / 2`` (``c_i`` the positive weight of
  :func:`trainer.head_fit.positive_weights` or 1), which is scikit-learn's ``C * sum_i c_i * BCE_i + |w|^2 / 2``
  divided by ``C * n`` with ``C = 1 / (l2 * n)``: ``class_weight={0: 1, 1: c}``; neither penalises the bias.

Prints wall and CPU time (medians over ``--rounds``, the two fitters alternating), the peak memory the fit adds
(VmHWM after resetting it, minus VmRSS before), the largest difference between the two heads' test
probabilities, and both macro ROC-AUCs on bench206's test soundscapes (the one allowed look at the test
set for this comparison of two fitters on identical features). ``--fraction`` fits on a part of
the training windows (a seeded random subset) when the full fit is too slow.

usage: python bench/head_fit_speed.py [--data ../shared/bench206] [--features out/bench/head_features.npz]
                                      [--rounds 1] [--fraction 1.0] [--set KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import logging
import re
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

import trainer.train
from daemon.audio.files import read_audio
from daemon.batch.evaluate import macro_roc_auc, read_table
from daemon.batch.formats import row_id
from daemon.model.head import LinearHead
from daemon.model.loader import embed_signal
from daemon.model.windows import WindowGrid
from trainer.cli import set_changes, with_changes
from trainer.dataset import load_dataset
from trainer.head_fit import fit_head, fit_multilabel_logistic, positive_weights, standardise
from trainer.recipe import HeadParams, Recipe

Fitter = Callable[[np.ndarray, np.ndarray, float, int], dict[str, np.ndarray]]


def fit_sklearn_per_species(features: np.ndarray, labels: np.ndarray, l2: float, max_iter: int
                            ) -> dict[str, np.ndarray]:
    """The same head as :func:`fit_multilabel_logistic`, one scikit-learn ``LogisticRegression`` per species."""
    mean, scale, x = standardise(features)
    n, d = x.shape
    pos_weight = positive_weights(labels.astype(np.float64), np.ones(n))
    weights, bias = np.zeros((d, labels.shape[1])), np.zeros(labels.shape[1])
    for j in range(labels.shape[1]):
        model = LogisticRegression(C=1.0 / (l2 * n), solver="lbfgs", max_iter=max_iter,
                                   class_weight={0: 1.0, 1: float(pos_weight[j])})
        model.fit(x, labels[:, j] > 0.5)
        weights[:, j], bias[j] = model.coef_[0], model.intercept_[0]
    return {"head_mean": mean.astype(np.float32), "head_scale": scale.astype(np.float32),
            "head_weights": weights.astype(np.float32), "head_bias": bias.astype(np.float32)}


FITTERS: dict[str, Fitter] = {"joint": fit_multilabel_logistic, "sklearn": fit_sklearn_per_species}


def build_features(data: Path, recipe: Recipe) -> dict[str, np.ndarray]:
    """Training features and labels as ``fit_stsg`` hands them to its head, and the test windows' vectors and
    labels (rows of ``test_soundscapes_labels.csv``), from the same fitted backend."""
    handed: dict[str, np.ndarray] = {}

    def capture(features: np.ndarray, labels: np.ndarray, params: HeadParams) -> dict[str, np.ndarray]:
        handed.update(train_x=features, train_y=labels)
        d, s = features.shape[1], labels.shape[1]
        return {"head_mean": np.zeros(d, np.float32), "head_scale": np.ones(d, np.float32),
                "head_weights": np.zeros((d, s), np.float32), "head_bias": np.zeros(s, np.float32)}

    dataset = load_dataset(data)
    audio = trainer.train.decode_dataset(dataset, progress=False)
    trainer.train.fit_head = capture  # the head is what this bench fits, twice, below
    try:
        fitted = trainer.train.fit_stsg(audio, len(dataset.species), recipe)
    finally:
        trainer.train.fit_head = fit_head
    truth = read_table(data / "test_soundscapes_labels.csv")
    if truth.columns != dataset.codes:
        raise SystemExit(f"{data}: test label columns differ from the species list")
    vectors, grid = {}, WindowGrid()
    for path in sorted((data / "test_soundscapes").glob("*.ogg")):
        for window in embed_signal(fitted.backend, read_audio(path), grid):
            vectors[row_id(path, window.end_sample)] = window.vector
    return {**handed, "test_x": np.stack([vectors[r] for r in truth.row_ids]), "test_y": truth.values,
            "codes": np.array(dataset.codes)}


def memory_kb(field: str) -> int:
    """A ``/proc/self/status`` figure (kB): VmRSS now, VmHWM the peak since the last reset."""
    return int(re.search(rf"{field}:\s+(\d+)", Path("/proc/self/status").read_text()).group(1))


@dataclass
class Cost:
    """What fitting a head cost."""

    wall_s: float
    cpu_s: float
    """CPU seconds of the process, all threads"""
    added_mb: float
    """peak memory the fit added to the process"""


def timed_fit(fitter: Fitter, features: np.ndarray, labels: np.ndarray, l2: float, max_iter: int
              ) -> tuple[dict[str, np.ndarray], Cost]:
    """The head and what fitting it cost."""
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    before = memory_kb("VmRSS")
    wall, cpu = time.perf_counter(), time.process_time()
    arrays = fitter(features, labels, l2, max_iter)
    cost = Cost(time.perf_counter() - wall, time.process_time() - cpu, (memory_kb("VmHWM") - before) / 1024)
    return arrays, cost


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/bench206"))
    parser.add_argument("--features", type=Path, default=Path("out/bench/head_features.npz"),
                        help="cache of the features (built when missing; delete it after changing the recipe)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--fraction", type=float, default=1.0, help="share of the training windows fitted on")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="recipe override")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    recipe = with_changes(Recipe(), set_changes(tuple(args.set)))  # the same parsing as `birdd train --set`
    if not args.features.is_file():
        started = time.perf_counter()
        args.features.parent.mkdir(parents=True, exist_ok=True)
        np.savez(args.features, **build_features(args.data, recipe))
        print(f"features built in {time.perf_counter() - started:.0f} s -> {args.features}")
    cached = np.load(args.features)
    train_x, train_y = cached["train_x"], cached["train_y"]
    if args.fraction < 1.0:
        keep = np.sort(np.random.default_rng(0).permutation(len(train_x))[: round(args.fraction * len(train_x))])
        train_x, train_y = train_x[keep], train_y[keep]
    codes = [str(c) for c in cached["codes"]]
    print(f"{len(train_x)} training windows x {train_x.shape[1]} features, {train_y.shape[1]} species; "
          f"l2 {recipe.head.l2}, max_iter {recipe.head.max_iter}; {len(cached['test_x'])} test windows")
    costs: dict[str, list[Cost]] = {name: [] for name in FITTERS}
    probabilities: dict[str, np.ndarray] = {}
    for _ in range(args.rounds):
        for name, fitter in FITTERS.items():
            arrays, cost = timed_fit(fitter, train_x, train_y, recipe.head.l2, recipe.head.max_iter)
            costs[name].append(cost)
            head = LinearHead(*(arrays[k] for k in ("head_mean", "head_scale", "head_weights", "head_bias")))
            probabilities[name] = head.probabilities(cached["test_x"])
            print(f"  {name}: {cost}", flush=True)
    medians = {name: (statistics.median(c.wall_s for c in runs), statistics.median(c.cpu_s for c in runs),
                      max(c.added_mb for c in runs)) for name, runs in costs.items()}
    print(f"| fitter | wall s (median of {args.rounds}) | CPU s | wall ratio to joint | CPU ratio to joint "
          "| peak added MB | test macro ROC-AUC |")
    print("|---|---|---|---|---|---|---|")
    joint_wall, joint_cpu, _ = medians["joint"]
    for name, (wall, cpu, added) in medians.items():
        auc, _ = macro_roc_auc(cached["test_y"], probabilities[name], codes)
        print(f"| {name} | {wall:.1f} | {cpu:.1f} | {wall / joint_wall:.2f}x | {cpu / joint_cpu:.2f}x "
              f"| {added:.0f} | {auc:.4f} |")
    gap = np.abs(probabilities["joint"] - probabilities["sklearn"])
    print(f"test probabilities: max |joint - sklearn| {gap.max():.4f}, mean {gap.mean():.5f}")


if __name__ == "__main__":
    main()
