"""Accuracy and training cost on bench206: train, replay the test soundscapes, score them.

Prints training wall time and peak memory, replay time, and the macro ROC-AUC, for each
configuration named (default: the default recipe). Extra `birdd train` options per configuration
are given as NAME=OPTIONS, e.g. `notoken="--pooling mel_mean,mel_std"`.

usage: python bench/accuracy.py [--data ../shared/bench206] [--out out/bench] [NAME=OPTIONS ...]
"""

from __future__ import annotations

import argparse
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path


def run(args: list[str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MB) of the child, stdout."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"{' '.join(args)} failed:\n{proc.stderr}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return elapsed, max(peak, before) / 1024, proc.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/bench206"))
    parser.add_argument("--out", type=Path, default=Path("out/bench"))
    parser.add_argument("configs", nargs="*", default=["default="])
    args = parser.parse_args()
    birdd = str(Path(sys.executable).with_name("birdd"))
    print("| configuration | train s | train peak MB | replay s (100 min) | macro ROC-AUC |")
    print("|---|---|---|---|---|")
    for spec in args.configs:
        name, _, options = spec.partition("=")
        model = args.out / name
        train_s, peak, _ = run([birdd, "--log-level", "WARNING", "train", str(args.data), "-o", str(model),
                                "--no-progress", *shlex.split(options)])
        sub = args.out / f"{name}.csv"
        replay_s, _, _ = run([birdd, "--log-level", "WARNING", "replay", str(args.data / "test_soundscapes"),
                              "-m", str(model), "-o", str(sub), "--no-progress"])
        _, _, out = run([birdd, "eval", str(sub), str(args.data / "test_soundscapes_labels.csv")])
        auc = out.split()[2]
        print(f"| {name} {options} | {train_s:.0f} | {peak:.0f} | {replay_s:.1f} | {auc} |", flush=True)


if __name__ == "__main__":
    main()
