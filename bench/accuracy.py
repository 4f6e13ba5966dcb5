"""Accuracy and training cost on bench206: train, replay the test soundscapes, score them.

Prints training wall time and peak memory, bundle size, replay wall and CPU time, and the macro
ROC-AUC, for each configuration named (default: the default recipe). Extra `birdd train` options
per configuration are given as NAME=OPTIONS, e.g. `notoken="--pooling mel_mean,mel_std"`. The model's own cost per
minute of audio, without start-up and decoding, is bench/model_speed.py's job.

usage: python bench/accuracy.py [--data ../shared/bench206] [--out out/bench] [NAME=OPTIONS ...]
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import soundfile as sf


def run(args: list[str]) -> tuple[float, float, float, str]:
    """Wall seconds, CPU seconds (the child and its workers), peak RSS in MB (largest process), stdout."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(args, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)  # reaps the child: its own rusage, not a running maximum
        elapsed = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            sys.exit(f"{' '.join(args)} failed:\n{err.read()}")
        return elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, out.read()


def bundle_mb(model: Path) -> float:
    """Size of a model bundle folder on disk."""
    return sum(p.stat().st_size for p in model.iterdir()) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/bench206"))
    parser.add_argument("--out", type=Path, default=Path("out/bench"))
    parser.add_argument("configs", nargs="*", default=["default="])
    args = parser.parse_args()
    birdd = str(Path(sys.executable).with_name("birdd"))
    soundscapes = sorted((args.data / "test_soundscapes").glob("*.ogg"))
    minutes = sum(sf.info(str(p)).duration for p in soundscapes) / 60
    print(f"| configuration | train s | train peak MB | bundle MB | replay s ({minutes:.0f} min) "
          "| replay CPU s (start-up and decoding included) | macro ROC-AUC |")
    print("|---|---|---|---|---|---|---|")
    for spec in args.configs:
        name, _, options = spec.partition("=")
        model = args.out / name
        train_s, _, peak, _ = run([birdd, "train", str(args.data), "-o", str(model), "--no-progress",
                                   *shlex.split(options)])
        sub = args.out / f"{name}.csv"
        replay_s, replay_cpu, _, _ = run([birdd, "--log-level", "WARNING", "replay",
                                          str(args.data / "test_soundscapes"), "-m", str(model), "-o", str(sub),
                                          "--no-progress"])
        _, _, _, out = run([birdd, "eval", str(sub), str(args.data / "test_soundscapes_labels.csv")])
        auc = out.split()[2]
        print(f"| {name} `{options}` | {train_s:.0f} | {peak:.0f} | {bundle_mb(model):.1f} | {replay_s:.1f} "
              f"| {replay_cpu:.1f} | {auc} |", flush=True)


if __name__ == "__main__":
    main()
