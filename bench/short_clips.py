"""A TFLite bundle on short clips: how well it names the species of bench206's focal recordings.

Scores every ``train_audio/`` clip (median 2.4 s: all but one shorter than a 5-s window, so nearly each is one
trailing window) with the bundle through the runtime's stages, a clip's score per species being its highest
window probability, then compares them with ``train.csv``'s primary labels: the median top
probability, top-1 accuracy, and the macro ROC-AUC of "is this clip of species s" over the species
with a clip. This is a check of the scoring path (how a trailing window pools its chunks), not of a
model: the labels are read here only to score it.

With ``--reference DIR`` (a checkout of other code, e.g. ``git worktree add /tmp/ref COMMIT``) the same
clips are scored again by that code, in a child process with ``PYTHONPATH=DIR``, and both rows printed.

usage: python bench/short_clips.py out/distill/teacher [--data ../shared/bench206] [--reference /tmp/ref]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score


def clip_scores(bundle: Path, paths: list[Path]) -> np.ndarray:
    """``(n_clips, n_species)``: each clip's highest window probability per species."""
    from daemon.audio.files import read_audio
    from daemon.model.loader import embed_signal, load_model
    from daemon.model.windows import WindowGrid

    model = load_model(bundle, threads=1)
    rows = []
    for path in paths:
        vectors = np.stack([w.vector for w in embed_signal(model.backend, read_audio(path), WindowGrid())])
        rows.append(model.head.probabilities(vectors).max(axis=0))
    return np.stack(rows)


def metrics(scores: np.ndarray, codes: list[str], labels: list[str]) -> dict:
    """Median top probability, top-1 accuracy, macro ROC-AUC over the species with a clip."""
    truth = np.array(labels)
    top1 = np.array(codes)[scores.argmax(axis=1)]
    aucs = [roc_auc_score(truth == code, scores[:, j]) for j, code in enumerate(codes) if (truth == code).any()]
    return {"clips": len(labels), "median_top": float(np.median(scores.max(axis=1))),
            "top1": float(np.mean(top1 == truth)), "macro_auc": float(np.mean(aucs)), "species": len(aucs)}


def measure(bundle: Path, data: Path) -> dict:
    """The bundle's metrics on every clip of train.csv whose species the bundle knows."""
    codes = [s["code"] for s in json.loads((bundle / "manifest.json").read_text())["species"]]
    with (data / "train.csv").open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["primary_label"] in codes]
    scores = clip_scores(bundle, [data / "train_audio" / r["filename"] for r in rows])
    return metrics(scores, codes, [r["primary_label"] for r in rows])


def reference_env(reference: Path) -> dict[str, str]:
    """The environment that runs the checkout at ``reference``; exits if Python would import other code."""
    env = {**os.environ, "PYTHONPATH": str(reference.resolve())}
    found = subprocess.run([sys.executable, "-c", "import daemon; print(daemon.__file__)"], env=env,
                           cwd=Path(__file__).parent, capture_output=True, text=True).stdout.strip()  # as the child
    if not found or not Path(found).resolve().is_relative_to(reference.resolve()):
        sys.exit(f"{reference}: not a checkout of birdd (Python imports daemon from {found or 'nowhere'})")
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--data", type=Path, default=Path("../shared/bench206"))
    parser.add_argument("--reference", type=Path, help="a checkout of the code to compare with")
    parser.add_argument("--json", action="store_true", help="print this code's metrics as one JSON line")
    args = parser.parse_args()
    if args.json:
        print(json.dumps(measure(args.bundle, args.data)))
        return
    env = reference_env(args.reference) if args.reference else None
    rows = {"this code": measure(args.bundle, args.data)}
    if env is not None:
        child = subprocess.run([sys.executable, __file__, str(args.bundle), "--data", str(args.data), "--json"],
                               env=env, capture_output=True, text=True, check=True)
        rows[f"reference ({args.reference})"] = json.loads(child.stdout.strip().splitlines()[-1])
    print("| code | clips | species | median top probability | top-1 accuracy | macro ROC-AUC (clip is of s) |")
    print("|---|---|---|---|---|---|")
    for name, m in rows.items():
        print(f"| {name} | {m['clips']} | {m['species']} | {m['median_top']:.3f} | {m['top1']:.3f} | "
              f"{m['macro_auc']:.4f} |")


if __name__ == "__main__":
    main()
